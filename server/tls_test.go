package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/extauthz/extauthz/internal/testutil/testpki"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	client                    tls.Certificate // the proxy: egressGatewayID
	sandbox                   tls.Certificate // same CA, a sandbox's identity
	other                     tls.Certificate // signed by another CA
}

// The identities in the test certificates.
const (
	egressGatewayID = "spiffe://cluster.local/ns/istio-system/sa/egress-gateway"
	sandboxID       = "spiffe://cluster.local/ns/sandboxes/sa/outbound-container-1"
)

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	ca := testpki.NewCA(t, "test CA")
	srv := ca.Issue(testpki.Spec{CommonName: "extauthz", IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	client := func(ca *testpki.CA, cn, id string) tls.Certificate {
		return ca.Issue(testpki.Spec{CommonName: cn, URIs: []string{id}, Client: true}).TLS
	}
	return &testPKI{
		caFile: ca.File, certFile: srv.CertFile, keyFile: srv.KeyFile, pool: ca.Pool,
		client:  client(ca, "envoy", egressGatewayID),
		sandbox: client(ca, "sandbox", sandboxID),
		other:   client(testpki.NewCA(t, "other CA"), "envoy", egressGatewayID),
	}
}

// TestServeMutualTLS: with --tls-* flags, the gRPC and HTTP listeners require
// a client certificate from the configured CA that names an allowed identity;
// the proxy gets its Check answered; a client without a certificate, with
// another CA's, or with a certificate the same CA signed for a sandbox, gets
// nothing.
func TestServeMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	keyFile, key := newKeyFile(t)
	p := startServer(t, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--http-container-id-header", "x-outbound-container-id", "--admin-addr", "",
		"--key-file", keyFile, "--tls-cert-file", pki.certFile, "--tls-key-file", pki.keyFile,
		"--tls-client-ca-file", pki.caFile, "--tls-client-identities", "uri:"+egressGatewayID)
	grpcAddr, httpAddr := p.addr(t, "grpc"), p.addr(t, "http")

	check := func(cert *tls.Certificate) error {
		cfg := &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, checkRequest(sealFor(t, key)))
		if err == nil && resp.GetOkResponse() == nil {
			t.Fatalf("Check over mTLS = %v; want an allow", resp)
		}
		return err
	}
	if err := check(&pki.client); err != nil {
		t.Fatalf("Check with a client certificate: %v", err)
	}
	if err := check(nil); err == nil {
		t.Error("Check without a client certificate succeeded")
	}
	if err := check(&pki.other); err == nil {
		t.Error("Check with another CA's client certificate succeeded")
	}
	if err := check(&pki.sandbox); err == nil {
		t.Error("Check with a sandbox's certificate from the same CA succeeded")
	}

	get := func(cert *tls.Certificate) (*http.Response, error) {
		cfg := &tls.Config{RootCAs: pki.pool}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
		return c.Get("https://" + httpAddr + "/v1/authz/forward")
	}
	resp, err := get(&pki.client)
	if err != nil {
		t.Fatalf("HTTP over mTLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden { // no request attributes: a decision, so TLS worked
		t.Errorf("HTTP over mTLS = %d; want 403 invalid_upstream_url", resp.StatusCode)
	}
	if resp, err := get(nil); err == nil {
		resp.Body.Close()
		t.Error("HTTP without a client certificate succeeded")
	}
	if resp, err := get(&pki.sandbox); err == nil {
		resp.Body.Close()
		t.Error("HTTP with a sandbox's certificate from the same CA succeeded")
	}
}
