package test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// checkEgress checks the NetworkPolicy's egress rules: their ports, in
// order, are want (nil: DNS alone); DNS comes first, to kube-dns unless the
// case names other peers; and no rule lacks peers or ports, either of which
// would allow every destination or every port.
func checkEgress(t *testing.T, np *networkingv1.NetworkPolicy, want []string) {
	t.Helper()
	if want == nil {
		want = []string{dnsEgress}
	}
	var got []string
	for i, rule := range np.Spec.Egress {
		got = append(got, egressPorts(rule))
		if len(rule.To) == 0 {
			t.Errorf("egress rule %d has no peers: it allows every destination", i)
		}
		for j, p := range rule.To {
			if p.PodSelector == nil && p.NamespaceSelector == nil && p.IPBlock == nil {
				t.Errorf("egress rule %d peer %d is empty", i, j)
			}
		}
		if len(rule.Ports) == 0 {
			t.Errorf("egress rule %d has no ports: it allows every port", i)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("egress rules' ports = %q; want %q", got, want)
	}
	if len(np.Spec.Egress) > 0 && got[0] == dnsEgress {
		if !peersAre(np.Spec.Egress[0].To, "kube-system", map[string]string{"k8s-app": "kube-dns"}) {
			t.Errorf("DNS egress to %+v; want kube-dns in kube-system", np.Spec.Egress[0].To)
		}
	}
}

// egressPorts writes a rule's ports as "PROTO/port …".
func egressPorts(rule networkingv1.NetworkPolicyEgressRule) string {
	var out []string
	for _, p := range rule.Ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		port := "any"
		if p.Port != nil && p.Port.Type == intstr.Int && p.EndPort == nil {
			port = fmt.Sprint(p.Port.IntVal)
		}
		out = append(out, string(proto)+"/"+port)
	}
	return strings.Join(out, " ")
}

// peersAre reports whether peers is exactly one peer: the pods with labels
// in the namespace named.
func peersAre(peers []networkingv1.NetworkPolicyPeer, namespace string, labels map[string]string) bool {
	if len(peers) != 1 || peers[0].IPBlock != nil || peers[0].NamespaceSelector == nil || peers[0].PodSelector == nil {
		return false
	}
	p := peers[0]
	return len(p.NamespaceSelector.MatchLabels) == 1 && p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == namespace &&
		len(p.PodSelector.MatchLabels) == len(labels) && selects(labels, p.PodSelector.MatchLabels)
}

// TestEgressRules: egress is restricted to DNS always, and to Redis, the
// OTLP collector and istiod each only when configured, to the peers named,
// on the port the URL names unless overridden; extraEgress is appended as
// it is. DNS may be pointed elsewhere (NodeLocal DNSCache) and to another
// port.
func TestEgressRules(t *testing.T) {
	const (
		api     = "http: {enabled: true, apiToken: {existingSecret: extauthz-api-token}}\n"
		tracing = "tracing: {enabled: true, endpoint: 'http://otel-collector.observability.svc:4317'}\n"
		otlpTo  = "      to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: observability}}, podSelector: {matchLabels: {app: otel-collector}}}]\n"
	)
	for _, c := range []struct {
		name, values string
		want         []string
		check        func(t *testing.T, np *networkingv1.NetworkPolicy)
	}{
		{"defaults: DNS alone", "", []string{dnsEgress}, nil},
		{"Redis on the URL's port", api + redisValues, []string{dnsEgress, "TCP/6379"}, func(t *testing.T, np *networkingv1.NetworkPolicy) {
			if !peersAre(np.Spec.Egress[1].To, "data", map[string]string{"app.kubernetes.io/name": "redis"}) {
				t.Errorf("Redis egress to %+v; want the redis pods of namespace data", np.Spec.Egress[1].To)
			}
		}},
		{"Redis on an explicit port of an IPv6 URL", strings.Replace(redisValues, "redis://redis.data.svc/0", "'rediss://[fd00::6]:6380'", 1),
			[]string{dnsEgress, "TCP/6380"}, nil},
		{"Redis port overridden", redisValues + "      port: 7000\n", []string{dnsEgress, "TCP/7000"}, nil},
		{"Redis without the API", redisValues, []string{dnsEgress, "TCP/6379"}, nil},
		{"OTLP when tracing", tracing + "networkPolicy:\n  egress:\n    otlp:\n" + otlpTo, []string{dnsEgress, "TCP/4317"}, func(t *testing.T, np *networkingv1.NetworkPolicy) {
			if !peersAre(np.Spec.Egress[1].To, "observability", map[string]string{"app": "otel-collector"}) {
				t.Errorf("OTLP egress to %+v; want the collector's pods", np.Spec.Egress[1].To)
			}
		}},
		{"Redis, OTLP and istiod together", api + tracing + "istio: {enabled: true}\n" + redisValues + "    otlp:\n" + otlpTo,
			[]string{dnsEgress, "TCP/6379", "TCP/4317", "TCP/15012"}, func(t *testing.T, np *networkingv1.NetworkPolicy) {
				if !peersAre(np.Spec.Egress[3].To, "istio-system", map[string]string{"app": "istiod"}) {
					t.Errorf("istiod egress to %+v; want istiod in istio-system", np.Spec.Egress[3].To)
				}
			}},
		{"NodeLocal DNSCache on another port", "networkPolicy: {egress: {dns: {to: [{ipBlock: {cidr: 169.254.20.10/32}}], port: 5353}}}\n",
			[]string{"UDP/5353 TCP/5353"}, func(t *testing.T, np *networkingv1.NetworkPolicy) {
				if to := np.Spec.Egress[0].To; len(to) != 1 || to[0].IPBlock == nil || to[0].IPBlock.CIDR != "169.254.20.10/32" {
					t.Errorf("DNS egress to %+v; want the ipBlock given", to)
				}
			}},
		{"extraEgress appended", "networkPolicy: {extraEgress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}}], ports: [{protocol: TCP, port: 15008}]}]}\n",
			[]string{dnsEgress, "TCP/15008"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := mustRender(t, imageValues+c.values)
			np := r.NetworkPolicy
			if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
				t.Fatalf("policyTypes = %v; want Egress", np.Spec.PolicyTypes)
			}
			var got []string
			for _, rule := range np.Spec.Egress {
				got = append(got, egressPorts(rule))
				if len(rule.To) == 0 || len(rule.Ports) == 0 {
					t.Errorf("egress rule %+v lacks peers or ports", rule)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("egress rules' ports = %q; want %q", got, c.want)
			}
			if c.check != nil {
				c.check(t, np)
			}
		})
	}
}

// TestEgressRefused: a needed egress rule without peers fails the render,
// since a rule without peers would allow every destination.
func TestEgressRefused(t *testing.T) {
	for _, c := range []struct{ name, values, want string }{
		{"no DNS peers", "networkPolicy: {egress: {dns: {to: []}}}", "networkPolicy.egress.dns.to is empty"},
		{"Redis without peers", redisStore, "networkPolicy.egress.redis.to is empty"},
		{"tracing without collector peers", "tracing: {enabled: true, endpoint: 'http://otel-collector:4317'}", "networkPolicy.egress.otlp.to is empty"},
		{"istio without istiod peers", "istio: {enabled: true}\nnetworkPolicy: {egress: {istiod: {to: []}}}", "networkPolicy.egress.istiod.to is empty"},
		{"an empty peer", "networkPolicy: {egress: {dns: {to: [{}]}}}", "at '/networkPolicy/egress/dns/to/0'"},
		{"DNS port 0", "networkPolicy: {egress: {dns: {port: 0}}}", "at '/networkPolicy/egress/dns/port'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := failure(t, imageValues+c.values); !strings.Contains(got, c.want) {
				t.Errorf("render failed with %q; want it to say %q", got, c.want)
			}
		})
	}
}

// TestEgressOffWithThePolicy: with networkPolicy.enabled false nothing is
// restricted and no peers are needed, Redis's included.
func TestEgressOffWithThePolicy(t *testing.T) {
	r := mustRender(t, imageValues+"networkPolicy: {enabled: false}\nrevocation: {store: redis, redis: {url: 'redis://redis:6379'}}\n")
	if r.NetworkPolicy != nil {
		t.Errorf("a NetworkPolicy rendered with networkPolicy.enabled false")
	}
}
