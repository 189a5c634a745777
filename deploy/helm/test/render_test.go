package test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/deploy/istio/schema"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// chartDir is the chart under test.
const chartDir = "../extauthz"

// Release name and namespace of every render.
const (
	releaseName = "extauthz"
	namespace   = "extauthz"
)

// decoder knows exactly the kinds the chart may render, with the API types
// of deploy/istio's manifests plus NetworkPolicy, PersistentVolumeClaim (the
// revocation file's) and ConfigMap (route profiles, which hold no secret:
// TestNoPlaintextSecrets): a Secret or any other kind fails to decode.
var decoder = schema.Decoder{
	Kube:  pick(schema.Manifests.Kube, "ServiceAccount", "Service", "Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler"),
	Istio: pick(schema.Manifests.Istio, "AuthorizationPolicy", "PeerAuthentication"),
}

func init() {
	decoder.Kube[networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy")] = func() any { return &networkingv1.NetworkPolicy{} }
	decoder.Kube[corev1.SchemeGroupVersion.WithKind("PersistentVolumeClaim")] = func() any { return &corev1.PersistentVolumeClaim{} }
	decoder.Kube[corev1.SchemeGroupVersion.WithKind("ConfigMap")] = func() any { return &corev1.ConfigMap{} }
}

// pick returns the entries of m for the kinds named.
func pick[V any](m map[k8sschema.GroupVersionKind]V, kinds ...string) map[k8sschema.GroupVersionKind]V {
	out := map[k8sschema.GroupVersionKind]V{}
	for gvk, v := range m {
		if slices.Contains(kinds, gvk.Kind) {
			out[gvk] = v
		}
	}
	if len(out) != len(kinds) {
		panic(fmt.Sprintf("pick: kinds %v, found %d", kinds, len(out)))
	}
	return out
}

var serviceMonitorKind = k8sschema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}

// serviceMonitor is the part of the Prometheus Operator's
// monitoring.coreos.com/v1 ServiceMonitor that the chart renders. k8s.io/api
// has no type for it and the operator's module is far too heavy to import for
// this, so it is decoded strictly into this struct: a field not listed here
// fails, even where the operator would take it. Add a field, with the
// operator's name and type, when the template grows one.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// promDuration is the pattern the ServiceMonitor CRD gives its durations.
var promDuration = regexp.MustCompile(`^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$`)

// render is one decoded render of the chart.
type render struct {
	text    string                             // every rendered document, joined
	objects map[k8sschema.GroupVersionKind]any // by kind: the chart renders each kind at most once
	kinds   []string                           // in render order

	Deployment     *appsv1.Deployment
	Service        *corev1.Service
	NetworkPolicy  *networkingv1.NetworkPolicy
	Claim          *corev1.PersistentVolumeClaim
	ConfigMap      *corev1.ConfigMap
	ServiceMonitor *serviceMonitor
	Istio          map[string]*schema.IstioResource // by kind
}

// container is the Deployment's extauthz container.
func (r *render) container(t *testing.T) corev1.Container {
	t.Helper()
	if r.Deployment == nil {
		t.Fatal("no Deployment rendered")
	}
	cs := r.Deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "extauthz" {
		t.Fatalf("containers = %v; want one named extauthz", cs)
	}
	return cs[0]
}

var testChart *chart.Chart

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	if testChart == nil {
		c, err := loader.Load(chartDir)
		if err != nil {
			t.Fatal(err)
		}
		testChart = c
	}
	return testChart
}

// renderChart renders the chart with the values in valuesYAML (merged over
// values.yaml, as `helm install -f` does) and returns the rendered files, or
// the error that a `fail` or `required` in a template gives.
func renderChart(t *testing.T, valuesYAML string) (map[string]string, error) {
	t.Helper()
	c := loadChart(t)
	vals, err := chartutil.ReadValues([]byte(valuesYAML))
	if err != nil {
		t.Fatalf("test values: %v", err)
	}
	top, err := chartutil.ToRenderValues(c, vals, chartutil.ReleaseOptions{
		Name: releaseName, Namespace: namespace, Revision: 1, IsInstall: true,
	}, nil)
	if err != nil {
		return nil, err
	}
	// Strict: a template that reads a value missing from values.yaml fails.
	return engine.Engine{Strict: true}.Render(c, top)
}

// mustRender renders the chart and decodes every document strictly.
func mustRender(t *testing.T, valuesYAML string) *render {
	t.Helper()
	files, err := renderChart(t, valuesYAML)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	r := &render{objects: map[k8sschema.GroupVersionKind]any{}, Istio: map[string]*schema.IstioResource{}}
	var texts []string
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if !strings.HasSuffix(name, ".yaml") {
			continue // NOTES.txt, _helpers.tpl
		}
		texts = append(texts, files[name])
		yr := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(files[name])))
		for i := 0; ; i++ {
			doc, err := yr.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			j, err := yaml.YAMLToJSONStrict(doc)
			if err != nil {
				t.Fatalf("%s#%d: %v\n%s", name, i, err, doc)
			}
			if string(j) == "null" {
				continue // a template rendered empty, or comments only
			}
			gvk, obj, err := decodeDoc(j)
			if err != nil {
				t.Fatalf("%s#%d (%s): %v\n%s", name, i, gvk.Kind, err, doc)
			}
			if _, dup := r.objects[gvk]; dup {
				t.Fatalf("%s#%d: a second %s", name, i, gvk.Kind)
			}
			r.objects[gvk] = obj
			r.kinds = append(r.kinds, gvk.Kind)
			r.keep(obj)
		}
	}
	r.text = strings.Join(texts, "\n---\n")
	return r
}

// decodeDoc decodes one rendered document, as JSON, strictly.
func decodeDoc(j []byte) (k8sschema.GroupVersionKind, any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(j, &tm); err != nil {
		return k8sschema.GroupVersionKind{}, nil, err
	}
	if gvk := tm.GroupVersionKind(); gvk == serviceMonitorKind {
		var sm serviceMonitor
		if err := schema.Strict(j, &sm); err != nil {
			return gvk, nil, err
		}
		for _, e := range sm.Spec.Endpoints {
			for _, d := range []string{e.Interval, e.ScrapeTimeout} {
				if !promDuration.MatchString(d) {
					return gvk, nil, fmt.Errorf("ServiceMonitor endpoint %s: %q is not a Prometheus duration", e.Port, d)
				}
			}
		}
		return gvk, &sm, nil
	}
	return decoder.Decode(j)
}

// keep files a decoded object under its typed field.
func (r *render) keep(obj any) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		r.Deployment = o
	case *corev1.Service:
		r.Service = o
	case *networkingv1.NetworkPolicy:
		r.NetworkPolicy = o
	case *corev1.PersistentVolumeClaim:
		r.Claim = o
	case *corev1.ConfigMap:
		r.ConfigMap = o
	case *serviceMonitor:
		r.ServiceMonitor = o
	case *schema.IstioResource:
		r.Istio[o.Kind] = o
	}
}

// failure renders values that must not render and returns the message.
func failure(t *testing.T, valuesYAML string) string {
	t.Helper()
	files, err := renderChart(t, valuesYAML)
	if err == nil {
		var b bytes.Buffer
		for _, name := range slices.Sorted(maps.Keys(files)) {
			fmt.Fprintf(&b, "# %s\n%s\n", name, files[name])
		}
		t.Fatalf("rendered; want a failure:\n%s", b.String())
	}
	return err.Error()
}
