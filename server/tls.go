package server

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

func newServerTLS(c TLSConfig) (*serverTLS, error) {
	certFile, keyFile, caFile, ids := c.CertFile, c.KeyFile, c.ClientCAFile, c.ClientIdentities
	switch {
	case certFile == "" && keyFile == "" && caFile == "" && len(ids) == 0:
		return nil, nil
	case caFile != "" && (certFile == "" || keyFile == ""):
		return nil, errors.New("--tls-client-ca-file needs --tls-cert-file and --tls-key-file: mTLS is TLS with client certificates")
	case certFile == "" || keyFile == "":
		return nil, errors.New("--tls-cert-file and --tls-key-file go together")
	case caFile != "" && len(ids) == 0:
		return nil, errors.New("--tls-client-ca-file needs --tls-client-identities: a certificate the CA signed is not enough (a mesh CA signs sandboxes too); list the proxies' identities, e.g. uri:spiffe://cluster.local/ns/istio-system/sa/egress-gateway")
	case caFile == "" && len(ids) > 0:
		return nil, errors.New("--tls-client-identities needs --tls-client-ca-file: identities are read from verified client certificates")
	}
	files, err := loadReloadable(func(c [][]byte) (*tlsState, error) { return parseTLS(c[0], c[1], c[2], caFile, ids) },
		watchedFile{"--tls-cert-file", certFile}, watchedFile{"--tls-key-file", keyFile}, watchedFile{"--tls-client-ca-file", caFile})
	if err != nil {
		return nil, err
	}
	return &serverTLS{files: files}, nil
}

// parseTLS builds the listener configs from the PEM files; caPEM nil means
// no client certificates are asked for.
func parseTLS(certPEM, keyPEM, caPEM []byte, caFile string, ids ClientIdentities) (*tlsState, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The error text of X509KeyPair names no key material.
		return nil, fmt.Errorf("--tls-cert-file/--tls-key-file: %w", err)
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: tls12Suites, Certificates: []tls.Certificate{cert}}
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("--tls-client-ca-file %s: no PEM certificate in it", caFile)
		}
		base.ClientCAs = pool
		base.ClientAuth = tls.RequireAndVerifyClientCert
		base.VerifyConnection = ids.verify
	}
	g, hc := base.Clone(), base.Clone()
	g.NextProtos = []string{"h2"}
	hc.NextProtos = []string{"h2", "http/1.1"}
	return &tlsState{grpc: g, http: hc}, nil
}

// config returns a listener config that picks up reloads at each handshake.
func (s *serverTLS) config(grpcALPN bool) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: tls12Suites}
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

// tls12Suites are the TLS 1.2 cipher suites offered: forward-secret AEADs
// only, no CBC and no SHA-1 (TLS 1.3's suites are fixed by Go and all
// modern). Envoy's defaults include these.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}
