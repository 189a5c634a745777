package test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	securityv1 "istio.io/api/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// imageValues is the one value every render needs.
const imageValues = `
image:
  repository: registry.example.com/extauthz
  tag: v1.0.0
`

// Args every render passes, in order: before the case's own flags ...
var baseArgs = []string{
	"serve",
	"--grpc-addr=:9191",
	"--admin-addr=:9090",
	"--key-file=/etc/extauthz/keys/keys",
}

// ... and after them.
var tailArgs = []string{"--drain-delay=15s", "--shutdown-timeout=15s", "--log-level=info"}

var defaultKinds = []string{"Deployment", "HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget", "Service", "ServiceAccount"}

type chartCase struct {
	name   string
	values string // merged over values.yaml, after imageValues
	args   []string
	// the case's flags, between baseArgs and tailArgs
	mounts        map[string]string   // volume → mount path
	secrets       map[string]string   // volume → Secret name
	claims        map[string]string   // volume → PersistentVolumeClaim name (the one writable mount)
	configMaps    map[string][]string // volume → the ConfigMaps projected into it (route profiles)
	kinds         []string            // beyond defaultKinds
	withoutKinds  []string            // of defaultKinds, not rendered
	servicePorts  map[string]int32
	decisionPorts []int32
	// egress is each egress rule's ports ("UDP/53 TCP/53"), in order; nil:
	// DNS alone.
	egress []string
	check  func(t *testing.T, r *render)
}

// dnsEgress is the egress rule every render has: DNS over UDP and TCP.
const dnsEgress = "UDP/53 TCP/53"

var keysMount = map[string]string{"keys": "/etc/extauthz/keys"}

var chartCases = []chartCase{
	{
		name:          "defaults",
		args:          []string{"--container-id-from=context-extension:outbound_container_id"},
		mounts:        keysMount,
		secrets:       map[string]string{"keys": "extauthz-keys"},
		servicePorts:  map[string]int32{"grpc": 9191, "http-admin": 9090},
		decisionPorts: []int32{9191},
		check: func(t *testing.T, r *render) {
			if r.Deployment.Spec.Replicas != nil {
				t.Errorf("replicas = %d with the HPA on; want none (the HPA owns it)", *r.Deployment.Spec.Replicas)
			}
			if rules := r.NetworkPolicy.Spec.Ingress; len(rules) != 1 {
				t.Errorf("NetworkPolicy has %d ingress rules; want only the decision ports' (admin reachable by no one but the kubelet)", len(rules))
			}
		},
	},
	{
		name: "http mode with API token",
		values: `
http:
  enabled: true
  containerIdHeader: x-outbound-container-id
  apiToken:
    existingSecret: extauthz-api-token
` + redisValues,
		args: []string{
			"--container-id-from=context-extension:outbound_container_id",
			"--http-addr=:8181",
			"--http-container-id-header=x-outbound-container-id",
			"--api-token-file=/etc/extauthz/api-token/api-token",
			"--revocation-store=redis://redis.data.svc/0",
		},
		egress:        []string{dnsEgress, "TCP/6379"},
		mounts:        map[string]string{"keys": "/etc/extauthz/keys", "api-token": "/etc/extauthz/api-token"},
		secrets:       map[string]string{"keys": "extauthz-keys", "api-token": "extauthz-api-token"},
		servicePorts:  map[string]int32{"grpc": 9191, "http": 8181, "http-admin": 9090},
		decisionPorts: []int32{9191, 8181},
	},
	{
		name: "istio principal identity",
		values: `
containerIdFrom: 'principal:spiffe://cluster\.local/ns/sandboxes/sa/([^/]+)'
upstreamScheme: https
istio:
  enabled: true
`,
		args: []string{
			`--container-id-from=principal:spiffe://cluster\.local/ns/sandboxes/sa/([^/]+)`,
			"--upstream-scheme=https",
		},
		mounts:        keysMount,
		secrets:       map[string]string{"keys": "extauthz-keys"},
		kinds:         []string{"AuthorizationPolicy", "PeerAuthentication"},
		servicePorts:  map[string]int32{"grpc": 9191, "http-admin": 9090},
		decisionPorts: []int32{9191},
		egress:        []string{dnsEgress, "TCP/15012"}, // and istiod, for the sidecar
		check: func(t *testing.T, r *render) {
			pa := r.Istio["PeerAuthentication"].Spec.(*securityv1.PeerAuthentication)
			if pa.GetMtls().GetMode() != securityv1.PeerAuthentication_MutualTLS_STRICT {
				t.Errorf("PeerAuthentication mode = %v; want STRICT", pa.GetMtls().GetMode())
			}
			if !selects(pa.GetSelector().GetMatchLabels(), r.Deployment.Spec.Template.Labels) {
				t.Errorf("PeerAuthentication selector %v does not select the pods %v", pa.GetSelector().GetMatchLabels(), r.Deployment.Spec.Template.Labels)
			}
			ap := r.Istio["AuthorizationPolicy"].Spec.(*securityv1.AuthorizationPolicy)
			if ap.GetAction() != securityv1.AuthorizationPolicy_ALLOW || len(ap.GetRules()) != 2 {
				t.Fatalf("AuthorizationPolicy = %v; want ALLOW with two rules", ap)
			}
			if !selects(ap.GetSelector().GetMatchLabels(), r.Deployment.Spec.Template.Labels) {
				t.Errorf("AuthorizationPolicy selector %v does not select the pods", ap.GetSelector().GetMatchLabels())
			}
			callers := ap.GetRules()[0]
			if got := callers.GetFrom()[0].GetSource().GetPrincipals(); !slices.Equal(got, []string{"cluster.local/ns/istio-system/sa/istio-egressgateway-service-account"}) {
				t.Errorf("decision-port principals = %q; want the egress gateway's alone", got)
			}
			if got := callers.GetTo()[0].GetOperation().GetPorts(); !slices.Equal(got, []string{"9191"}) {
				t.Errorf("decision ports = %q; want [9191]", got)
			}
			admin := ap.GetRules()[1]
			if len(admin.GetFrom()) != 0 || !slices.Equal(admin.GetTo()[0].GetOperation().GetPorts(), []string{"9090"}) {
				t.Errorf("second rule = %v; want the admin port 9090 from anyone", admin)
			}
		},
	},
	{
		name: "mTLS with client identities",
		values: `
tls:
  existingSecret: extauthz-tls
  clientCA:
    existingSecret: extauthz-tls
  clientIdentities:
    - uri:spiffe://cluster.local/ns/proxies/sa/envoy
    - 'dns:~envoy-[0-9]+\.proxies\.svc'
`,
		args: []string{
			"--container-id-from=context-extension:outbound_container_id",
			"--tls-cert-file=/etc/extauthz/tls/tls.crt",
			"--tls-key-file=/etc/extauthz/tls/tls.key",
			"--tls-client-ca-file=/etc/extauthz/client-ca/ca.crt",
			`--tls-client-identities=uri:spiffe://cluster.local/ns/proxies/sa/envoy,dns:~envoy-[0-9]+\.proxies\.svc`,
		},
		mounts:        map[string]string{"keys": "/etc/extauthz/keys", "tls": "/etc/extauthz/tls", "client-ca": "/etc/extauthz/client-ca"},
		secrets:       map[string]string{"keys": "extauthz-keys", "tls": "extauthz-tls", "client-ca": "extauthz-tls"},
		servicePorts:  map[string]int32{"grpc": 9191, "http-admin": 9090},
		decisionPorts: []int32{9191},
	},
	{
		name: "service monitor",
		values: `
serviceMonitor:
  enabled: true
  labels:
    release: prometheus
networkPolicy:
  adminFrom:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: monitoring
      podSelector:
        matchLabels:
          app.kubernetes.io/name: prometheus
`,
		args:          []string{"--container-id-from=context-extension:outbound_container_id"},
		mounts:        keysMount,
		secrets:       map[string]string{"keys": "extauthz-keys"},
		kinds:         []string{"ServiceMonitor"},
		servicePorts:  map[string]int32{"grpc": 9191, "http-admin": 9090},
		decisionPorts: []int32{9191},
		check: func(t *testing.T, r *render) {
			sm := r.ServiceMonitor
			if sm.Labels["release"] != "prometheus" {
				t.Errorf("ServiceMonitor labels = %v; want release: prometheus", sm.Labels)
			}
			if !selects(sm.Spec.Selector.MatchLabels, r.Service.Labels) {
				t.Errorf("ServiceMonitor selector %v does not select the Service %v", sm.Spec.Selector.MatchLabels, r.Service.Labels)
			}
			if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "http-admin" || sm.Spec.Endpoints[0].Path != "/metrics" {
				t.Errorf("ServiceMonitor endpoints = %+v; want http-admin /metrics", sm.Spec.Endpoints)
			}
			rules := r.NetworkPolicy.Spec.Ingress
			if len(rules) != 2 {
				t.Fatalf("NetworkPolicy has %d ingress rules; want decision ports and admin", len(rules))
			}
			if got := rulePorts(rules[1]); !slices.Equal(got, []int32{9090}) {
				t.Errorf("admin rule ports = %v; want [9090]", got)
			}
			from := rules[1].From
			if len(from) != 1 || from[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" ||
				from[0].PodSelector.MatchLabels["app.kubernetes.io/name"] != "prometheus" {
				t.Errorf("admin rule from = %+v; want the monitoring namespace's prometheus pods", from)
			}
		},
	},
}

// TestChartRenders renders each value set, decodes every document strictly
// and checks what each must hold.
func TestChartRenders(t *testing.T) {
	for _, c := range chartCases {
		t.Run(c.name, func(t *testing.T) {
			r := mustRender(t, imageValues+c.values)
			wantKinds := slices.DeleteFunc(append(slices.Clone(defaultKinds), c.kinds...), func(k string) bool { return slices.Contains(c.withoutKinds, k) })
			slices.Sort(wantKinds)
			if got := slices.Sorted(slices.Values(r.kinds)); !slices.Equal(got, wantKinds) {
				t.Errorf("kinds = %v; want %v", got, wantKinds)
			}
			ctr := r.container(t)
			wantArgs := slices.Concat(baseArgs, c.args, tailArgs)
			if !slices.Equal(ctr.Args, wantArgs) {
				t.Errorf("args =\n  %s\nwant\n  %s", strings.Join(ctr.Args, "\n  "), strings.Join(wantArgs, "\n  "))
			}
			if ctr.Image != "registry.example.com/extauthz:v1.0.0" {
				t.Errorf("image = %q", ctr.Image)
			}
			checkPod(t, r.Deployment.Spec.Template.Spec, ctr)
			checkVolumes(t, r.Deployment.Spec.Template.Spec, ctr, c.mounts, c.secrets, c.claims, c.configMaps)
			checkService(t, r, c.servicePorts)
			checkNetworkPolicy(t, r, c.decisionPorts, c.egress)
			if c.check != nil {
				c.check(t, r)
			}
		})
	}
}

// checkPod checks what holds for every render: non-root, read-only root,
// no privilege, no service account token, probes on the admin port,
// resources, and a grace period longer than the drain.
func checkPod(t *testing.T, pod corev1.PodSpec, ctr corev1.Container) {
	t.Helper()
	psc := pod.SecurityContext
	if psc == nil || !isTrue(psc.RunAsNonRoot) || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v; want runAsNonRoot, runAsUser 65532, seccomp RuntimeDefault", psc)
	}
	sc := ctr.SecurityContext
	if sc == nil || !isTrue(sc.RunAsNonRoot) || sc.RunAsUser == nil || *sc.RunAsUser != 65532 ||
		!isTrue(sc.ReadOnlyRootFilesystem) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Privileged != nil && *sc.Privileged ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container securityContext = %+v; want non-root 65532, read-only root, no escalation, drop ALL, seccomp RuntimeDefault", sc)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken is not false")
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("pod uses a host namespace")
	}
	for _, e := range ctr.Env {
		if !slices.Contains([]string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"}, e.Name) || e.ValueFrom != nil {
			t.Errorf("container env %s: want only the OTLP exporter's endpoint and protocol, as values (configuration is in args, secrets in files)", e.Name)
		}
	}
	if len(ctr.EnvFrom) != 0 {
		t.Errorf("container envFrom = %v; want none (configuration is in args, secrets in files)", ctr.EnvFrom)
	}
	adminPort := containerPort(t, ctr, "admin")
	if p := ctr.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" ||
		(p.HTTPGet.Port != intstr.FromString("admin") && p.HTTPGet.Port != intstr.FromInt32(adminPort)) {
		t.Errorf("readiness probe = %+v; want GET /readyz on the admin port", p)
	}
	// Liveness must not depend on the admin listener, which a flood can
	// fill (issue 21 item 7): a TCP connect to the gRPC port.
	grpcPort := containerPort(t, ctr, "grpc")
	if p := ctr.LivenessProbe; p == nil || p.TCPSocket == nil ||
		(p.TCPSocket.Port != intstr.FromString("grpc") && p.TCPSocket.Port != intstr.FromInt32(grpcPort)) {
		t.Errorf("liveness probe = %+v; want a TCP connect to the gRPC port", p)
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := ctr.Resources.Requests[name], ctr.Resources.Limits[name]
		if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
			t.Errorf("%s: request %v, limit %v; want both set, request ≤ limit", name, req.String(), lim.String())
		}
	}
	if mem := ctr.Resources.Limits[corev1.ResourceMemory]; mem.Cmp(resource.MustParse("64Mi")) < 0 {
		t.Errorf("memory limit %v is below 64Mi", mem.String())
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || *g <= 30 {
		t.Errorf("terminationGracePeriodSeconds = %v; want more than drain delay + shutdown timeout (30)", g)
	}
}

// checkVolumes checks that the volumes are exactly the Secrets wanted,
// mounted read-only as directories (no subPath, so that updates propagate)
// and readable by the server's group alone, the ConfigMaps wanted (route
// profiles, projected whole into one read-only directory), and the claims
// wanted (the revocation file's), the only writable mounts.
func checkVolumes(t *testing.T, pod corev1.PodSpec, ctr corev1.Container, mounts, secrets, claims map[string]string, configMaps map[string][]string) {
	t.Helper()
	gotMounts := map[string]string{}
	for _, m := range ctr.VolumeMounts {
		gotMounts[m.Name] = m.MountPath
		if m.SubPath != "" || m.SubPathExpr != "" {
			t.Errorf("volume %s mounted with subPath: a subPath mount never sees the Secret's updates", m.Name)
		}
		if _, claim := claims[m.Name]; !m.ReadOnly && !claim {
			t.Errorf("volume %s mounted writable", m.Name)
		}
	}
	if !maps.Equal(gotMounts, mounts) {
		t.Errorf("mounts = %v; want %v", gotMounts, mounts)
	}
	gotSecrets, gotClaims, gotConfigMaps := map[string]string{}, map[string]string{}, map[string][]string{}
	for _, v := range pod.Volumes {
		if pj := v.Projected; pj != nil {
			for _, src := range pj.Sources {
				if src.ConfigMap == nil || len(src.ConfigMap.Items) != 0 {
					t.Errorf("projected volume %s: source %+v; want whole ConfigMaps alone", v.Name, src)
					continue
				}
				gotConfigMaps[v.Name] = append(gotConfigMaps[v.Name], src.ConfigMap.Name)
			}
			continue
		}
		if pvc := v.PersistentVolumeClaim; pvc != nil {
			gotClaims[v.Name] = pvc.ClaimName
			if pvc.ReadOnly {
				t.Errorf("claim volume %s is read-only: the revocation file is written", v.Name)
			}
			continue
		}
		if v.Secret == nil {
			t.Errorf("volume %s is neither a Secret nor a claim", v.Name)
			continue
		}
		gotSecrets[v.Name] = v.Secret.SecretName
		if m := v.Secret.DefaultMode; m == nil || *m != 0o440 {
			t.Errorf("volume %s defaultMode = %v; want 0440", v.Name, m)
		}
		if len(v.Secret.Items) != 0 {
			t.Errorf("volume %s picks items; want the whole Secret as a directory", v.Name)
		}
	}
	if !maps.Equal(gotSecrets, secrets) {
		t.Errorf("secret volumes = %v; want %v", gotSecrets, secrets)
	}
	if !maps.Equal(gotClaims, claims) {
		t.Errorf("claim volumes = %v; want %v", gotClaims, claims)
	}
	if !maps.EqualFunc(gotConfigMaps, configMaps, slices.Equal) {
		t.Errorf("ConfigMap volumes = %v; want %v", gotConfigMaps, configMaps)
	}
}

// checkService checks the Service's ports and that it selects the pods.
func checkService(t *testing.T, r *render, want map[string]int32) {
	t.Helper()
	got := map[string]int32{}
	for _, p := range r.Service.Spec.Ports {
		got[p.Name] = p.Port
		ctrName := map[string]string{"http-admin": "admin"}[p.Name]
		if ctrName == "" {
			ctrName = p.Name
		}
		if p.TargetPort != intstr.FromString(ctrName) {
			t.Errorf("Service port %s targets %v; want the container port %s", p.Name, p.TargetPort.String(), ctrName)
		}
		containerPort(t, r.container(t), ctrName)
	}
	if !maps.Equal(got, want) {
		t.Errorf("Service ports = %v; want %v", got, want)
	}
	if r.Service.Spec.Type != "" && r.Service.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("Service type = %s; want ClusterIP", r.Service.Spec.Type)
	}
	if !selects(r.Service.Spec.Selector, r.Deployment.Spec.Template.Labels) {
		t.Errorf("Service selector %v does not select the pods %v", r.Service.Spec.Selector, r.Deployment.Spec.Template.Labels)
	}
}

// checkNetworkPolicy checks that the decision ports admit the proxy's pods
// alone (the default peers: the Istio egress gateway), and that egress goes
// to the rules wanted alone, DNS first.
func checkNetworkPolicy(t *testing.T, r *render, decisionPorts []int32, egress []string) {
	t.Helper()
	np := r.NetworkPolicy
	if !selects(np.Spec.PodSelector.MatchLabels, r.Deployment.Spec.Template.Labels) || len(np.Spec.PodSelector.MatchLabels) == 0 {
		t.Errorf("NetworkPolicy podSelector %v does not select the pods", np.Spec.PodSelector.MatchLabels)
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}) {
		t.Errorf("policyTypes = %v; want [Ingress Egress]", np.Spec.PolicyTypes)
	}
	checkEgress(t, np, egress)
	if len(np.Spec.Ingress) == 0 {
		t.Fatal("NetworkPolicy has no ingress rule")
	}
	rule := np.Spec.Ingress[0]
	if got := rulePorts(rule); !slices.Equal(got, decisionPorts) {
		t.Errorf("decision rule ports = %v; want %v", got, decisionPorts)
	}
	want := []networkingv1.NetworkPolicyPeer{{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "istio-system"}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"istio": "egressgateway"}},
	}}
	if len(rule.From) != 1 || rule.From[0].IPBlock != nil ||
		!selects(rule.From[0].NamespaceSelector.MatchLabels, want[0].NamespaceSelector.MatchLabels) ||
		!selects(rule.From[0].PodSelector.MatchLabels, want[0].PodSelector.MatchLabels) {
		t.Errorf("decision rule from = %+v; want the egress gateway's pods alone", rule.From)
	}
	// No rule may open the decision ports to anyone else.
	for i, rule := range np.Spec.Ingress[1:] {
		for _, p := range rulePorts(rule) {
			if slices.Contains(decisionPorts, p) {
				t.Errorf("ingress rule %d also opens decision port %d", i+1, p)
			}
		}
		if len(rule.Ports) == 0 {
			t.Errorf("ingress rule %d has no ports: it opens every port", i+1)
		}
	}
}

func rulePorts(rule networkingv1.NetworkPolicyIngressRule) []int32 {
	var out []int32
	for _, p := range rule.Ports {
		if p.Protocol == nil || *p.Protocol != corev1.ProtocolTCP || p.Port == nil || p.Port.Type != intstr.Int || p.EndPort != nil {
			out = append(out, -1) // not a single TCP port number
			continue
		}
		out = append(out, p.Port.IntVal)
	}
	return out
}

func containerPort(t *testing.T, ctr corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range ctr.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Errorf("container has no port named %s", name)
	return 0
}

func isTrue(b *bool) bool { return b != nil && *b }

// selects reports whether selector is non-empty and every one of its
// labels is in labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
