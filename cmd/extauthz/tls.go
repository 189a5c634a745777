package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// serverTLS serves TLS, optionally mutual, on the gRPC and HTTP listeners,
// from files that can be rotated: a reload swaps the certificate and client
// CAs for new handshakes without a restart. The admin listener stays plain
// HTTP for probes and scrapers.
type serverTLS struct {
	files *reloadable[*tlsState]
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
	files, err := loadReloadable(func(c [][]byte) (*tlsState, error) { return parseTLS(c[0], c[1], c[2], caFile) },
		watchedFile{"--tls-cert-file", certFile}, watchedFile{"--tls-key-file", keyFile}, watchedFile{"--tls-client-ca-file", caFile})
	if err != nil {
		return nil, err
	}
	return &serverTLS{files: files}, nil
}

// parseTLS builds the listener configs from the PEM files; caPEM nil means
// no client certificates are asked for.
func parseTLS(certPEM, keyPEM, caPEM []byte, caFile string) (*tlsState, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The error text of X509KeyPair names no key material.
		return nil, fmt.Errorf("--tls-cert-file/--tls-key-file: %w", err)
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("--tls-client-ca-file %s: no PEM certificate in it", caFile)
		}
		base.ClientCAs = pool
		base.ClientAuth = tls.RequireAndVerifyClientCert
	}
	g, hc := base.Clone(), base.Clone()
	g.NextProtos = []string{"h2"}
	hc.NextProtos = []string{"h2", "http/1.1"}
	return &tlsState{grpc: g, http: hc}, nil
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
		st := s.files.current()
		if grpcALPN {
			return st.grpc, nil
		}
		return st.http, nil
	}
	return cfg
}
