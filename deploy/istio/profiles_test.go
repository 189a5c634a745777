package istio

import (
	"slices"
	"testing"

	"github.com/extauthz/extauthz/internal/testutil/manifest"
)

// gatewayHost is the egress gateway's Service, which sidecars send the
// sandboxes' traffic to.
const gatewayHost = "istio-egressgateway.istio-system.svc.cluster.local"

// profileHosts are the hosts of the shipped profiles' origins.
func profileHosts(t *testing.T) []string {
	t.Helper()
	return manifest.ProfileHosts(t, "../../profiles/providers.yaml")
}

// TestIstioProfilesWiring holds profiles/egress.yaml to the shipped
// profiles, as deploy/envoy's TestProfilesConfigMatchesShippedProfiles holds
// envoy-profiles.yaml: every profile origin is a mesh-external host whose
// sidecar traffic goes to the egress gateway over Istio mTLS (a subset with
// the host as SNI), which routes it to the host on 443 with TLS originated
// (SNI and name checked), and every request at the gateway asks extauthz;
// every host wired is a profile origin.
func TestIstioProfilesWiring(t *testing.T) {
	m := manifestsIn(t, "profiles")
	hosts := profileHosts(t)

	se := one(t, m, "ServiceEntry")
	if got := manifest.Strings(manifest.List(se, "spec", "hosts")); !sameSet(got, hosts) {
		t.Errorf("ServiceEntry hosts = %q; want the profile origins' %q", got, hosts)
	}
	if manifest.String(se, "spec", "location") != "MESH_EXTERNAL" {
		t.Error("ServiceEntry is not MESH_EXTERNAL")
	}
	ports := map[int]string{}
	for _, p := range manifest.List(se, "spec", "ports") {
		ports[manifest.Int(p, "number")] = manifest.String(p, "protocol")
	}
	if ports[80] != "HTTP" || ports[443] != "HTTPS" {
		t.Errorf("ServiceEntry ports = %v; want 80 HTTP (the sandbox's plain requests) and 443 HTTPS (TLS originated)", ports)
	}

	gw := one(t, m, "Gateway")
	gwName := manifest.String(gw, "metadata", "name")
	servers := manifest.List(gw, "spec", "servers")
	if len(servers) != 1 || manifest.Int(servers[0], "port", "number") != 80 || manifest.String(servers[0], "tls", "mode") != "ISTIO_MUTUAL" {
		t.Fatalf("Gateway servers = %v; want one on port 80 terminating Istio mTLS", servers)
	}
	if got := manifest.Strings(manifest.List(servers[0], "hosts")); !sameSet(got, hosts) {
		t.Errorf("Gateway hosts = %q; want %q", got, hosts)
	}

	subsets := map[string]string{} // gateway subset → SNI
	tlsTo := map[string]bool{}     // hosts TLS is originated to, name checked
	for _, dr := range m["DestinationRule"] {
		host := manifest.String(dr, "spec", "host")
		if host == gatewayHost {
			for _, s := range manifest.List(dr, "spec", "subsets") {
				pl := manifest.List(s, "trafficPolicy", "portLevelSettings")
				if len(pl) == 1 && manifest.Int(pl[0], "port", "number") == 80 && manifest.String(pl[0], "tls", "mode") == "ISTIO_MUTUAL" {
					subsets[manifest.String(s, "name")] = manifest.String(pl[0], "tls", "sni")
				}
			}
			continue
		}
		pl := manifest.List(dr, "spec", "trafficPolicy", "portLevelSettings")
		if len(pl) == 1 && manifest.Int(pl[0], "port", "number") == 443 && manifest.String(pl[0], "tls", "mode") == "SIMPLE" &&
			manifest.String(pl[0], "tls", "sni") == host && slices.Equal(manifest.Strings(manifest.List(pl[0], "tls", "subjectAltNames")), []string{host}) &&
			manifest.Get(pl[0], "tls", "insecureSkipVerify") == false && manifest.String(pl[0], "tls", "caCertificates") != "" {
			tlsTo[host] = true
		} else {
			t.Errorf("DestinationRule %s: %v; want TLS (SIMPLE) on 443 with SNI and subject-alt-name %s, verified", manifest.String(dr, "metadata", "name"), pl, host)
		}
	}

	routed := map[string]bool{}
	for _, vs := range m["VirtualService"] {
		vsHosts := manifest.Strings(manifest.List(vs, "spec", "hosts"))
		if len(vsHosts) != 1 {
			t.Errorf("VirtualService %s: hosts %q; want one", manifest.String(vs, "metadata", "name"), vsHosts)
			continue
		}
		host := vsHosts[0]
		if checkProfileVirtualService(t, vs, host, gwName, subsets) && tlsTo[host] {
			routed[host] = true
		}
	}
	for _, h := range hosts {
		if !routed[h] {
			t.Errorf("profile origin https://%s: no VirtualService through the gateway with TLS originated", h)
		}
	}
	if len(routed) != len(hosts) || len(tlsTo) != len(hosts) {
		t.Errorf("hosts routed %v, TLS originated to %v; want exactly the profile origins %q", routed, tlsTo, hosts)
	}

	ap := one(t, m, "AuthorizationPolicy")
	mesh := one(t, istioManifests(t), "IstioOperator")
	provider := manifest.String(manifest.List(mesh, "spec", "meshConfig", "extensionProviders")[0], "name")
	if manifest.String(ap, "spec", "action") != "CUSTOM" || manifest.String(ap, "spec", "provider", "name") != provider {
		t.Errorf("AuthorizationPolicy = %v; want CUSTOM with the mesh config's provider %q", manifest.Get(ap, "spec"), provider)
	}
	if rules := manifest.List(ap, "spec", "rules"); len(rules) != 1 || len(rules[0].(map[string]any)) != 0 {
		t.Errorf("AuthorizationPolicy rules = %v; want [{}]: every request at the gateway is checked", rules)
	}
	for k, v := range manifest.Get(gw, "spec", "selector").(map[string]any) {
		if manifest.Get(ap, "spec", "selector", "matchLabels", k) != v {
			t.Errorf("AuthorizationPolicy selector %s; want the gateway's %v", k, v)
		}
	}
}

// checkProfileVirtualService: the mesh's port-80 traffic for host goes to
// the gateway subset whose SNI is host, and the gateway's goes to host:443.
func checkProfileVirtualService(t *testing.T, vs map[string]any, host, gateway string, subsets map[string]string) bool {
	t.Helper()
	name := manifest.String(vs, "metadata", "name")
	if got := manifest.Strings(manifest.List(vs, "spec", "gateways")); !sameSet(got, []string{"mesh", gateway}) {
		t.Errorf("VirtualService %s: gateways %q; want mesh and %s", name, got, gateway)
		return false
	}
	legs := map[string]map[string]any{} // gateway → destination
	for _, r := range manifest.List(vs, "spec", "http") {
		gws := manifest.Strings(manifest.List(r, "match", 0, "gateways"))
		dests := manifest.List(r, "route")
		if len(gws) != 1 || manifest.Int(r, "match", 0, "port") != 80 || len(dests) != 1 {
			t.Errorf("VirtualService %s: route %v; want one gateway, port 80, one destination", name, r)
			return false
		}
		legs[gws[0]], _ = manifest.Get(dests[0], "destination").(map[string]any)
	}
	toGateway, toHost := legs["mesh"], legs[gateway]
	ok := manifest.String(toGateway, "host") == gatewayHost && manifest.Int(toGateway, "port", "number") == 80 &&
		subsets[manifest.String(toGateway, "subset")] == host &&
		manifest.String(toHost, "host") == host && manifest.Int(toHost, "port", "number") == 443
	if !ok {
		t.Errorf("VirtualService %s: mesh → %v, gateway → %v; want the gateway subset with SNI %s on 80, then %s:443", name, toGateway, toHost, host, host)
	}
	return ok
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}
