package server

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestClientIdentities(t *testing.T) {
	ids, err := ParseClientIdentities("uri:" + egressGatewayID + ", dns:envoy.proxy.svc, uri:~spiffe://cluster\\.local/ns/egress/sa/[a-z-]+")
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(uris []string, dns ...string) tls.ConnectionState {
		c := &x509.Certificate{DNSNames: dns}
		for _, u := range uris {
			pu, _ := url.Parse(u)
			c.URIs = append(c.URIs, pu)
		}
		return tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}
	}
	for _, c := range []struct {
		name string
		cs   tls.ConnectionState
		ok   bool
	}{
		{"exact uri", leaf([]string{egressGatewayID}), true},
		{"exact dns", leaf(nil, "envoy.proxy.svc"), true},
		{"pattern uri", leaf([]string{"spiffe://cluster.local/ns/egress/sa/gw-one"}), true},
		{"one of several SANs", leaf([]string{sandboxID, egressGatewayID}), true},
		{"sandbox", leaf([]string{sandboxID}), false},
		{"uri as dns", leaf(nil, egressGatewayID), false},
		{"dns as uri", leaf([]string{"envoy.proxy.svc"}), false},
		{"exact is not a prefix", leaf([]string{egressGatewayID + "/extra"}), false},
		{"pattern is anchored at the end", leaf([]string{"spiffe://cluster.local/ns/egress/sa/gw/extra"}), false},
		{"pattern is anchored at the start", leaf([]string{"spiffe://evil/x/spiffe://cluster.local/ns/egress/sa/gw"}), false},
		{"pattern alternation stays anchored", leaf([]string{"x"}), false},
		{"dns case differs", leaf(nil, "ENVOY.proxy.svc"), false},
		{"no certificate", tls.ConnectionState{}, false},
	} {
		if err := ids.verify(c.cs); (err == nil) != c.ok {
			t.Errorf("%s: verify = %v; want ok %v", c.name, err, c.ok)
		}
	}

	alt, err := ParseClientIdentities("uri:~a|b")
	if err != nil {
		t.Fatal(err)
	}
	if alt.verify(leaf([]string{"xa"})) == nil || alt.verify(leaf([]string{"bx"})) == nil {
		t.Error("an alternation is not anchored as a whole")
	}

	for _, bad := range []string{"spiffe://x", "uri:", "email:a@b", "dns:~(", "URI:x"} {
		if _, err := parseConfig("--tls-client-identities", bad); err == nil || !strings.Contains(err.Error(), "--tls-client-identities") {
			t.Errorf("--tls-client-identities %q: %v; want an error naming the flag", bad, err)
		}
	}
}

// TestTLSRefusesWeakSuites: a TLS 1.2 client that offers only CBC (or
// SHA-1) suites gets no handshake.
func TestTLSRefusesWeakSuites(t *testing.T) {
	pki := newTestPKI(t)
	st, err := newServerTLS(TLSConfig{CertFile: pki.certFile, KeyFile: pki.keyFile})
	if err != nil {
		t.Fatal(err)
	}
	for _, grpcALPN := range []bool{true, false} {
		srvCfg := st.config(grpcALPN)
		try := func(suites ...uint16) error {
			cli, srv := tlsPipe(t, srvCfg, &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1",
				MaxVersion: tls.VersionTLS12, CipherSuites: suites, NextProtos: []string{"h2"}})
			defer srv.Close()
			defer cli.Close()
			return cli.Handshake()
		}
		if err := try(tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA); err == nil {
			t.Errorf("grpc=%v: a CBC-only TLS 1.2 client got a handshake", grpcALPN)
		}
		if err := try(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256); err != nil {
			t.Errorf("grpc=%v: an AEAD TLS 1.2 client: %v", grpcALPN, err)
		}
	}
}

// tlsPipe connects a TLS client and server over loopback TCP; the server
// handshakes in the background. Both ends give up after 5 s.
func tlsPipe(t *testing.T, srvCfg, cliCfg *tls.Config) (*tls.Conn, *tls.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *tls.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		srv := tls.Server(c, srvCfg)
		accepted <- srv
		_ = srv.Handshake()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	srv := <-accepted
	if srv == nil {
		t.Fatal("accept failed")
	}
	return tls.Client(c, cliCfg), srv
}
