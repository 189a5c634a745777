package compose

import (
	"slices"
	"testing"

	"github.com/extauthz/extauthz/internal/testutil/manifest"
)

// TestComposeSandboxReachesOnlyEnvoy: in the demo the sandbox shares a network
// with Envoy alone, so it can neither ask extauthz for a token nor call the
// upstream around the proxy; Envoy shares one with each of them.
func TestComposeSandboxReachesOnlyEnvoy(t *testing.T) {
	cf := loadCompose(t)
	declared, _ := manifest.Load(t, composeFileName)[0]["networks"].(map[string]any)
	nets := func(name string) []string {
		n := manifest.Strings(manifest.List(cf.service(t, name), "networks"))
		if len(n) == 0 {
			t.Fatalf("service %s names no networks (it would join the default one)", name)
		}
		for _, x := range n {
			if _, ok := declared[x]; !ok {
				t.Errorf("service %s uses undeclared network %q", name, x)
			}
		}
		return n
	}
	sandbox, envoy := nets("sandbox"), nets("envoy")
	for _, peer := range []string{"extauthz", "echo"} {
		p := nets(peer)
		for _, n := range sandbox {
			if slices.Contains(p, n) {
				t.Errorf("sandbox and %s share network %q", peer, n)
			}
		}
		if !slices.ContainsFunc(p, func(n string) bool { return slices.Contains(envoy, n) }) {
			t.Errorf("envoy cannot reach %s: no shared network", peer)
		}
	}
	if !slices.ContainsFunc(sandbox, func(n string) bool { return slices.Contains(envoy, n) }) {
		t.Error("the sandbox cannot reach envoy")
	}
}
