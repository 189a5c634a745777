package envoy

import (
	"slices"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/extauthz/extauthz/internal/testutil/envoyconf"
	"github.com/extauthz/extauthz/internal/testutil/manifest"
)

// TestProfilesConfigMatchesShippedProfiles holds envoy-profiles.yaml to
// profiles/providers.yaml: every exact origin of a shipped profile has a
// virtual host (its cluster originating TLS to that host, with SNI and the
// name checked), and every virtual host but the catch-all serves a profile
// origin.
func TestProfilesConfigMatchesShippedProfiles(t *testing.T) {
	origins := map[string]bool{}
	for _, h := range manifest.ProfileHosts(t, "../../profiles/providers.yaml") {
		origins[h] = true
	}
	bs, err := envoyconf.Parse(manifest.ReadFile(t, "envoy-profiles.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	hcm := envoyconf.FirstHCM(t, "envoy-profiles.yaml")
	clusters := map[string]string{} // cluster -> SNI, when its SAN check names the same host
	for _, cl := range bs.GetStaticResources().GetClusters() {
		ts := cl.GetTransportSocket()
		if ts == nil {
			continue
		}
		tc := &tlsv3.UpstreamTlsContext{}
		if err := ts.GetTypedConfig().UnmarshalTo(tc); err != nil {
			t.Fatal(err)
		}
		sans := tc.GetCommonTlsContext().GetValidationContext().GetMatchTypedSubjectAltNames()
		if len(sans) == 1 && sans[0].GetMatcher().GetExact() == tc.GetSni() {
			clusters[cl.GetName()] = tc.GetSni()
		}
	}
	served := map[string]bool{}
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		if slices.Contains(vh.GetDomains(), "*") {
			continue
		}
		host := strings.TrimSuffix(vh.GetDomains()[0], ":443")
		if !origins[host] {
			t.Errorf("virtual host %s serves %s, which no shipped profile names", vh.GetName(), host)
		}
		for _, d := range vh.GetDomains() {
			if h, _, _ := strings.Cut(d, ":"); h != host {
				t.Errorf("virtual host %s: domain %s is not %s", vh.GetName(), d, host)
			}
		}
		for _, r := range vh.GetRoutes() {
			checkProfileRoute(t, vh, r, host, clusters)
		}
		served[host] = true
	}
	for o := range origins {
		if !served[o] {
			t.Errorf("profile origin https://%s has no virtual host in envoy-profiles.yaml", o)
		}
	}
}

func checkProfileRoute(t *testing.T, vh *routev3.VirtualHost, r *routev3.Route, host string, clusters map[string]string) {
	t.Helper()
	ra := r.GetRoute()
	if ra == nil {
		t.Errorf("virtual host %s: a route that does not forward", vh.GetName())
		return
	}
	if sni := clusters[ra.GetCluster()]; sni != host {
		t.Errorf("virtual host %s: cluster %s originates TLS to %q; want %s with the name checked", vh.GetName(), ra.GetCluster(), sni, host)
	}
	if ra.GetHostRewriteLiteral() != host {
		t.Errorf("virtual host %s: host rewritten to %q; want %s", vh.GetName(), ra.GetHostRewriteLiteral(), host)
	}
}
