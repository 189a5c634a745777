package istio

import (
	"encoding/json"
	"path/filepath"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/internal/testutil/envoyconf"
	"github.com/extauthz/extauthz/internal/testutil/manifest"
)

// shippedEnvoy returns the ext_authz filter and the extauthz cluster of
// deploy/envoy/envoy.yaml, the configuration the Istio resources copy.
func shippedEnvoy(t *testing.T) (*extauthzv3.ExtAuthz, *clusterv3.Cluster) {
	t.Helper()
	file := filepath.Join("..", "envoy", "envoy.yaml")
	bs, err := envoyconf.Parse(manifest.ReadFile(t, file))
	if err != nil {
		t.Fatal(err)
	}
	ea := &extauthzv3.ExtAuthz{}
	if err := envoyconf.FirstHCM(t, file).GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(ea); err != nil {
		t.Fatal(err)
	}
	for _, c := range bs.GetStaticResources().GetClusters() {
		if c.GetName() == ea.GetGrpcService().GetEnvoyGrpc().GetClusterName() {
			return ea, c
		}
	}
	t.Fatal("envoy.yaml: no cluster for ext_authz")
	return nil, nil
}

// strictEnvoy decodes v, a patch value of an EnvoyFilter, strictly into m:
// Istio hands it to Envoy as that message, and a misspelt field there would
// be dropped without a word.
func strictEnvoy(t *testing.T, v any, m proto.Message) {
	t.Helper()
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, m); err != nil {
		t.Fatalf("EnvoyFilter patch value as %s: %v", m.ProtoReflect().Descriptor().FullName(), err)
	}
}

// TestIstioCrashedReplicaRetried: the egress gateway asks extauthz the way
// deploy/envoy/envoy.yaml does when a replica crashes (what the e2e crash
// test proves there): the same retry policy on the ext_authz filter's gRPC
// service, patched in by an EnvoyFilter because the envoyExtAuthzGrpc
// provider has no such setting; the same outlier detection, through a
// DestinationRule; ejections applied at once.
func TestIstioCrashedReplicaRetried(t *testing.T) {
	m := istioManifests(t)
	wantAuthz, wantCluster := shippedEnvoy(t)
	provider := manifest.Get(one(t, m, "IstioOperator"), "spec", "meshConfig", "extensionProviders", 0, "envoyExtAuthzGrpc")
	service, port := manifest.String(provider, "service"), manifest.Int(provider, "port")
	gw := one(t, m, "Gateway")

	ef := one(t, m, "EnvoyFilter")
	if manifest.String(ef, "metadata", "namespace") != manifest.String(gw, "metadata", "namespace") {
		t.Error("the EnvoyFilter is not in the egress gateway's namespace")
	}
	for k, v := range manifest.Get(gw, "spec", "selector").(map[string]any) {
		if manifest.Get(ef, "spec", "workloadSelector", "labels", k) != v {
			t.Errorf("the EnvoyFilter does not select the egress gateway (%s=%v)", k, v)
		}
	}
	patched := map[string]bool{}
	for _, p := range manifest.List(ef, "spec", "configPatches") {
		applyTo := manifest.String(p, "applyTo")
		patched[applyTo] = true
		if manifest.String(p, "match", "context") != "GATEWAY" || manifest.String(p, "patch", "operation") != "MERGE" {
			t.Errorf("%s patch: want context GATEWAY and operation MERGE", applyTo)
		}
		switch applyTo {
		case "HTTP_FILTER":
			if got := manifest.String(p, "match", "listener", "filterChain", "filter", "subFilter", "name"); got != "envoy.filters.http.ext_authz" {
				t.Errorf("HTTP_FILTER patch matches %q; want Istio's ext_authz filter", got)
			}
			hf := &hcmv3.HttpFilter{}
			strictEnvoy(t, manifest.Get(p, "patch", "value"), hf)
			ea := &extauthzv3.ExtAuthz{}
			if err := hf.GetTypedConfig().UnmarshalTo(ea); err != nil {
				t.Fatalf("HTTP_FILTER patch: typed_config is not ExtAuthz: %v", err)
			}
			if got, want := ea.GetGrpcService().GetRetryPolicy(), wantAuthz.GetGrpcService().GetRetryPolicy(); want == nil || !proto.Equal(got, want) {
				t.Errorf("the gateway's ext_authz retry_policy = %v; want envoy.yaml's %v", got, want)
			}
			ea.GetGrpcService().RetryPolicy = nil
			if only := (&extauthzv3.ExtAuthz{Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{}}}); !proto.Equal(ea, only) {
				t.Errorf("the HTTP_FILTER patch changes more than the retry policy: %v", ea)
			}
		case "CLUSTER":
			if manifest.String(p, "match", "cluster", "service") != service || manifest.Int(p, "match", "cluster", "portNumber") != port {
				t.Errorf("CLUSTER patch matches %v; want the provider's %s:%d", manifest.Get(p, "match", "cluster"), service, port)
			}
			cl := &clusterv3.Cluster{}
			strictEnvoy(t, manifest.Get(p, "patch", "value"), cl)
			if want := wantCluster.GetCommonLbConfig(); want == nil || !proto.Equal(cl, &clusterv3.Cluster{CommonLbConfig: want}) {
				t.Errorf("CLUSTER patch = %v; want envoy.yaml's common_lb_config %v and nothing else", cl, want)
			}
		default:
			t.Errorf("unexpected %s patch", applyTo)
		}
	}
	if !patched["HTTP_FILTER"] || !patched["CLUSTER"] {
		t.Errorf("EnvoyFilter patches %v; want HTTP_FILTER (retries) and CLUSTER (merge window)", patched)
	}

	var od any
	for _, dr := range m["DestinationRule"] {
		if manifest.String(dr, "spec", "host") == service {
			od = manifest.Get(dr, "spec", "trafficPolicy", "outlierDetection")
		}
	}
	want := wantCluster.GetOutlierDetection()
	switch {
	case od == nil:
		t.Fatalf("no DestinationRule with outlierDetection for %s", service)
	case manifest.Get(od, "splitExternalLocalOriginErrors") != want.GetSplitExternalLocalOriginErrors(),
		manifest.Int(od, "consecutiveLocalOriginFailures") != int(want.GetConsecutiveLocalOriginFailure().GetValue()),
		manifest.Int(od, "maxEjectionPercent") != int(want.GetMaxEjectionPercent().GetValue()):
		t.Errorf("outlierDetection for %s = %v; want envoy.yaml's %v", service, od, want)
	}
}
