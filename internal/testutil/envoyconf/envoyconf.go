// Package envoyconf decodes the shipped Envoy configs strictly into
// go-control-plane's bootstrap proto, for the tests that check them (the
// configs' own tests, and the compose demo's, which compares its Envoy config
// with the compose file). Only tests import it.
package envoyconf

import (
	"fmt"
	"os"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	// Every typed_config type the configs use must be registered in
	// protoregistry.GlobalTypes, or protojson cannot resolve the Any: each
	// is imported here, so that every test that parses a config can.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/formatter/req_without_query/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// The per-route context extensions through which the shipped Envoy configs
// tell extauthz which container is calling and the upstream's real scheme.
const (
	ContainerIDExtension    = "outbound_container_id"
	UpstreamSchemeExtension = "upstream_scheme"
)

// Parse parses YAML strictly: YAML → JSON → protojson with unknown fields
// rejected, typed_config resolved through protoregistry.GlobalTypes.
func Parse(data []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	bs := &bootstrapv3.Bootstrap{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, bs); err != nil {
		return nil, fmt.Errorf("protojson: %w", err)
	}
	return bs, nil
}

// FirstHCM returns the http_connection_manager of the first filter of the
// first listener in the config file, or fails the test.
func FirstHCM(t testing.TB, file string) *hcmv3.HttpConnectionManager {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	hcm := &hcmv3.HttpConnectionManager{}
	a := bs.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig()
	if err := a.UnmarshalTo(hcm); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return hcm
}
