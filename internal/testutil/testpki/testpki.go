// Package testpki makes throwaway certificate authorities and certificates
// for tests and benchmarks: an upstream certificate for a host name, a server
// or client certificate for mTLS, written as PEM files. Imported by tests and
// by the benchmark commands (New, Sign), never by the server.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a throwaway certificate authority whose files live in one directory.
type CA struct {
	t    testing.TB // set by NewCA, for Issue
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// File is the CA certificate's PEM file.
	File string
	// Pool trusts this CA.
	Pool *x509.CertPool
}

// NewCA makes a CA named cn in a test's temp dir; a failure fails the test.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	ca, err := New(t.TempDir(), cn)
	if err != nil {
		t.Fatal(err)
	}
	ca.t = t
	return ca
}

// New makes a CA named cn whose files are written into dir, for a program
// that is not a test; it issues certificates with Sign.
func New(dir, cn string) (*CA, error) {
	ca := &CA{dir: dir}
	var err error
	if ca.cert, ca.key, err = ca.issue(Spec{CommonName: cn}, true, nil, nil); err != nil {
		return nil, err
	}
	if ca.File, err = ca.write(cn+"-ca.pem", "CERTIFICATE", ca.cert.Raw); err != nil {
		return nil, err
	}
	ca.Pool = x509.NewCertPool()
	ca.Pool.AddCert(ca.cert)
	return ca, nil
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

// Issue signs a leaf certificate for spec with a CA made by NewCA; a failure
// fails the test.
func (ca *CA) Issue(spec Spec) Leaf {
	ca.t.Helper()
	l, err := ca.Sign(spec)
	if err != nil {
		ca.t.Fatal(err)
	}
	return l
}

// Sign signs a leaf certificate for spec and writes it and its key as
// CommonName.pem and CommonName-key.pem.
func (ca *CA) Sign(spec Spec) (Leaf, error) {
	cert, key, err := ca.issue(spec, false, ca.cert, ca.key)
	if err != nil {
		return Leaf{}, err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Leaf{}, err
	}
	name := spec.CommonName
	l := Leaf{TLS: tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}}
	if l.CertFile, err = ca.write(name+".pem", "CERTIFICATE", cert.Raw); err != nil {
		return Leaf{}, err
	}
	if l.KeyFile, err = ca.write(name+"-key.pem", "EC PRIVATE KEY", der); err != nil {
		return Leaf{}, err
	}
	return l, nil
}

func (ca *CA) issue(spec Spec, isCA bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
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
			return nil, nil, fmt.Errorf("URI %q: %w", u, err)
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
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func (ca *CA) write(name, typ string, der []byte) (string, error) {
	p := filepath.Join(ca.dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		return "", err
	}
	return p, nil
}
