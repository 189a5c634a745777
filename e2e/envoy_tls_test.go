package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/extauthz/extauthz/internal/testutil/envoyproc"
	"github.com/extauthz/extauthz/internal/testutil/testpki"
)

// readmeBlock returns the code block that follows the marker line in the
// Envoy guide, docs/envoy.md.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "docs", "envoy.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(raw), "<!-- "+marker+" -->\n")
	if !ok {
		t.Fatalf("docs/envoy.md has no <!-- %s --> block", marker)
	}
	after, ok = strings.CutPrefix(after, "```yaml\n")
	block, _, closed := strings.Cut(after, "\n```")
	if !ok || !closed {
		t.Fatalf("docs/envoy.md <!-- %s --> is not followed by a yaml block", marker)
	}
	return block
}

// mtlsSetup is the Envoy guide's transport socket for the extauthz cluster, with
// its file paths pointed at certificates from a test CA, and the serve flags
// that go with it.
type mtlsSetup struct {
	socket    map[string]any
	serveArgs []string
}

// envoyClientID is the identity in Envoy's client certificate, the one
// extauthz is told to allow.
const envoyClientID = "spiffe://cluster.local/ns/egress/sa/envoy"

func newMTLSSetup(t *testing.T, clientCA *testpki.CA, clientID string) mtlsSetup {
	t.Helper()
	var doc struct {
		TransportSocket map[string]any `json:"transport_socket"`
	}
	if err := yaml.UnmarshalStrict([]byte(readmeBlock(t, "envoy:extauthz-mtls")), &doc); err != nil {
		t.Fatalf("docs/envoy.md mTLS block: %v", err)
	}
	serverCA := testpki.NewCA(t, "extauthz-server")
	server := serverCA.Issue(testpki.Spec{CommonName: "extauthz", DNSNames: []string{"extauthz.extauthz.svc"}})
	client := clientCA.Issue(testpki.Spec{CommonName: "envoy", URIs: []string{clientID}, Client: true})
	replaced := 0
	replace := func(old, new string) {
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, e := range v {
					if s, ok := e.(string); ok && s == old {
						v[k] = new
						replaced++
					}
					walk(e)
				}
			case []any:
				for _, e := range v {
					walk(e)
				}
			}
		}
		walk(doc.TransportSocket)
	}
	replace("/etc/envoy/extauthz-client/tls.crt", client.CertFile)
	replace("/etc/envoy/extauthz-client/tls.key", client.KeyFile)
	replace("/etc/envoy/extauthz-client/ca.crt", serverCA.File)
	if replaced != 3 {
		t.Fatalf("docs/envoy.md mTLS block: replaced %d file paths; want 3", replaced)
	}
	return mtlsSetup{
		socket: doc.TransportSocket,
		serveArgs: []string{"--tls-cert-file", server.CertFile, "--tls-key-file", server.KeyFile,
			"--tls-client-ca-file", clientCA.File, "--tls-client-identities", "uri:" + envoyClientID},
	}
}

func (m mtlsSetup) edit(cfg *envoyproc.Config) error {
	c, err := cfg.Cluster("extauthz")
	if err != nil {
		return err
	}
	c["transport_socket"] = m.socket
	return nil
}

// TestEnvoyGRPCMutualTLS runs the mTLS setup of docs/envoy.md between a real Envoy
// and extauthz: checks (and health checks) flow; with a client certificate from a CA
// extauthz does not trust, or one from the trusted CA for an identity not in
// --tls-client-identities, Envoy fails closed.
func TestEnvoyGRPCMutualTLS(t *testing.T) {
	clientCA := testpki.NewCA(t, "envoy-clients")
	m := newMTLSSetup(t, clientCA, envoyClientID)

	t.Run("as documented", func(t *testing.T) {
		s := newEnvoyStack(t, stackOptions{serveArgs: m.serveArgs, edit: m.edit})
		s.expectFlowsAgain(t, s.capability())
		s.expectHealthChecks(t, true)
	})

	// Checks flow without alpn_protocols (the router's connection pool asks
	// for h2 itself), but Envoy's gRPC health checker offers no ALPN, and a
	// gRPC server that requires h2 refuses it: every health check fails and
	// checks flow only because Envoy routes to an all-unhealthy cluster
	// (panic mode). That is why docs/envoy.md keeps alpn_protocols.
	t.Run("without ALPN health checks fail", func(t *testing.T) {
		s := newEnvoyStack(t, stackOptions{serveArgs: m.serveArgs, edit: func(cfg *envoyproc.Config) error {
			if err := m.edit(cfg); err != nil {
				return err
			}
			c, _ := cfg.Cluster("extauthz")
			ts := c["transport_socket"].(map[string]any)
			common := ts["typed_config"].(map[string]any)["common_tls_context"].(map[string]any)
			copied := map[string]any{}
			for k, v := range common {
				if k != "alpn_protocols" {
					copied[k] = v
				}
			}
			c["transport_socket"] = map[string]any{"name": ts["name"], "typed_config": map[string]any{
				"@type": ts["typed_config"].(map[string]any)["@type"],
				"sni":   ts["typed_config"].(map[string]any)["sni"], "common_tls_context": copied}}
			return nil
		}})
		s.expectHealthChecks(t, false)
	})

	t.Run("client certificate from another CA", func(t *testing.T) {
		other := newMTLSSetup(t, testpki.NewCA(t, "not-trusted"), envoyClientID)
		s := newEnvoyStack(t, stackOptions{serveArgs: m.serveArgs, edit: other.edit})
		s.expectFailClosed(t, s.capability(), "untrusted client certificate")
	})

	// The same CA also signs sandboxes in a mesh: a certificate it signed
	// for another identity is refused.
	t.Run("same CA, another identity", func(t *testing.T) {
		sandbox := newMTLSSetup(t, clientCA, "spiffe://cluster.local/ns/sandboxes/sa/outbound-container-1")
		s := newEnvoyStack(t, stackOptions{serveArgs: m.serveArgs, edit: sandbox.edit})
		s.expectFailClosed(t, s.capability(), "same CA, another identity")
	})
}
