package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	networkingv1 "istio.io/api/networking/v1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1 "istio.io/api/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	sigsjson "sigs.k8s.io/json"
)

// Decoder decodes manifests strictly with the API types of the kinds it
// knows; any other kind is an error.
type Decoder struct {
	// Kube maps a Kubernetes kind to a new value of its API type.
	Kube map[schema.GroupVersionKind]func() any
	// Istio maps an Istio custom resource to a new protobuf message of its
	// spec.
	Istio map[schema.GroupVersionKind]func() proto.Message
}

// Manifests knows the kinds of the manifests in deploy/istio.
var Manifests = Decoder{
	Kube: map[schema.GroupVersionKind]func() any{
		corev1.SchemeGroupVersion.WithKind("Namespace"):                      func() any { return &corev1.Namespace{} },
		corev1.SchemeGroupVersion.WithKind("ServiceAccount"):                 func() any { return &corev1.ServiceAccount{} },
		corev1.SchemeGroupVersion.WithKind("Secret"):                         func() any { return &corev1.Secret{} },
		corev1.SchemeGroupVersion.WithKind("Service"):                        func() any { return &corev1.Service{} },
		appsv1.SchemeGroupVersion.WithKind("Deployment"):                     func() any { return &appsv1.Deployment{} },
		policyv1.SchemeGroupVersion.WithKind("PodDisruptionBudget"):          func() any { return &policyv1.PodDisruptionBudget{} },
		autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"): func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	},
	Istio: map[schema.GroupVersionKind]func() proto.Message{
		{Group: "networking.istio.io", Version: "v1", Kind: "ServiceEntry"}:      func() proto.Message { return &networkingv1.ServiceEntry{} },
		{Group: "networking.istio.io", Version: "v1", Kind: "Gateway"}:           func() proto.Message { return &networkingv1.Gateway{} },
		{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRule"}:   func() proto.Message { return &networkingv1.DestinationRule{} },
		{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"}:    func() proto.Message { return &networkingv1.VirtualService{} },
		{Group: "networking.istio.io", Version: "v1alpha3", Kind: "EnvoyFilter"}: func() proto.Message { return &networkingv1alpha3.EnvoyFilter{} },
		{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicy"}: func() proto.Message { return &securityv1.AuthorizationPolicy{} },
		{Group: "security.istio.io", Version: "v1", Kind: "PeerAuthentication"}:  func() proto.Message { return &securityv1.PeerAuthentication{} },
	},
}

// IstioObject is an Istio custom resource with its spec still undecoded.
type IstioObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              json.RawMessage `json:"spec"`
}

// IstioResource is a decoded Istio custom resource.
type IstioResource struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	Spec proto.Message
}

// Decode decodes one manifest, as JSON, strictly with the API type of its
// apiVersion and kind. It returns the kind and the decoded object: a pointer
// to the Kubernetes API type, or an *IstioResource.
func (d Decoder) Decode(data []byte) (schema.GroupVersionKind, any, error) {
	var tm metav1.TypeMeta
	if err := json.Unmarshal(data, &tm); err != nil {
		return schema.GroupVersionKind{}, nil, err
	}
	gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
	if newObj, ok := d.Kube[gvk]; ok {
		obj := newObj()
		if err := Strict(data, obj); err != nil {
			return gvk, nil, err
		}
		if dep, ok := obj.(*appsv1.Deployment); ok {
			return gvk, obj, ResourceNames(dep.Spec.Template.Spec)
		}
		return gvk, obj, nil
	}
	if newSpec, ok := d.Istio[gvk]; ok {
		var obj IstioObject
		if err := Strict(data, &obj); err != nil {
			return gvk, nil, err
		}
		spec := newSpec()
		if err := DecodeProto("spec", obj.Spec, spec); err != nil {
			return gvk, nil, err
		}
		return gvk, &IstioResource{obj.TypeMeta, obj.ObjectMeta, spec}, nil
	}
	return gvk, nil, fmt.Errorf("apiVersion %q kind %q: not a kind this test knows", tm.APIVersion, tm.Kind)
}

// Strict decodes JSON into a Go API type the way the Kubernetes API server
// does with strict field validation: names match case-sensitively, and an
// unknown or duplicate field is an error.
func Strict(data []byte, v any) error {
	strictErrs, err := sigsjson.UnmarshalStrict(data, v, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// ResourceNames checks the keys of the containers' resource requests and
// limits. Their Go type is a map, so decoding takes any name; the API server
// then refuses a name that is neither a standard resource nor qualified by a
// domain, which is what a misspelt "cpu" would be.
func ResourceNames(pod corev1.PodSpec) error {
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

// DecodeProto decodes JSON, found at path, into an Istio protobuf message.
// protojson rejects unknown fields and wrong types; it also takes a field's
// proto name (fail_open), which the Istio CRD schemas do not have, so every
// key is first checked to be a field's JSON name.
func DecodeProto(path string, data []byte, m proto.Message) error {
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
