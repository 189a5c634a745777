package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
)

// TestSignedLeafVerifies: a server certificate from New and Sign verifies
// against the CA's file and pool for its host name, and its files hold a
// usable key pair; Issue, through NewCA, gives the same.
func TestSignedLeafVerifies(t *testing.T) {
	ca, err := New(t.TempDir(), "bench")
	if err != nil {
		t.Fatal(err)
	}
	const host = "api.example"
	leaf, err := ca.Sign(Spec{CommonName: host, DNSNames: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	pemCA, err := os.ReadFile(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	fromFile := x509.NewCertPool()
	if !fromFile.AppendCertsFromPEM(pemCA) {
		t.Fatalf("%s holds no certificate", ca.File)
	}
	for name, roots := range map[string]*x509.CertPool{"file": fromFile, "pool": ca.Pool} {
		if _, err := leaf.TLS.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots}); err != nil {
			t.Errorf("verify against the CA's %s: %v", name, err)
		}
	}
	if _, err := tls.LoadX509KeyPair(leaf.CertFile, leaf.KeyFile); err != nil {
		t.Errorf("leaf files: %v", err)
	}

	client := NewCA(t, "test").Issue(Spec{CommonName: "client", URIs: []string{"spiffe://x/y"}, Client: true})
	if got := client.TLS.Leaf.ExtKeyUsage; len(got) != 1 || got[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("client certificate ExtKeyUsage = %v; want client auth", got)
	}
}
