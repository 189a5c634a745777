package envoy

import (
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// istioManifests loads every document under istio/, indexed by kind.
func istioManifests(t *testing.T) map[string][]map[string]any {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("istio", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests under istio/ (%v)", err)
	}
	byKind := map[string][]map[string]any{}
	for _, f := range files {
		for i, doc := range loadDocs(t, f) {
			kind := getString(doc, "kind")
			if kind == "" || getString(doc, "apiVersion") == "" || getString(doc, "metadata", "name") == "" {
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
	}
	for kind, api := range want {
		if len(m[kind]) == 0 {
			t.Errorf("no %s", kind)
		}
		for _, d := range m[kind] {
			if got := getString(d, "apiVersion"); got != api {
				t.Errorf("%s %s: apiVersion %q; want %q", kind, getString(d, "metadata", "name"), got, api)
			}
		}
	}
}

func TestIstioProviderWiring(t *testing.T) {
	m := istioManifests(t)
	providers := getList(one(t, m, "IstioOperator"), "spec", "meshConfig", "extensionProviders")
	if len(providers) != 1 {
		t.Fatalf("%d extension providers; want 1", len(providers))
	}
	p := providers[0]
	g := get(p, "envoyExtAuthzGrpc")
	if g == nil {
		t.Fatal("the extension provider is not envoyExtAuthzGrpc")
	}
	svc := one(t, m, "Service")
	fqdn := getString(svc, "metadata", "name") + "." + getString(svc, "metadata", "namespace") + ".svc.cluster.local"
	if got := getString(g, "service"); got != fqdn {
		t.Errorf("provider service = %q; want the Service's FQDN %q", got, fqdn)
	}
	if got := getInt(g, "port"); got != 9191 || got != servicePort(svc, "grpc") {
		t.Errorf("provider port = %d; want 9191, the Service's grpc port (%d)", got, servicePort(svc, "grpc"))
	}
	if fo, ok := get(g, "failOpen").(bool); !ok || fo {
		t.Errorf("failOpen = %v; want an explicit false (fail closed)", get(g, "failOpen"))
	}
	if getString(g, "timeout") == "" {
		t.Error("provider has no timeout")
	}

	ap := policyWithAction(t, m, "CUSTOM")
	if got, want := getString(ap, "spec", "provider", "name"), getString(p, "name"); got == "" || got != want {
		t.Errorf("AuthorizationPolicy provider %q != mesh config provider %q", got, want)
	}
	gw := one(t, m, "Gateway")
	for k, v := range get(gw, "spec", "selector").(map[string]any) {
		if got := get(ap, "spec", "selector", "matchLabels", k); got != v {
			t.Errorf("AuthorizationPolicy selector %s = %v; want the egress gateway's %v", k, got, v)
		}
	}
	if getString(ap, "metadata", "namespace") != getString(gw, "metadata", "namespace") {
		t.Error("AuthorizationPolicy is not in the egress gateway's namespace")
	}
}

// policyWithAction returns the one AuthorizationPolicy with this action.
func policyWithAction(t *testing.T, m map[string][]map[string]any, action string) map[string]any {
	t.Helper()
	var found []map[string]any
	for _, ap := range m["AuthorizationPolicy"] {
		if getString(ap, "spec", "action") == action {
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
	labels := get(dep, "spec", "selector", "matchLabels").(map[string]any)
	pa := one(t, m, "PeerAuthentication")
	if getString(pa, "spec", "mtls", "mode") != "STRICT" || getString(pa, "metadata", "namespace") != getString(dep, "metadata", "namespace") {
		t.Errorf("PeerAuthentication = %v; want STRICT in extauthz's namespace", pa)
	}
	ap := policyWithAction(t, m, "ALLOW")
	for k, v := range labels {
		if get(ap, "spec", "selector", "matchLabels", k) != v || get(pa, "spec", "selector", "matchLabels", k) != v {
			t.Errorf("policies do not select the extauthz pods (%s=%v)", k, v)
		}
	}
	svc := one(t, m, "Service")
	decisionPorts := []string{strconv.Itoa(servicePort(svc, "grpc")), strconv.Itoa(servicePort(svc, "http"))}
	gatewayOnly := false
	for _, r := range getList(ap, "spec", "rules") {
		var ports []string
		for _, op := range getList(r, "to") {
			for _, p := range getList(op, "operation", "ports") {
				ports = append(ports, p.(string))
			}
		}
		var principals []string
		for _, src := range getList(r, "from") {
			for _, p := range getList(src, "source", "principals") {
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
	for _, p := range getList(svc, "spec", "ports") {
		if getString(p, "name") == name {
			return getInt(p, "port")
		}
	}
	return -1
}

func TestIstioDeployment(t *testing.T) {
	m := istioManifests(t)
	d := one(t, m, "Deployment")
	pod := get(d, "spec", "template", "spec")
	if get(pod, "securityContext", "runAsNonRoot") != true {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	containers := getList(pod, "containers")
	if len(containers) != 1 {
		t.Fatalf("%d containers; want 1", len(containers))
	}
	c := containers[0]
	checkIstioImage(t, getString(c, "image"))
	for _, f := range []string{"readOnlyRootFilesystem", "runAsNonRoot"} {
		if get(c, "securityContext", f) != true {
			t.Errorf("container securityContext.%s is not true", f)
		}
	}
	if get(c, "securityContext", "allowPrivilegeEscalation") != false {
		t.Error("container securityContext.allowPrivilegeEscalation is not false")
	}
	if !slices.Contains(stringList(getList(c, "securityContext", "capabilities", "drop")), "ALL") {
		t.Error("container does not drop ALL capabilities")
	}
	for _, r := range []string{"requests", "limits"} {
		if getString(c, "resources", r, "memory") == "" || get(c, "resources", r, "cpu") == nil {
			t.Errorf("resources.%s lacks cpu or memory", r)
		}
	}
	if getInt(c, "readinessProbe", "grpc", "port") != 9191 {
		t.Error("readinessProbe is not a gRPC health probe on 9191")
	}
	if get(c, "livenessProbe") == nil {
		t.Error("no livenessProbe")
	}
	ports := map[string]int{}
	for _, p := range getList(c, "ports") {
		ports[getString(p, "name")] = getInt(p, "containerPort")
	}
	if ports["grpc"] != 9191 || ports["admin"] != 9090 || len(ports) != 2 {
		t.Errorf("container ports = %v; want grpc 9191 and admin 9090 (the HTTP mode is off)", ports)
	}

	args := stringList(getList(c, "args"))
	if len(args) == 0 || args[0] != "serve" {
		t.Fatalf("args = %q; want serve first", args)
	}
	keyFile, ok := flagValue(args, "key-file")
	if !ok {
		t.Fatal("no --key-file")
	}
	if scheme, _ := flagValue(args, "upstream-scheme"); scheme != "https" {
		t.Errorf("--upstream-scheme = %q; want https (the gateway originates TLS)", scheme)
	}
	mounted := false
	for _, vm := range getList(c, "volumeMounts") {
		if strings.HasPrefix(keyFile, getString(vm, "mountPath")+"/") {
			mounted = get(vm, "readOnly") == true && getString(vm, "subPath") == "" &&
				volumeIsSecret(pod, getString(vm, "name"))
		}
	}
	if !mounted {
		t.Errorf("--key-file %s is not on a read-only Secret volume mount without subPath", keyFile)
	}
	checkPrincipalPattern(t, args)

	svc := one(t, m, "Service")
	labels := get(d, "spec", "template", "metadata", "labels").(map[string]any)
	for k, v := range get(svc, "spec", "selector").(map[string]any) {
		if labels[k] != v {
			t.Errorf("Service selector %s=%v does not select the Deployment's pods", k, v)
		}
	}
	if servicePort(svc, "grpc") != 9191 {
		t.Error("Service has no port named grpc on 9191")
	}
	for _, k := range []string{"PodDisruptionBudget"} {
		pdb := one(t, m, k)
		for lk, lv := range get(pdb, "spec", "selector", "matchLabels").(map[string]any) {
			if labels[lk] != lv {
				t.Errorf("%s does not select the Deployment's pods", k)
			}
		}
	}
	hpa := one(t, m, "HorizontalPodAutoscaler")
	if getString(hpa, "spec", "scaleTargetRef", "kind") != "Deployment" ||
		getString(hpa, "spec", "scaleTargetRef", "name") != getString(d, "metadata", "name") {
		t.Error("HorizontalPodAutoscaler does not target the Deployment")
	}
	if getInt(hpa, "spec", "minReplicas") < 2 {
		t.Error("HorizontalPodAutoscaler minReplicas < 2: one pod down would stop all egress")
	}
}

// istioImage stands for the image the Istio Deployment runs. No public image
// is published, so the manifest names a placeholder that cannot be mistaken
// for a real image, and both it and the README say how to build and push one.
const istioImage = "REGISTRY/extauthz:TAG"

func checkIstioImage(t *testing.T, image string) {
	t.Helper()
	if image != istioImage {
		t.Errorf("Deployment image = %q; want the placeholder %q", image, istioImage)
	}
	steps := []string{"docker build -t " + istioImage + " .", "docker push " + istioImage}
	for _, f := range []string{filepath.Join("istio", "extauthz.yaml"), filepath.Join(repoRoot, "README.md")} {
		text := string(readFile(t, f))
		for _, step := range steps {
			if !strings.Contains(text, step) {
				t.Errorf("%s does not say how to build and push the image (%q)", f, step)
			}
		}
	}
}

func volumeIsSecret(pod any, name string) bool {
	for _, v := range getList(pod, "volumes") {
		if getString(v, "name") == name {
			return getString(v, "secret", "secretName") != ""
		}
	}
	return false
}

// checkPrincipalPattern: the SPIFFE pattern's first group is the service
// account, and it cannot be fooled by extra path segments.
func checkPrincipalPattern(t *testing.T, args []string) {
	t.Helper()
	from, _ := flagValue(args, "container-id-from")
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
	hosts := stringList(getList(se, "spec", "hosts"))
	if len(hosts) == 0 {
		t.Fatal("ServiceEntry has no hosts")
	}
	gwName := getString(one(t, m, "Gateway"), "metadata", "name")
	for _, h := range hosts {
		var tls any
		for _, dr := range m["DestinationRule"] {
			if getString(dr, "spec", "host") != h {
				continue
			}
			for _, pl := range getList(dr, "spec", "trafficPolicy", "portLevelSettings") {
				if getInt(pl, "port", "number") == 443 {
					tls = get(pl, "tls")
				}
			}
		}
		switch {
		case tls == nil:
			t.Errorf("%s: no DestinationRule originating TLS on 443", h)
		case getString(tls, "mode") != "SIMPLE":
			t.Errorf("%s: tls.mode = %q; want SIMPLE", h, getString(tls, "mode"))
		case getString(tls, "sni") != h:
			t.Errorf("%s: tls.sni = %q", h, getString(tls, "sni"))
		case !slices.Contains(stringList(getList(tls, "subjectAltNames")), h):
			t.Errorf("%s: tls.subjectAltNames does not verify the name", h)
		case getString(tls, "caCertificates") == "" || get(tls, "insecureSkipVerify") == true:
			t.Errorf("%s: the upstream certificate is not verified", h)
		}
		routed := false
		for _, vs := range m["VirtualService"] {
			if slices.Contains(stringList(getList(vs, "spec", "hosts")), h) &&
				slices.Contains(stringList(getList(vs, "spec", "gateways")), gwName) {
				routed = true
			}
		}
		if !routed {
			t.Errorf("%s: no VirtualService routes it through Gateway %s", h, gwName)
		}
	}
}
