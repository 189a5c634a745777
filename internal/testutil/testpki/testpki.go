// Package testpki makes throwaway certificate authorities and certificates
// for tests: an upstream certificate for a host name, a server or client
// certificate for mTLS, written as PEM files. Imported by tests only.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a test certificate authority whose files live in a test's temp dir.
type CA struct {
	t    testing.TB
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// File is the CA certificate's PEM file.
	File string
	// Pool trusts this CA.
	Pool *x509.CertPool
}

// NewCA makes a CA named cn.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	ca := &CA{t: t, dir: t.TempDir()}
	ca.cert, ca.key = ca.issue(Spec{CommonName: cn}, true, nil, nil)
	ca.File = ca.write(cn+"-ca.pem", "CERTIFICATE", ca.cert.Raw)
	ca.Pool = x509.NewCertPool()
	ca.Pool.AddCert(ca.cert)
	return ca
}

// Spec names a leaf certificate.
type Spec struct {
	CommonName string
	DNSNames   []string
	URIs       []string // e.g. SPIFFE ids
	IPs        []net.IP
	Client     bool // client auth; else server auth
}

// Leaf is an issued certificate and its files.
type Leaf struct {
	CertFile, KeyFile string
	TLS               tls.Certificate
}

// Issue signs a leaf certificate for spec.
func (ca *CA) Issue(spec Spec) Leaf {
	ca.t.Helper()
	cert, key := ca.issue(spec, false, ca.cert, ca.key)
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	name := spec.CommonName
	l := Leaf{
		CertFile: ca.write(name+".pem", "CERTIFICATE", cert.Raw),
		KeyFile:  ca.write(name+"-key.pem", "EC PRIVATE KEY", der),
		TLS:      tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert},
	}
	return l
}

func (ca *CA) issue(spec Spec, isCA bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: spec.CommonName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     spec.DNSNames,
		IPAddresses:  spec.IPs,
	}
	for _, u := range spec.URIs {
		pu, err := url.Parse(u)
		if err != nil {
			ca.t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	switch {
	case isCA:
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	case spec.Client:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		ca.t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		ca.t.Fatal(err)
	}
	return cert, key
}

func (ca *CA) write(name, typ string, der []byte) string {
	ca.t.Helper()
	p := filepath.Join(ca.dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		ca.t.Fatal(err)
	}
	return p
}
