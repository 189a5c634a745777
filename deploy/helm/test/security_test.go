package test

import (
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// TestDefaultsAreSecure: with only the image set, the chart renders a
// gRPC-only server (the HTTP listener, its port and its NetworkPolicy rule
// off), with no development or reflection flags and no secret anywhere but
// in Secrets referenced by name.
func TestDefaultsAreSecure(t *testing.T) {
	r := mustRender(t, imageValues)
	ctr := r.container(t)
	for _, a := range ctr.Args {
		for _, bad := range []string{"--http-addr", "--http-container-id-header", "--api-token-file", "--dev", "--grpc-reflection", "--dev-http-hosts"} {
			if a == bad || strings.HasPrefix(a, bad+"=") {
				t.Errorf("default args hold %q", a)
			}
		}
	}
	for _, p := range ctr.Ports {
		if p.Name == "http" || p.ContainerPort == 8181 {
			t.Errorf("default container port %s/%d: the HTTP listener is off", p.Name, p.ContainerPort)
		}
	}
	for _, p := range r.Service.Spec.Ports {
		if p.Name == "http" || p.Port == 8181 {
			t.Errorf("default Service port %s/%d: the HTTP listener is off", p.Name, p.Port)
		}
	}
	for i, rule := range r.NetworkPolicy.Spec.Ingress {
		if slices.Contains(rulePorts(rule), 8181) {
			t.Errorf("default NetworkPolicy rule %d opens 8181", i)
		}
	}
	if got := rulePorts(r.NetworkPolicy.Spec.Ingress[0]); !slices.Equal(got, []int32{9191}) {
		t.Errorf("default decision ports = %v; want [9191]", got)
	}
	if strings.Contains(r.text, "8181") {
		t.Error("the default render mentions 8181, the HTTP port")
	}
	if strings.Contains(r.text, "EXTAUTHZ_") {
		t.Error("the default render sets EXTAUTHZ_* variables; configuration belongs in args, secrets in files")
	}
}

// secretMaterial matches text that looks like a key, token, certificate or
// capability rather than a name (a base64 key of 32 bytes is 44 characters).
var secretMaterial = regexp.MustCompile(`-----BEGIN|kka1\.|[A-Za-z0-9+/]{40,}={0,2}`)

// secretishPath matches a values path that is about secrets.
var secretishPath = regexp.MustCompile(`(?i)key|token|secret|password|tls|cert|ca\b|clientCA`)

// secretReferences are the only values whose path is about secrets: names of
// Secrets and of keys in them, and names of the client certificates allowed.
// Sorted.
var secretReferences = []string{
	"http.apiToken.existingSecret",
	"http.apiToken.secretKey",
	"imagePullSecrets",
	"keys.existingSecret",
	"keys.secretKey",
	"revocation.redis.ca.existingSecret",
	"revocation.redis.ca.secretKey",
	"revocation.redis.password.existingSecret",
	"revocation.redis.password.secretKey",
	"tls.clientCA.existingSecret",
	"tls.clientCA.secretKey",
	"tls.clientIdentities",
	"tls.existingSecret",
}

// TestNoPlaintextSecrets: values.yaml has no value that could carry a key,
// token or certificate (only Secret names), and no render, whatever its
// values, writes a Secret or secret material: the chart's decoder knows no
// Secret kind, so a rendered Secret would fail TestChartRenders too. The
// only ConfigMap holds route profiles.
func TestNoPlaintextSecrets(t *testing.T) {
	for _, s := range []string{"3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "-----BEGIN CERTIFICATE-----", "kka1.x"} {
		if !secretMaterial.MatchString(s) {
			t.Fatalf("secretMaterial misses %q", s)
		}
	}
	vals, err := chartutil.ReadValuesFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	leaves := map[string]any{}
	flatten("", vals.AsMap(), leaves)
	var secretish []string
	for path, v := range leaves {
		if secretishPath.MatchString(path) {
			secretish = append(secretish, path)
		}
		if s := fmt.Sprint(v); secretMaterial.MatchString(s) {
			t.Errorf("values.yaml %s = %q looks like secret material", path, s)
		}
	}
	if slices.Sort(secretish); !slices.Equal(secretish, secretReferences) {
		t.Errorf("values about secrets = %q; want only the Secret references %q (a secret goes in a Secret, referenced by name)", secretish, secretReferences)
	}
	for _, c := range chartCases {
		r := mustRender(t, imageValues+c.values)
		if m := secretMaterial.FindString(r.text); m != "" {
			t.Errorf("%s: render holds %q, like secret material", c.name, m)
		}
		for _, k := range []string{"kind: Secret", "stringData:", "binaryData:"} {
			if strings.Contains(r.text, k) {
				t.Errorf("%s: render holds %q", c.name, k)
			}
		}
		// The one ConfigMap is the route profiles', which name credential
		// slots, never a credential.
		if cm := r.ConfigMap; cm != nil {
			if cm.Name != releaseName+"-profiles" {
				t.Errorf("%s: ConfigMap %s; want only %s-profiles", c.name, cm.Name, releaseName)
			}
			for k := range cm.Data {
				if !strings.HasSuffix(k, ".yaml") && !strings.HasSuffix(k, ".yml") {
					t.Errorf("%s: ConfigMap key %q is not a profile file", c.name, k)
				}
			}
		}
	}
}

// flatten collects the leaves of a values tree by dotted path; a list is a
// leaf.
func flatten(prefix string, v any, out map[string]any) {
	m, ok := v.(map[string]any)
	if !ok {
		out[prefix] = v
		return
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		flatten(p, m[k], out)
	}
}

// TestRefusedValues: values the server would refuse, or that would leave the
// decision ports open, fail the render with a message naming what to set; so
// does a misspelt or unknown value (values.schema.json closes every object),
// which would otherwise be ignored.
func TestRefusedValues(t *testing.T) {
	for _, c := range []struct {
		name, values, want string
	}{
		{"no image", "", "image.repository is required"},
		{"no tag", "image: {repository: registry.example.com/extauthz}", "image.tag (or image.digest) is required"},
		{"mTLS without identities", imageValues + `
tls:
  existingSecret: extauthz-tls
  clientCA: {existingSecret: extauthz-tls}
`, "tls.clientIdentities is required with tls.clientCA"},
		{"identities without client CA", imageValues + `
tls:
  existingSecret: extauthz-tls
  clientIdentities: [dns:envoy.proxies.svc]
`, "tls.clientIdentities needs tls.clientCA.existingSecret"},
		{"client CA without certificate", imageValues + `
tls:
  clientCA: {existingSecret: extauthz-ca}
  clientIdentities: [dns:envoy.proxies.svc]
`, "tls.clientCA needs tls.existingSecret"},
		{"identity without kind", imageValues + `
tls:
  existingSecret: extauthz-tls
  clientCA: {existingSecret: extauthz-tls}
  clientIdentities: [envoy.proxies.svc]
`, `tls.clientIdentities "envoy.proxies.svc": want uri:NAME`},
		{"http mode serving nothing", imageValues + "http: {enabled: true}", "http.enabled serves nothing"},
		{"api token with http off", imageValues + "http: {apiToken: {existingSecret: extauthz-api-token}}", "need http.enabled: true"},
		{"identity header with http off", imageValues + "http: {containerIdHeader: x-outbound-container-id}", "need http.enabled: true"},
		{"bad identity source", imageValues + "containerIdFrom: outbound_container_id", `containerIdFrom "outbound_container_id": want context-extension:KEY`},
		{"bad upstream scheme", imageValues + "upstreamScheme: HTTPS", `upstreamScheme "HTTPS"`},
		{"no key secret", imageValues + "keys: {existingSecret: ''}", "keys.existingSecret is required"},
		{"grace period too short", imageValues + "drain: {terminationGracePeriodSeconds: 30}", "drain.terminationGracePeriodSeconds (30) must exceed"},
		{"no proxies", imageValues + "networkPolicy: {proxies: []}", "networkPolicy.proxies is empty"},
		{"proxy namespace alone", imageValues + `
networkPolicy:
  proxies:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: istio-system}}
`, "every entry needs a non-empty podSelector"},
		{"proxy with an empty podSelector", imageValues + `
networkPolicy:
  proxies:
    - podSelector: {matchLabels: {}}
`, "every entry needs a non-empty podSelector"},
		{"misspelt value", imageValues + "http: {enable: true}", "additional properties 'enable' not allowed"},
		{"unknown top-level value", imageValues + "apiToken: secret-value", "additional properties 'apiToken' not allowed"},
		{"extra arg not a flag", imageValues + "extraArgs: [serve]", "at '/extraArgs/0'"},
		{"port as text", imageValues + "grpc: {port: '9191'}", "at '/grpc/port'"},
		{"istio without principals", imageValues + "istio: {enabled: true, callerPrincipals: []}", "istio.callerPrincipals is empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := failure(t, c.values); !strings.Contains(got, c.want) {
				t.Errorf("render failed with %q; want it to say %q", got, c.want)
			}
		})
	}
}

// TestLint runs what `helm lint --strict` runs, with the image set: any
// warning or error fails.
func TestLint(t *testing.T) {
	vals, err := chartutil.ReadValues([]byte(imageValues))
	if err != nil {
		t.Fatal(err)
	}
	l := lint.All(chartDir, vals.AsMap(), namespace, false)
	for _, m := range l.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("lint: %s", m)
		} else {
			t.Logf("lint: %s", m)
		}
	}
}
