package envoy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testutil/envoyproc"
	"github.com/extauthz/extauthz/internal/testutil/testpki"
)

// shippedEnvoyConfigs are the Envoy bootstraps in this directory: every
// envoy*.yaml, so a new one is validated without editing this test.
func shippedEnvoyConfigs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("envoy*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %v; want at least envoy.yaml, envoy-compose.yaml, envoy-http-service.yaml", files)
	}
	return files
}

// TestEnvoyValidatesShippedConfigs runs the real Envoy (the version CI
// installs) in --mode validate on every shipped config, as shipped. A file a
// config references that this machine lacks (the system CA bundle) is
// supplied: that copy is the only change.
func TestEnvoyValidatesShippedConfigs(t *testing.T) {
	bin := envoyproc.Require(t)
	var ca *testpki.CA
	for _, name := range append(shippedEnvoyConfigs(t), filepath.Join("testdata", "minimal.yaml")) {
		t.Run(name, func(t *testing.T) {
			file := name
			if missing := missingFiles(t, name); len(missing) > 0 {
				if ca == nil {
					ca = testpki.NewCA(t, "validate")
				}
				cfg, err := envoyproc.Load(name)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range missing {
					cfg.ReplaceString(m, ca.File)
				}
				file = filepath.Join(t.TempDir(), filepath.Base(name)+".json")
				if err := os.WriteFile(file, cfg.JSON(), 0o600); err != nil {
					t.Fatal(err)
				}
				t.Logf("supplied a test CA for %v", missing)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := envoyproc.Validate(ctx, bin, file); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// envoyRefuses says, for every broken fixture, whether Envoy itself refuses
// it. The others break rules of ours that Envoy accepts (fail-open, no TLS
// upstream, a missing context extension), which only the proto-level checks
// in envoycheck_test.go catch; this table is measured against Envoy.
var envoyRefuses = map[string]bool{
	"authz_cluster_http1.yaml":               true, // gRPC needs an HTTP/2 cluster
	"invalid_bootstrap_value.yaml":           true,
	"invalid_nested_typed_config_value.yaml": true,
	"invalid_typed_config_value.yaml":        true,
	"missing_route_cluster.yaml":             true,
	"router_before_ext_authz.yaml":           true, // the router must be last
	"unknown_field.yaml":                     true,
	"unknown_typed_config_field.yaml":        true,
	"unregistered_type.yaml":                 true,
	"authz_no_health_check.yaml":             false,
	"capability_not_removed.yaml":            false,
	"failure_mode_allow.yaml":                false,
	"filter_authz_disabled.yaml":             false,
	"missing_authz_cluster.yaml":             false, // Envoy resolves a gRPC cluster lazily
	"missing_container_id.yaml":              false,
	"missing_upstream_scheme.yaml":           false,
	"no_absolute_url.yaml":                   false,
	"no_ext_authz.yaml":                      false,
	"no_san_check.yaml":                      false,
	"no_sni.yaml":                            false,
	"no_tls.yaml":                            false,
	"no_trusted_ca.yaml":                     false,
	"route_authz_disabled.yaml":              false,
	"scheme_mismatch.yaml":                   false,
	"transport_api_auto.yaml":                false,
}

// TestEnvoyOnBrokenConfigs proves the validation above can fail, and keeps
// the split between Envoy's checks and ours honest: each broken fixture is
// refused by Envoy exactly when envoyRefuses says so.
func TestEnvoyOnBrokenConfigs(t *testing.T) {
	bin := envoyproc.Require(t)
	files, err := filepath.Glob(filepath.Join("testdata", "broken", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(envoyRefuses) {
		t.Errorf("%d broken fixtures, %d in envoyRefuses: list every fixture", len(files), len(envoyRefuses))
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want, listed := envoyRefuses[name]
			if !listed {
				t.Fatalf("%s is not in envoyRefuses", name)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := envoyproc.Validate(ctx, bin, file)
			if got := err != nil; got != want {
				t.Errorf("envoy refuses %s = %v; want %v (%v)", name, got, want, err)
			}
		})
	}
}

// missingFiles lists the absolute paths a config names that do not exist here.
func missingFiles(t *testing.T, name string) []string {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, line := range strings.Split(string(raw), "\n") {
		_, v, ok := strings.Cut(line, "filename:")
		if !ok {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), "}\"' ")
		if strings.HasPrefix(v, "/") {
			if _, err := os.Stat(v); err != nil {
				missing = append(missing, v)
			}
		}
	}
	return missing
}

// TestCIInstallsTheTestedEnvoy keeps .ci/install's pin (which .ci/run
// sources) and the version the tests require in step.
func TestCIInstallsTheTestedEnvoy(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", ".ci", "install"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "envoy_version=" + envoyproc.Version + "\n"; !strings.Contains(string(raw), want) {
		t.Errorf(".ci/install does not pin %q", strings.TrimSpace(want))
	}
}
