package envoy

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/internal/testutil/envoyconf"
	"github.com/extauthz/extauthz/internal/testutil/manifest"
)

func TestEnvoyConfigsPass(t *testing.T) {
	tests := []struct {
		name string
		file string
		opts checkOptions
	}{
		{"production egress", "envoy.yaml", checkOptions{}},
		{"compose demo", "envoy-compose.yaml", checkOptions{allowLocalDemo: true}},
		{"route profiles egress", "envoy-profiles.yaml", checkOptions{}},
		{"minimal fixture", "testdata/minimal.yaml", checkOptions{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, p := range checkEnvoyConfig(manifest.ReadFile(t, tt.file), tt.opts) {
				t.Errorf("%s: %v", tt.file, p)
			}
		})
	}
}

// TestComposeConfigNeedsDemoAllowance: the TLS rule is relaxed only for the
// clusters the compose config marks as local demo, and only when asked.
func TestComposeConfigNeedsDemoAllowance(t *testing.T) {
	got := checkEnvoyConfig(manifest.ReadFile(t, "envoy-compose.yaml"), checkOptions{})
	var checks []string
	for _, p := range got {
		checks = append(checks, p.check)
		if !strings.Contains(p.msg, `"echo"`) {
			t.Errorf("unexpected problem outside the echo cluster/route: %v", p)
		}
	}
	slices.Sort(checks)
	if want := []string{checkTLS, checkScheme}; !slices.Equal(checks, want) {
		t.Errorf("checks failed = %v; want %v", checks, want)
	}
}

// TestBrokenEnvoyConfigs: each fixture is testdata/minimal.yaml with one
// defect, and must fail exactly the check it targets.
func TestBrokenEnvoyConfigs(t *testing.T) {
	tests := []struct {
		file  string
		check string
		want  string // substring of the problem message
	}{
		{"unknown_field.yaml", checkParse, "unknown field"},
		{"unknown_typed_config_field.yaml", checkParse, "unknown field"},
		{"unregistered_type.yaml", checkParse, "unable to resolve"},
		{"invalid_bootstrap_value.yaml", checkValidate, "ConnectTimeout"},
		{"invalid_typed_config_value.yaml", checkValidateTyped, "StatPrefix"},
		{"invalid_nested_typed_config_value.yaml", checkValidateTyped, "MaxRequestBytes"},
		{"missing_route_cluster.yaml", checkClusterRef, `cluster "nowhere"`},
		{"missing_authz_cluster.yaml", checkClusterRef, `cluster "extauthz"`},
		{"router_before_ext_authz.yaml", checkFilterOrder, "must precede the router"},
		{"no_ext_authz.yaml", checkFilterOrder, "no ext_authz filter"},
		{"failure_mode_allow.yaml", checkFailClosed, "failure_mode_allow"},
		{"transport_api_auto.yaml", checkAPIVersion, "want V3"},
		{"no_absolute_url.yaml", checkAbsoluteURL, "allow_absolute_url"},
		{"authz_cluster_http1.yaml", checkAuthzCluster, "HTTP/2"},
		{"authz_no_health_check.yaml", checkAuthzCluster, "health check"},
		{"route_authz_disabled.yaml", checkAuthzDisabled, "ext_authz disabled"},
		{"filter_authz_disabled.yaml", checkAuthzDisabled, "disabled by default"},
		{"missing_container_id.yaml", checkContextExt, "outbound_container_id"},
		{"missing_upstream_scheme.yaml", checkContextExt, "upstream_scheme"},
		{"scheme_mismatch.yaml", checkScheme, `needs "https"`},
		{"capability_not_removed.yaml", checkCapabilityHeader, "x-kilo-capability"},
		{"no_tls.yaml", checkTLS, "without TLS"},
		{"no_sni.yaml", checkSNI, "without SNI"},
		{"no_trusted_ca.yaml", checkTLSVerify, "trusted_ca"},
		{"no_san_check.yaml", checkTLSVerify, "name is not verified"},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.file] = true
		t.Run(strings.TrimSuffix(tt.file, ".yaml"), func(t *testing.T) {
			got := checkEnvoyConfig(manifest.ReadFile(t, filepath.Join("testdata", "broken", tt.file)), checkOptions{})
			if len(got) == 0 {
				t.Fatalf("%s passed every check; want %s to fail", tt.file, tt.check)
			}
			found := false
			for _, p := range got {
				if p.check != tt.check {
					t.Errorf("%s also failed %v; want only %s", tt.file, p, tt.check)
				}
				found = found || strings.Contains(p.msg, tt.want)
			}
			if !found {
				t.Errorf("%s: no problem mentions %q; got %v", tt.file, tt.want, got)
			}
		})
	}
	files, err := filepath.Glob(filepath.Join("testdata", "broken", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("fixture %s has no entry in the table", f)
		}
	}
}

// TestComposeDemoMatchesProduction: the demo must exercise the same HTTP
// filters (ext_authz settings, router) as the production config, so what the
// demo shows is what production does.
func TestComposeDemoMatchesProduction(t *testing.T) {
	prod, demo := envoyconf.FirstHCM(t, "envoy.yaml"), envoyconf.FirstHCM(t, "envoy-compose.yaml")
	if len(prod.GetHttpFilters()) != len(demo.GetHttpFilters()) {
		t.Fatalf("http_filters: %d in envoy.yaml, %d in envoy-compose.yaml", len(prod.GetHttpFilters()), len(demo.GetHttpFilters()))
	}
	for i, f := range prod.GetHttpFilters() {
		if !proto.Equal(f, demo.GetHttpFilters()[i]) {
			t.Errorf("http filter %d (%s) differs between envoy.yaml and envoy-compose.yaml", i, f.GetName())
		}
	}
	if !slices.Equal(prod.GetRouteConfig().GetRequestHeadersToRemove(), demo.GetRouteConfig().GetRequestHeadersToRemove()) {
		t.Errorf("request_headers_to_remove differ")
	}
}

// TestProductionRoutes: envoy.yaml routes the three target hosts, all for one
// container id (one Envoy or listener per sandbox).
func TestProductionRoutes(t *testing.T) {
	hcm := envoyconf.FirstHCM(t, "envoy.yaml")
	ids := map[string]bool{}
	domains := map[string]bool{}
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, d := range vh.GetDomains() {
			domains[d] = true
		}
		for _, r := range vh.GetRoutes() {
			a := r.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"]
			pr := &extauthzv3.ExtAuthzPerRoute{}
			if err := a.UnmarshalTo(pr); err != nil {
				t.Fatalf("virtual_host %q: %v", vh.GetName(), err)
			}
			if id := pr.GetCheckSettings().GetContextExtensions()[extContainerID]; id != "" {
				ids[id] = true
			}
		}
	}
	for _, d := range []string{"api.kilo.example", "ingest.kilo.example"} {
		if !domains[d] {
			t.Errorf("no virtual host for %s", d)
		}
	}
	if len(ids) != 1 {
		t.Errorf("outbound_container_id values = %v; want exactly one per Envoy", ids)
	}
}
