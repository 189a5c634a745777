package schema

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestManifestsDecodeStrictly: every document decodes with its own API type,
// and together they hold every kind the deployment needs.
func TestManifestsDecodeStrictly(t *testing.T) {
	seen := map[schema.GroupVersionKind]bool{}
	for _, m := range loadManifests(t) {
		gvk, err := decode(m.json)
		if err != nil {
			t.Errorf("%s (%s): %v", m.name, gvk.Kind, err)
		}
		seen[gvk] = true
	}
	want := append(slices.Collect(maps.Keys(Manifests.Istio)), istioOperatorKind,
		corev1.SchemeGroupVersion.WithKind("Namespace"),
		corev1.SchemeGroupVersion.WithKind("ServiceAccount"),
		corev1.SchemeGroupVersion.WithKind("Service"),
		appsv1.SchemeGroupVersion.WithKind("Deployment"),
		policyv1.SchemeGroupVersion.WithKind("PodDisruptionBudget"),
		autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"))
	for _, gvk := range want {
		if !seen[gvk] {
			t.Errorf("no %s in the manifests", gvk)
		}
	}
}

// TestDecodeRejectsUnknownKinds: a kind the test has no API type for fails
// rather than passing unchecked.
func TestDecodeRejectsUnknownKinds(t *testing.T) {
	for _, doc := range []string{
		`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"x"},"spec":{}}`,
		`{"apiVersion":"networking.istio.io/v1alpha3","kind":"Sidecar","metadata":{"name":"x"},"spec":{}}`,
		`{"apiVersion":"apps/v2","kind":"Deployment","metadata":{"name":"x"},"spec":{}}`,
		`{"kind":"Deployment","metadata":{"name":"x"}}`,
	} {
		if _, err := decode([]byte(doc)); err == nil {
			t.Errorf("decode(%s) = nil error; want an unknown kind", doc)
		}
	}
}

// TestMisspeltFieldsFail renames each field of each manifest, one at a time
// and at every depth, three ways: a typo, a capitalised first letter (which
// encoding/json would match case-insensitively) and the snake_case form
// (which protojson would take as the proto field name). Each renamed copy
// must fail to decode, except a key of a free-form map such as labels, which
// may be any name and must still decode.
func TestMisspeltFieldsFail(t *testing.T) {
	rejected := map[int]int{} // depth → mutations rejected
	for _, m := range loadManifests(t) {
		gvk, err := decode(m.json)
		if err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		var root any
		if err := json.Unmarshal(m.json, &root); err != nil {
			t.Fatal(err)
		}
		for _, path := range keyPaths(root, nil) {
			free := freeForm(gvk.Kind, path)
			for _, bad := range misspellings(path[len(path)-1].(string)) {
				mutated, ok := renameKey(t, m.json, path, bad)
				if !ok {
					continue // the new name is already a key there
				}
				_, err := decode(mutated)
				switch {
				case free && err != nil:
					t.Errorf("%s: %s renamed to %q: %v; want it accepted (a free-form map key)", m.name, dotted(path), bad, err)
				case !free && err == nil:
					t.Errorf("%s: %s renamed to %q was accepted; want an error", m.name, dotted(path), bad)
				case !free:
					rejected[depth(path)]++
				}
			}
		}
	}
	if len(rejected) < 6 {
		t.Errorf("misspelt fields rejected at depths %v; want at least six depths", rejected)
	}
	t.Logf("misspelt fields rejected, by depth: %v", rejected)
}

// keyPaths lists the path (object keys and list indexes) of every object key
// in v, depth first.
func keyPaths(v any, prefix []any) [][]any {
	var out [][]any
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			p := append(slices.Clip(prefix), k)
			out = append(out, p)
			out = append(out, keyPaths(v[k], p)...)
		}
	case []any:
		for i, e := range v {
			out = append(out, keyPaths(e, append(slices.Clip(prefix), i))...)
		}
	}
	return out
}

// renameKey returns a copy of the JSON document data with the key at path
// renamed; false when the new name is already taken.
func renameKey(t *testing.T, data []byte, path []any, newKey string) ([]byte, bool) {
	t.Helper()
	var root any
	if err := json.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	parent := root
	for _, p := range path[:len(path)-1] {
		switch p := p.(type) {
		case string:
			parent = parent.(map[string]any)[p]
		case int:
			parent = parent.([]any)[p]
		}
	}
	obj := parent.(map[string]any)
	old := path[len(path)-1].(string)
	if _, taken := obj[newKey]; taken {
		return nil, false
	}
	obj[newKey] = obj[old]
	delete(obj, old)
	out, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return out, true
}

// misspellings of a field name: two letters swapped, the first letter upper
// case, and snake_case for a camelCase name.
func misspellings(key string) []string {
	r := []rune(key)
	var out []string
	if len(r) >= 3 && r[1] != r[2] {
		r[1], r[2] = r[2], r[1]
		out = append(out, string(r))
	} else {
		out = append(out, key+"x")
	}
	if up := strings.ToUpper(key[:1]) + key[1:]; up != key {
		out = append(out, up)
	}
	var snake strings.Builder
	for _, c := range key {
		if unicode.IsUpper(c) {
			snake.WriteByte('_')
			c = unicode.ToLower(c)
		}
		snake.WriteRune(c)
	}
	if s := snake.String(); s != key {
		out = append(out, s)
	}
	return out
}

// freeForm reports whether the key at path belongs to a map whose keys are
// data, not field names: labels, annotations and label selectors, and an
// EnvoyFilter's patch value, a google.protobuf.Struct to Istio (the root
// module's deploy/istio tests decode it strictly with Envoy's types).
func freeForm(kind string, path []any) bool {
	var keys []string
	for _, p := range path[:len(path)-1] {
		if s, ok := p.(string); ok {
			keys = append(keys, s)
		}
	}
	if i := slices.Index(keys, "patch"); kind == "EnvoyFilter" && i >= 0 && i+1 < len(keys) && keys[i+1] == "value" {
		return true
	}
	parent := strings.Join(keys, ".")
	switch {
	case parent == "spec.selector":
		return kind == "Service" || kind == "Gateway" // map<string, string>
	case len(keys) == 0:
		return false
	}
	switch keys[len(keys)-1] {
	case "labels", "annotations", "matchLabels":
		return true
	}
	return false
}

// depth counts the object keys on path.
func depth(path []any) int {
	n := 0
	for _, p := range path {
		if _, ok := p.(string); ok {
			n++
		}
	}
	return n
}

// dotted renders a path as spec.ports[0].name.
func dotted(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch p := p.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p)
		case int:
			fmt.Fprintf(&b, "[%d]", p)
		}
	}
	return b.String()
}

// TestReadmeNamesVersions: the Istio guide (docs/istio.md) states the API
// versions this module decodes with, as go.mod requires them.
func TestReadmeNamesVersions(t *testing.T) {
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(manifestDir, "..", "..", "docs", "istio.md"))
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, line := range strings.Split(string(gomod), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "istio.io/api" && f[0] != "k8s.io/api") {
			continue
		}
		found++
		if want := "`" + f[0] + "` " + f[1]; !strings.Contains(string(readme), want) {
			t.Errorf("docs/istio.md does not say %s (go.mod requires it)", want)
		}
	}
	if found != 2 {
		t.Errorf("go.mod requires %d of istio.io/api and k8s.io/api; want both", found)
	}
}
