package schema

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1 "istio.io/api/networking/v1"
	securityv1 "istio.io/api/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// manifestDir holds the manifests this module checks.
const manifestDir = ".."

// kubeKinds maps each Kubernetes kind the manifests may hold to its API type.
var kubeKinds = map[schema.GroupVersionKind]func() any{
	corev1.SchemeGroupVersion.WithKind("Namespace"):                      func() any { return &corev1.Namespace{} },
	corev1.SchemeGroupVersion.WithKind("ServiceAccount"):                 func() any { return &corev1.ServiceAccount{} },
	corev1.SchemeGroupVersion.WithKind("Secret"):                         func() any { return &corev1.Secret{} },
	corev1.SchemeGroupVersion.WithKind("Service"):                        func() any { return &corev1.Service{} },
	appsv1.SchemeGroupVersion.WithKind("Deployment"):                     func() any { return &appsv1.Deployment{} },
	policyv1.SchemeGroupVersion.WithKind("PodDisruptionBudget"):          func() any { return &policyv1.PodDisruptionBudget{} },
	autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"): func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
}

// istioKinds maps each Istio custom resource to the protobuf message of its
// spec.
var istioKinds = map[schema.GroupVersionKind]func() proto.Message{
	{Group: "networking.istio.io", Version: "v1", Kind: "ServiceEntry"}:      func() proto.Message { return &networkingv1.ServiceEntry{} },
	{Group: "networking.istio.io", Version: "v1", Kind: "Gateway"}:           func() proto.Message { return &networkingv1.Gateway{} },
	{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRule"}:   func() proto.Message { return &networkingv1.DestinationRule{} },
	{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"}:    func() proto.Message { return &networkingv1.VirtualService{} },
	{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicy"}: func() proto.Message { return &securityv1.AuthorizationPolicy{} },
	{Group: "security.istio.io", Version: "v1", Kind: "PeerAuthentication"}:  func() proto.Message { return &securityv1.PeerAuthentication{} },
}

var istioOperatorKind = schema.GroupVersionKind{Group: "install.istio.io", Version: "v1alpha1", Kind: "IstioOperator"}

// istioObject is an Istio custom resource with its spec still undecoded.
type istioObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              json.RawMessage `json:"spec"`
}

// istioOperator is the part of install.istio.io/v1alpha1 IstioOperator that
// mesh-config.yaml uses; its meshConfig is decoded as the MeshConfig message.
// The full Go type lives in istio.io/istio, far too heavy to import for this,
// so any other field fails here even where istioctl would take it: add it
// below, with istioctl's name and type, when a manifest needs it.
type istioOperator struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
		Components struct {
			EgressGateways []struct {
				Name    string `json:"name"`
				Enabled *bool  `json:"enabled"`
			} `json:"egressGateways"`
		} `json:"components"`
	} `json:"spec"`
}

// manifest is one YAML document of a manifest file, as JSON.
type manifest struct {
	name string // file#index
	json []byte
}

// loadManifests reads every document of every manifest file, the way kubectl
// splits them.
func loadManifests(t *testing.T) []manifest {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", manifestDir, err)
	}
	var out []manifest
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for i := 0; ; i++ {
			doc, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			j, err := yaml.YAMLToJSONStrict(doc)
			if err != nil {
				t.Fatalf("%s#%d: %v", f, i, err)
			}
			if string(j) != "null" { // comments only
				out = append(out, manifest{fmt.Sprintf("%s#%d", filepath.Base(f), i), j})
			}
		}
	}
	return out
}

// decode decodes one manifest strictly with the API type of its apiVersion
// and kind, and returns that kind. An unknown apiVersion or kind is an error.
func decode(data []byte) (schema.GroupVersionKind, error) {
	var tm metav1.TypeMeta
	if err := json.Unmarshal(data, &tm); err != nil {
		return schema.GroupVersionKind{}, err
	}
	gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
	if newObj, ok := kubeKinds[gvk]; ok {
		obj := newObj()
		if err := strict(data, obj); err != nil {
			return gvk, err
		}
		if d, ok := obj.(*appsv1.Deployment); ok {
			return gvk, resourceNames(d.Spec.Template.Spec)
		}
		return gvk, nil
	}
	if newSpec, ok := istioKinds[gvk]; ok {
		var obj istioObject
		if err := strict(data, &obj); err != nil {
			return gvk, err
		}
		return gvk, decodeProto("spec", obj.Spec, newSpec())
	}
	if gvk == istioOperatorKind {
		var op istioOperator
		if err := strict(data, &op); err != nil {
			return gvk, err
		}
		return gvk, decodeProto("spec.meshConfig", op.Spec.MeshConfig, &meshv1alpha1.MeshConfig{})
	}
	return gvk, fmt.Errorf("apiVersion %q kind %q: not a kind this test knows", tm.APIVersion, tm.Kind)
}

// strict decodes JSON into a Go API type the way the Kubernetes API server
// does with strict field validation: names match case-sensitively, and an
// unknown or duplicate field is an error.
func strict(data []byte, v any) error {
	strictErrs, err := sigsjson.UnmarshalStrict(data, v, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// resourceNames checks the keys of the containers' resource requests and
// limits. Their Go type is a map, so decoding takes any name; the API server
// then refuses a name that is neither a standard resource nor qualified by a
// domain, which is what a misspelt "cpu" would be.
func resourceNames(pod corev1.PodSpec) error {
	for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
		for _, list := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
			for name := range list {
				switch {
				case name == corev1.ResourceCPU, name == corev1.ResourceMemory, name == corev1.ResourceEphemeralStorage,
					strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix), strings.Contains(string(name), "/"):
				default:
					return fmt.Errorf("container %s: resource %q is not a standard resource name", c.Name, name)
				}
			}
		}
	}
	return nil
}

// decodeProto decodes JSON, found at path, into an Istio protobuf message.
// protojson rejects unknown fields and wrong types; it also takes a field's
// proto name (fail_open), which the Istio CRD schemas do not have, so every
// key is first checked to be a field's JSON name.
func decodeProto(path string, data []byte, m proto.Message) error {
	if len(data) == 0 {
		return fmt.Errorf("no %s", path)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	if err := jsonNames(m.ProtoReflect().Descriptor(), v, path); err != nil {
		return err
	}
	return protojson.UnmarshalOptions{DiscardUnknown: false}.Unmarshal(data, m)
}

// jsonNames checks that every key of v, a JSON object for message md, is the
// JSON name of one of its fields, recursively. Well-known types
// (google.protobuf.*) have JSON forms of their own, left to protojson, and so
// is any value of the wrong JSON type.
func jsonNames(md protoreflect.MessageDescriptor, v any, path string) error {
	obj, ok := v.(map[string]any)
	if !ok || md.FullName().Parent() == "google.protobuf" {
		return nil
	}
	for k, val := range obj {
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			return fmt.Errorf("%s: unknown field %q in %s", path, k, md.FullName())
		}
		sub, elems := fd.Message(), []any{val}
		switch {
		case fd.IsMap():
			sub, elems = fd.MapValue().Message(), nil
			m, _ := val.(map[string]any)
			for _, e := range m {
				elems = append(elems, e)
			}
		case fd.IsList():
			elems, _ = val.([]any)
		}
		if sub == nil {
			continue
		}
		for _, e := range elems {
			if err := jsonNames(sub, e, path+"."+k); err != nil {
				return err
			}
		}
	}
	return nil
}
