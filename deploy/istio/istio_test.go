package istio

import (
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/testutil/manifest"
)

// istioManifests loads every document in this directory, indexed by kind.
func istioManifests(t *testing.T) map[string][]map[string]any {
	t.Helper()
	return manifestsIn(t, ".")
}

// manifestsIn loads every document of dir/*.yaml, indexed by kind.
func manifestsIn(t *testing.T, dir string) map[string][]map[string]any {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/istio/%s (%v)", dir, err)
	}
	byKind := map[string][]map[string]any{}
	for _, f := range files {
		for i, doc := range manifest.Load(t, f) {
			kind := manifest.String(doc, "kind")
			if kind == "" || manifest.String(doc, "apiVersion") == "" || manifest.String(doc, "metadata", "name") == "" {
				t.Errorf("%s: document %d lacks apiVersion, kind or metadata.name", f, i)
			}
			byKind[kind] = append(byKind[kind], doc)
		}
	}
	return byKind
}

func one(t *testing.T, byKind map[string][]map[string]any, kind string) map[string]any {
	t.Helper()
	if n := len(byKind[kind]); n != 1 {
		t.Fatalf("%d %s documents; want 1", n, kind)
	}
	return byKind[kind][0]
}

func TestIstioManifests(t *testing.T) {
	m := istioManifests(t)
	want := map[string]string{
		"IstioOperator":           "install.istio.io/v1alpha1",
		"Deployment":              "apps/v1",
		"Service":                 "v1",
		"PodDisruptionBudget":     "policy/v1",
		"HorizontalPodAutoscaler": "autoscaling/v2",
		"AuthorizationPolicy":     "security.istio.io/v1",
		"PeerAuthentication":      "security.istio.io/v1",
		"ServiceEntry":            "networking.istio.io/v1",
		"DestinationRule":         "networking.istio.io/v1",
		"Gateway":                 "networking.istio.io/v1",
		"VirtualService":          "networking.istio.io/v1",
		"EnvoyFilter":             "networking.istio.io/v1alpha3",
	}
	for kind, api := range want {
		if len(m[kind]) == 0 {
			t.Errorf("no %s", kind)
		}
		for _, d := range m[kind] {
			if got := manifest.String(d, "apiVersion"); got != api {
				t.Errorf("%s %s: apiVersion %q; want %q", kind, manifest.String(d, "metadata", "name"), got, api)
			}
		}
	}
}

func TestIstioProviderWiring(t *testing.T) {
	m := istioManifests(t)
	providers := manifest.List(one(t, m, "IstioOperator"), "spec", "meshConfig", "extensionProviders")
	if len(providers) != 1 {
		t.Fatalf("%d extension providers; want 1", len(providers))
	}
	p := providers[0]
	g := manifest.Get(p, "envoyExtAuthzGrpc")
	if g == nil {
		t.Fatal("the extension provider is not envoyExtAuthzGrpc")
	}
	svc := one(t, m, "Service")
	fqdn := manifest.String(svc, "metadata", "name") + "." + manifest.String(svc, "metadata", "namespace") + ".svc.cluster.local"
	if got := manifest.String(g, "service"); got != fqdn {
		t.Errorf("provider service = %q; want the Service's FQDN %q", got, fqdn)
	}
	if got := manifest.Int(g, "port"); got != 9191 || got != servicePort(svc, "grpc") {
		t.Errorf("provider port = %d; want 9191, the Service's grpc port (%d)", got, servicePort(svc, "grpc"))
	}
	if fo, ok := manifest.Get(g, "failOpen").(bool); !ok || fo {
		t.Errorf("failOpen = %v; want an explicit false (fail closed)", manifest.Get(g, "failOpen"))
	}
	if manifest.String(g, "timeout") == "" {
		t.Error("provider has no timeout")
	}

	ap := policyWithAction(t, m, "CUSTOM")
	if got, want := manifest.String(ap, "spec", "provider", "name"), manifest.String(p, "name"); got == "" || got != want {
		t.Errorf("AuthorizationPolicy provider %q != mesh config provider %q", got, want)
	}
	gw := one(t, m, "Gateway")
	for k, v := range manifest.Get(gw, "spec", "selector").(map[string]any) {
		if got := manifest.Get(ap, "spec", "selector", "matchLabels", k); got != v {
			t.Errorf("AuthorizationPolicy selector %s = %v; want the egress gateway's %v", k, got, v)
		}
	}
	if manifest.String(ap, "metadata", "namespace") != manifest.String(gw, "metadata", "namespace") {
		t.Error("AuthorizationPolicy is not in the egress gateway's namespace")
	}
}

// policyWithAction returns the one AuthorizationPolicy with this action.
func policyWithAction(t *testing.T, m map[string][]map[string]any, action string) map[string]any {
	t.Helper()
	var found []map[string]any
	for _, ap := range m["AuthorizationPolicy"] {
		if manifest.String(ap, "spec", "action") == action {
			found = append(found, ap)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d AuthorizationPolicies with action %s; want 1", len(found), action)
	}
	return found[0]
}

// TestIstioOnlyGatewayMayAsk: an allow returns the real token, so extauthz's
// decision ports admit the egress gateway alone, over STRICT mTLS.
func TestIstioOnlyGatewayMayAsk(t *testing.T) {
	m := istioManifests(t)
	dep := one(t, m, "Deployment")
	labels := manifest.Get(dep, "spec", "selector", "matchLabels").(map[string]any)
	pa := one(t, m, "PeerAuthentication")
	if manifest.String(pa, "spec", "mtls", "mode") != "STRICT" || manifest.String(pa, "metadata", "namespace") != manifest.String(dep, "metadata", "namespace") {
		t.Errorf("PeerAuthentication = %v; want STRICT in extauthz's namespace", pa)
	}
	ap := policyWithAction(t, m, "ALLOW")
	for k, v := range labels {
		if manifest.Get(ap, "spec", "selector", "matchLabels", k) != v || manifest.Get(pa, "spec", "selector", "matchLabels", k) != v {
			t.Errorf("policies do not select the extauthz pods (%s=%v)", k, v)
		}
	}
	svc := one(t, m, "Service")
	decisionPorts := []string{strconv.Itoa(servicePort(svc, "grpc")), strconv.Itoa(servicePort(svc, "http"))}
	gatewayOnly := false
	for _, r := range manifest.List(ap, "spec", "rules") {
		var ports []string
		for _, op := range manifest.List(r, "to") {
			for _, p := range manifest.List(op, "operation", "ports") {
				ports = append(ports, p.(string))
			}
		}
		var principals []string
		for _, src := range manifest.List(r, "from") {
			for _, p := range manifest.List(src, "source", "principals") {
				principals = append(principals, p.(string))
			}
		}
		for _, dp := range decisionPorts {
			if slices.Contains(ports, dp) || len(ports) == 0 {
				if len(principals) != 1 || !strings.HasSuffix(principals[0], "/ns/istio-system/sa/istio-egressgateway-service-account") {
					t.Errorf("rule %v admits port %s to %q; want the egress gateway only", r, dp, principals)
				} else {
					gatewayOnly = true
				}
			}
		}
	}
	if !gatewayOnly {
		t.Error("no rule admits the egress gateway to the decision ports")
	}
}

func servicePort(svc map[string]any, name string) int {
	for _, p := range manifest.List(svc, "spec", "ports") {
		if manifest.String(p, "name") == name {
			return manifest.Int(p, "port")
		}
	}
	return -1
}

func TestIstioDeployment(t *testing.T) {
	m := istioManifests(t)
	d := one(t, m, "Deployment")
	pod := manifest.Get(d, "spec", "template", "spec")
	if manifest.Get(pod, "securityContext", "runAsNonRoot") != true {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	containers := manifest.List(pod, "containers")
	if len(containers) != 1 {
		t.Fatalf("%d containers; want 1", len(containers))
	}
	c := containers[0]
	checkIstioImage(t, manifest.String(c, "image"))
	for _, f := range []string{"readOnlyRootFilesystem", "runAsNonRoot"} {
		if manifest.Get(c, "securityContext", f) != true {
			t.Errorf("container securityContext.%s is not true", f)
		}
	}
	if manifest.Get(c, "securityContext", "allowPrivilegeEscalation") != false {
		t.Error("container securityContext.allowPrivilegeEscalation is not false")
	}
	if !slices.Contains(manifest.Strings(manifest.List(c, "securityContext", "capabilities", "drop")), "ALL") {
		t.Error("container does not drop ALL capabilities")
	}
	for _, r := range []string{"requests", "limits"} {
		if manifest.String(c, "resources", r, "memory") == "" || manifest.Get(c, "resources", r, "cpu") == nil {
			t.Errorf("resources.%s lacks cpu or memory", r)
		}
	}
	if manifest.Int(c, "readinessProbe", "grpc", "port") != 9191 {
		t.Error("readinessProbe is not a gRPC health probe on 9191")
	}
	checkLiveness(t, manifest.Get(c, "livenessProbe"))
	ports := map[string]int{}
	for _, p := range manifest.List(c, "ports") {
		ports[manifest.String(p, "name")] = manifest.Int(p, "containerPort")
	}
	if ports["grpc"] != 9191 || ports["admin"] != 9090 || len(ports) != 2 {
		t.Errorf("container ports = %v; want grpc 9191 and admin 9090 (the HTTP mode is off)", ports)
	}

	args := manifest.Strings(manifest.List(c, "args"))
	if len(args) == 0 || args[0] != "serve" {
		t.Fatalf("args = %q; want serve first", args)
	}
	keyFile, ok := manifest.Flag(args, "key-file")
	if !ok {
		t.Fatal("no --key-file")
	}
	if scheme, _ := manifest.Flag(args, "upstream-scheme"); scheme != "https" {
		t.Errorf("--upstream-scheme = %q; want https (the gateway originates TLS)", scheme)
	}
	mounted := false
	for _, vm := range manifest.List(c, "volumeMounts") {
		if strings.HasPrefix(keyFile, manifest.String(vm, "mountPath")+"/") {
			mounted = manifest.Get(vm, "readOnly") == true && manifest.String(vm, "subPath") == "" &&
				volumeIsSecret(pod, manifest.String(vm, "name"))
		}
	}
	if !mounted {
		t.Errorf("--key-file %s is not on a read-only Secret volume mount without subPath", keyFile)
	}
	checkPrincipalPattern(t, args)

	svc := one(t, m, "Service")
	labels := manifest.Get(d, "spec", "template", "metadata", "labels").(map[string]any)
	for k, v := range manifest.Get(svc, "spec", "selector").(map[string]any) {
		if labels[k] != v {
			t.Errorf("Service selector %s=%v does not select the Deployment's pods", k, v)
		}
	}
	if servicePort(svc, "grpc") != 9191 {
		t.Error("Service has no port named grpc on 9191")
	}
	for _, k := range []string{"PodDisruptionBudget"} {
		pdb := one(t, m, k)
		for lk, lv := range manifest.Get(pdb, "spec", "selector", "matchLabels").(map[string]any) {
			if labels[lk] != lv {
				t.Errorf("%s does not select the Deployment's pods", k)
			}
		}
	}
	hpa := one(t, m, "HorizontalPodAutoscaler")
	if manifest.String(hpa, "spec", "scaleTargetRef", "kind") != "Deployment" ||
		manifest.String(hpa, "spec", "scaleTargetRef", "name") != manifest.String(d, "metadata", "name") {
		t.Error("HorizontalPodAutoscaler does not target the Deployment")
	}
	if manifest.Int(hpa, "spec", "minReplicas") < 2 {
		t.Error("HorizontalPodAutoscaler minReplicas < 2: one pod down would stop all egress")
	}
}

// checkLiveness: the liveness probe neither asks the admin listener, which
// every workload in the mesh may flood (e2e TestIstioLivenessSurvivesAdminFlood
// floods it), nor gRPC health, which turns NOT_SERVING without keys and would
// restart the pod in a loop.
func checkLiveness(t *testing.T, probe any) {
	t.Helper()
	switch {
	case probe == nil:
		t.Error("no livenessProbe")
	case manifest.Get(probe, "grpc") != nil:
		t.Error("livenessProbe asks gRPC health: a replica without keys would be restarted in a loop")
	case manifest.Get(probe, "httpGet", "port") == "admin" || manifest.Int(probe, "httpGet", "port") == 9090,
		manifest.Get(probe, "tcpSocket", "port") == "admin" || manifest.Int(probe, "tcpSocket", "port") == 9090:
		t.Error("livenessProbe asks the admin port, which a flood from the mesh can fill")
	}
}

// istioImage stands for the image the Istio Deployment runs. No public image
// is published, so the manifest names a placeholder that cannot be mistaken
// for a real image, and both it and the Istio guide say how to build and push one.
const istioImage = "REGISTRY/extauthz:TAG"

func checkIstioImage(t *testing.T, image string) {
	t.Helper()
	if image != istioImage {
		t.Errorf("Deployment image = %q; want the placeholder %q", image, istioImage)
	}
	steps := []string{"docker build -t " + istioImage + " .", "docker push " + istioImage}
	for _, f := range []string{"extauthz.yaml", filepath.Join("..", "..", "docs", "istio.md")} {
		text := string(manifest.ReadFile(t, f))
		for _, step := range steps {
			if !strings.Contains(text, step) {
				t.Errorf("%s does not say how to build and push the image (%q)", f, step)
			}
		}
	}
}

func volumeIsSecret(pod any, name string) bool {
	for _, v := range manifest.List(pod, "volumes") {
		if manifest.String(v, "name") == name {
			return manifest.String(v, "secret", "secretName") != ""
		}
	}
	return false
}

// checkPrincipalPattern: the SPIFFE pattern's first group is the service
// account, and it cannot be fooled by extra path segments.
func checkPrincipalPattern(t *testing.T, args []string) {
	t.Helper()
	from, _ := manifest.Flag(args, "container-id-from")
	expr, ok := strings.CutPrefix(from, "principal:")
	if !ok {
		t.Fatalf("--container-id-from = %q; want principal:REGEX", from)
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		t.Fatalf("principal pattern: %v", err)
	}
	tests := []struct {
		principal string
		want      string // "" = no match
	}{
		{"spiffe://cluster.local/ns/sandboxes/sa/demo-container", "demo-container"},
		{"spiffe://td.example/ns/sandboxes/sa/oc-1", ""},  // another trust domain
		{"spiffe://cluster.local/ns/default/sa/oc-1", ""}, // another namespace
		{"spiffe://cluster.local/ns/sandboxes-x/sa/oc-1", ""},
		{"spiffe://cluster.local/ns/sandboxes/sa/a/b", ""},
		{"spiffe://cluster.local/ns/sandboxes/sa/", ""},
		{"xspiffe://cluster.local/ns/sandboxes/sa/a", ""},
	}
	for _, tt := range tests {
		got := ""
		if m := re.FindStringSubmatch(tt.principal); m != nil {
			got = m[1]
		}
		if got != tt.want {
			t.Errorf("pattern on %q = %q; want %q", tt.principal, got, tt.want)
		}
	}
}

func TestIstioEgressTLS(t *testing.T) {
	m := istioManifests(t)
	se := one(t, m, "ServiceEntry")
	hosts := manifest.Strings(manifest.List(se, "spec", "hosts"))
	if len(hosts) == 0 {
		t.Fatal("ServiceEntry has no hosts")
	}
	gwName := manifest.String(one(t, m, "Gateway"), "metadata", "name")
	for _, h := range hosts {
		var tls any
		for _, dr := range m["DestinationRule"] {
			if manifest.String(dr, "spec", "host") != h {
				continue
			}
			for _, pl := range manifest.List(dr, "spec", "trafficPolicy", "portLevelSettings") {
				if manifest.Int(pl, "port", "number") == 443 {
					tls = manifest.Get(pl, "tls")
				}
			}
		}
		switch {
		case tls == nil:
			t.Errorf("%s: no DestinationRule originating TLS on 443", h)
		case manifest.String(tls, "mode") != "SIMPLE":
			t.Errorf("%s: tls.mode = %q; want SIMPLE", h, manifest.String(tls, "mode"))
		case manifest.String(tls, "sni") != h:
			t.Errorf("%s: tls.sni = %q", h, manifest.String(tls, "sni"))
		case !slices.Contains(manifest.Strings(manifest.List(tls, "subjectAltNames")), h):
			t.Errorf("%s: tls.subjectAltNames does not verify the name", h)
		case manifest.String(tls, "caCertificates") == "" || manifest.Get(tls, "insecureSkipVerify") == true:
			t.Errorf("%s: the upstream certificate is not verified", h)
		}
		routed := false
		for _, vs := range m["VirtualService"] {
			if slices.Contains(manifest.Strings(manifest.List(vs, "spec", "hosts")), h) &&
				slices.Contains(manifest.Strings(manifest.List(vs, "spec", "gateways")), gwName) {
				routed = true
			}
		}
		if !routed {
			t.Errorf("%s: no VirtualService routes it through Gateway %s", h, gwName)
		}
	}
}
