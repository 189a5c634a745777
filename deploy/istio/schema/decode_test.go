package schema

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// manifestDir holds the manifests this module checks, with those of
// manifestDirs below it (the route profiles' egress wiring).
const manifestDir = ".."

var manifestDirs = []string{manifestDir, filepath.Join(manifestDir, "profiles")}

var istioOperatorKind = schema.GroupVersionKind{Group: "install.istio.io", Version: "v1alpha1", Kind: "IstioOperator"}

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
	var files []string
	for _, dir := range manifestDirs {
		found, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil || len(found) == 0 {
			t.Fatalf("no manifests in %s (%v)", dir, err)
		}
		files = append(files, found...)
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
				rel, _ := filepath.Rel(manifestDir, f)
				out = append(out, manifest{fmt.Sprintf("%s#%d", rel, i), j})
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
	if gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind); gvk == istioOperatorKind {
		var op istioOperator
		if err := Strict(data, &op); err != nil {
			return gvk, err
		}
		return gvk, DecodeProto("spec.meshConfig", op.Spec.MeshConfig, &meshv1alpha1.MeshConfig{})
	}
	gvk, _, err := Manifests.Decode(data)
	return gvk, err
}
