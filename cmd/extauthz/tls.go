package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// serverTLS serves TLS, optionally mutual, on the gRPC and HTTP listeners,
// from files that can be rotated: reload swaps the certificate and client CAs
// for new handshakes without a restart. The admin listener stays plain HTTP
// for probes and scrapers.
type serverTLS struct {
	certFile, keyFile, caFile string
	state                     atomic.Pointer[tlsState]
	hash                      [sha256.Size]byte // of the files last read
}

// tlsState holds one loaded set of files as ready configs, one per protocol
// (ALPN differs: gRPC needs h2 only).
type tlsState struct {
	grpc, http *tls.Config
}

func newServerTLS(certFile, keyFile, caFile string) (*serverTLS, error) {
	switch {
	case certFile == "" && keyFile == "" && caFile == "":
		return nil, nil
	case certFile == "" || keyFile == "":
		return nil, errors.New("--tls-cert-file and --tls-key-file go together")
	}
	s := &serverTLS{certFile: certFile, keyFile: keyFile, caFile: caFile}
	if _, err := s.reload(true); err != nil {
		return nil, err
	}
	return s, nil
}

// reload re-reads the files; unless force, only when their content changed.
// On error the current state stays. It reports whether it swapped.
func (s *serverTLS) reload(force bool) (bool, error) {
	certPEM, err := os.ReadFile(s.certFile)
	if err != nil {
		return false, fmt.Errorf("--tls-cert-file: %w", err)
	}
	keyPEM, err := os.ReadFile(s.keyFile)
	if err != nil {
		return false, fmt.Errorf("--tls-key-file: %w", err)
	}
	var caPEM []byte
	if s.caFile != "" {
		if caPEM, err = os.ReadFile(s.caFile); err != nil {
			return false, fmt.Errorf("--tls-client-ca-file: %w", err)
		}
	}
	h := sha256.New()
	for _, b := range [][]byte{certPEM, keyPEM, caPEM} {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if !force && sum == s.hash {
		return false, nil
	}
	s.hash = sum
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The error text of X509KeyPair names no key material.
		return false, fmt.Errorf("--tls-cert-file/--tls-key-file: %w", err)
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return false, fmt.Errorf("--tls-client-ca-file %s: no PEM certificate in it", s.caFile)
		}
		base.ClientCAs = pool
		base.ClientAuth = tls.RequireAndVerifyClientCert
	}
	g, hc := base.Clone(), base.Clone()
	g.NextProtos = []string{"h2"}
	hc.NextProtos = []string{"h2", "http/1.1"}
	s.state.Store(&tlsState{grpc: g, http: hc})
	return true, nil
}

// config returns a listener config that picks up reloads at each handshake.
func (s *serverTLS) config(grpcALPN bool) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if grpcALPN {
		cfg.NextProtos = []string{"h2"}
	} else {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		st := s.state.Load()
		if grpcALPN {
			return st.grpc, nil
		}
		return st.http, nil
	}
	return cfg
}
