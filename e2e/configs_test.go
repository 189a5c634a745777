package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/extauthz/extauthz/authz"
	"github.com/extauthz/extauthz/internal/testutil/envoyconf"
)

// readConfig reads the shipped config name of a deployment target (a
// directory under deploy/).
func readConfig(t *testing.T, target, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", target, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// validateAnys runs ValidateAll on every google.protobuf.Any below m,
// unpacked, recursively: Bootstrap.ValidateAll stops at typed_config.
func validateAnys(t *testing.T, m protoreflect.Message, path string) {
	t.Helper()
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return
		}
		if v, ok := inner.(interface{ ValidateAll() error }); ok {
			if err := v.ValidateAll(); err != nil {
				t.Errorf("%s (%s): %v", path, a.GetTypeUrl(), err)
			}
		}
		validateAnys(t, inner.ProtoReflect(), path+"("+string(inner.ProtoReflect().Descriptor().Name())+")")
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				validateAnys(t, v.List().Get(i).Message(), p)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				validateAnys(t, mv.Message(), p)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			validateAnys(t, v.Message(), p)
		}
		return true
	})
}

func exactPatterns(l *matcherv3.ListStringMatcher) []string {
	var out []string
	for _, p := range l.GetPatterns() {
		out = append(out, p.GetExact())
	}
	return out
}

// TestEnvoyHTTPServiceConfig: deploy/envoy/envoy-http-service.yaml parses strictly,
// validates (typed configs included), references only defined clusters, and
// wires ext_authz http_service to extauthz the way the HTTP handler expects.
func TestEnvoyHTTPServiceConfig(t *testing.T) {
	bs, err := envoyconf.Parse(readConfig(t, "envoy", "envoy-http-service.yaml"))
	if err != nil {
		t.Fatalf("strict parse: %v", err)
	}
	if err := bs.ValidateAll(); err != nil {
		t.Errorf("ValidateAll: %v", err)
	}
	validateAnys(t, bs.ProtoReflect(), "bootstrap")

	clusters := map[string]bool{}
	for _, c := range bs.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = true
	}
	hcm := &hcmv3.HttpConnectionManager{}
	listeners := bs.GetStaticResources().GetListeners()
	if len(listeners) != 1 || proto.Unmarshal(listeners[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().GetValue(), hcm) != nil {
		t.Fatal("want one listener whose first filter is an http_connection_manager")
	}
	filters := hcm.GetHttpFilters()
	if len(filters) != 2 || filters[0].GetName() != "envoy.filters.http.ext_authz" || filters[1].GetName() != "envoy.filters.http.router" {
		t.Fatalf("http_filters = %v; want ext_authz then router", filters)
	}
	ea := &extauthzv3.ExtAuthz{}
	if err := filters[0].GetTypedConfig().UnmarshalTo(ea); err != nil {
		t.Fatal(err)
	}
	hs := ea.GetHttpService()
	switch {
	case ea.GetFailureModeAllow():
		t.Error("failure_mode_allow is true: requests would pass when extauthz is down")
	case ea.GetStatusOnError().GetCode() != 503:
		t.Errorf("status_on_error = %v; want 503", ea.GetStatusOnError().GetCode())
	case hs == nil:
		t.Fatal("no http_service")
	case hs.GetPathPrefix() != authz.EnvoyPathPrefix:
		t.Errorf("path_prefix = %q; want %q", hs.GetPathPrefix(), authz.EnvoyPathPrefix)
	case !clusters[hs.GetServerUri().GetCluster()]:
		t.Errorf("http_service cluster %q is not defined", hs.GetServerUri().GetCluster())
	}
	if got := exactPatterns(ea.GetAllowedHeaders()); !slices.Contains(got, authz.DefaultCapabilityHeader) || slices.Contains(got, authz.DefaultHTTPIdentityHeader) {
		t.Errorf("allowed_headers = %q; want the capability header, and not the identity header (a sandbox could forge it)", got)
	}
	// The profiles' injected headers: TestProxyConfigsPassProfileHeaders.
	if got := exactPatterns(hs.GetAuthorizationResponse().GetAllowedUpstreamHeaders()); !slices.Contains(got, "authorization") || slices.Contains(got, authz.DefaultHTTPIdentityHeader) {
		t.Errorf("allowed_upstream_headers = %q; want authorization, and not the identity header", got)
	}
	added := map[string]string{}
	for _, h := range hs.GetAuthorizationRequest().GetHeadersToAdd() {
		added[strings.ToLower(h.GetKey())] = h.GetValue()
	}
	if added[authz.DefaultHTTPIdentityHeader] == "" || added["x-forwarded-proto"] != "https" {
		t.Errorf("headers_to_add = %v; want %s and x-forwarded-proto: https", added, authz.DefaultHTTPIdentityHeader)
	}
	rc := hcm.GetRouteConfig()
	if remove := rc.GetRequestHeadersToRemove(); slices.Contains(remove, "authorization") || !slices.Contains(remove, authz.DefaultCapabilityHeader) {
		t.Errorf("request_headers_to_remove = %q; want the capability header and never authorization", remove)
	}
	if hcm.GetNormalizePath().GetValue() || hcm.GetMergeSlashes() {
		t.Error("path normalisation is on: the upstream would get a path extauthz did not check")
	}
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if r.GetRoute() == nil {
				continue // direct_response: nothing is forwarded
			}
			if c := r.GetRoute().GetCluster(); !clusters[c] {
				t.Errorf("route in %s names undefined cluster %q", vh.GetName(), c)
			}
		}
	}
}

// traefikConfig is the part of Traefik's dynamic configuration that
// deploy/traefik/traefik.yaml uses; decoding it strictly catches misspelt keys.
type traefikConfig struct {
	HTTP struct {
		Routers map[string]struct {
			EntryPoints []string `json:"entryPoints"`
			Rule        string   `json:"rule"`
			Middlewares []string `json:"middlewares"`
			Service     string   `json:"service"`
		} `json:"routers"`
		Middlewares map[string]struct {
			Headers *struct {
				CustomRequestHeaders map[string]string `json:"customRequestHeaders"`
			} `json:"headers"`
			ForwardAuth *struct {
				Address             string   `json:"address"`
				TrustForwardHeader  *bool    `json:"trustForwardHeader"`
				AuthRequestHeaders  []string `json:"authRequestHeaders"`
				AuthResponseHeaders []string `json:"authResponseHeaders"`
			} `json:"forwardAuth"`
		} `json:"middlewares"`
		Services map[string]struct {
			LoadBalancer struct {
				PassHostHeader *bool `json:"passHostHeader"`
				Servers        []struct {
					URL string `json:"url"`
				} `json:"servers"`
			} `json:"loadBalancer"`
		} `json:"services"`
	} `json:"http"`
}

// TestTraefikConfig: every router sets the identity, then asks extauthz, then
// strips the capability; forwardAuth distrusts client X-Forwarded-* headers
// and copies Authorization back.
func TestTraefikConfig(t *testing.T) {
	var c traefikConfig
	if err := yaml.UnmarshalStrict(readConfig(t, "traefik", "traefik.yaml"), &c); err != nil {
		t.Fatalf("strict parse: %v", err)
	}
	if len(c.HTTP.Routers) == 0 {
		t.Fatal("no routers")
	}
	idHeader := "X-Outbound-Container-Id"
	for name, r := range c.HTTP.Routers {
		if _, ok := c.HTTP.Services[r.Service]; !ok {
			t.Errorf("router %s: service %q is not defined", name, r.Service)
		}
		stage := 0 // 0: want identity, 1: want forwardAuth, 2: want strip, 3: done
		for _, mwName := range r.Middlewares {
			mw, ok := c.HTTP.Middlewares[mwName]
			if !ok {
				t.Fatalf("router %s: middleware %q is not defined", name, mwName)
			}
			switch {
			case stage == 0 && mw.Headers != nil && mw.Headers.CustomRequestHeaders[idHeader] != "":
				stage = 1
			case stage == 1 && mw.ForwardAuth != nil:
				fa := mw.ForwardAuth
				if !strings.HasSuffix(fa.Address, authz.ForwardPath) {
					t.Errorf("forwardAuth address %q does not end in %s", fa.Address, authz.ForwardPath)
				}
				if fa.TrustForwardHeader == nil || *fa.TrustForwardHeader {
					t.Error("forwardAuth must set trustForwardHeader: false: a sandbox could describe another request")
				}
				// The profiles' headers: TestProxyConfigsPassProfileHeaders.
				if !slices.Contains(fa.AuthResponseHeaders, "Authorization") || slices.Contains(fa.AuthResponseHeaders, idHeader) {
					t.Errorf("authResponseHeaders = %q; want Authorization, and not the identity header", fa.AuthResponseHeaders)
				}
				for _, h := range []string{"Authorization", "X-Kilo-Capability", idHeader} {
					if !slices.Contains(fa.AuthRequestHeaders, h) {
						t.Errorf("authRequestHeaders lacks %s", h)
					}
				}
				stage = 2
			case stage == 2 && mw.Headers != nil:
				h := mw.Headers.CustomRequestHeaders
				if v, ok := h["X-Kilo-Capability"]; ok && v == "" {
					if v, ok := h[idHeader]; !ok || v != "" {
						t.Errorf("middleware %s does not strip %s", mwName, idHeader)
					}
					stage = 3
				}
			}
		}
		if stage != 3 {
			t.Errorf("router %s: middlewares %q; want identity, then forwardAuth, then capability strip", name, r.Middlewares)
		}
	}
	for name, s := range c.HTTP.Services {
		for _, srv := range s.LoadBalancer.Servers {
			if !strings.HasPrefix(srv.URL, "https://") {
				t.Errorf("service %s: upstream %q is not https", name, srv.URL)
			}
		}
	}
}
