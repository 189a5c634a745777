package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/extauthz/extauthz/internal/testutil/envoyproc"
)

// Names in the shipped deploy/envoy/envoy.yaml that the benchmark relies
// on, beside the hosts, container and header every benchmark uses
// (benchcmd).
const (
	listenerName  = "sandbox_egress"
	authzCluster  = "extauthz"
	authzFilter   = "envoy.filters.http.ext_authz"
	systemCAFile  = "/etc/ssl/certs/ca-certificates.crt"
	upstreamReply = `{"id":"bench","choices":[]}`
)

// startUpstream serves HTTPS on a free loopback port with cert: 200 and a
// short JSON body for every request, after reading the request body.
func startUpstream(cert tls.Certificate) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("content-type", "application/json")
			_, _ = io.WriteString(w, upstreamReply)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	return ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// envoyConfig loads the shipped config and substitutes addresses, ports and
// the CA path only: the listener and admin on free loopback ports, both TLS
// upstream clusters at the local upstream, the trusted CA, and the extauthz
// cluster at authzAddr.
func envoyConfig(file, upstream, caFile, authzAddr string) (*envoyproc.Config, error) {
	cfg, err := envoyproc.Load(file)
	if err != nil {
		return nil, err
	}
	uh, up, err := hostPort(upstream)
	if err != nil {
		return nil, err
	}
	ah, ap, err := hostPort(authzAddr)
	if err != nil {
		return nil, err
	}
	for _, err := range []error{
		cfg.SetListener(listenerName, "127.0.0.1", 0),
		cfg.SetAdmin("127.0.0.1", 0),
		cfg.SetCluster("kilo_api", uh, up),
		cfg.SetCluster("kilo_ingest", uh, up),
		cfg.SetCluster(authzCluster, ah, ap),
	} {
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	if n := cfg.ReplaceString(systemCAFile, caFile); n == 0 {
		return nil, fmt.Errorf("%s: no trusted_ca %s to replace", file, systemCAFile)
	}
	return cfg, nil
}

func hostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	return h, port, err
}

// repoFile finds name (a path relative to the repository root) from the
// working directory or one of its parents.
func repoFile(name string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New(name + " not found: run from inside the repository")
		}
		dir = parent
	}
}
