package envoy

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// Shared helpers for the tests that read Kubernetes and compose YAML as plain
// data. The Istio and Kubernetes manifests are also decoded strictly with their
// own API types, in the separate module istio/schema, which keeps those
// dependencies out of this one.

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// loadDocs parses a multi-document YAML file; empty documents are skipped.
func loadDocs(t *testing.T, name string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	for i, part := range docSeparator.Split(string(data), -1) {
		var doc map[string]any
		if err := yaml.Unmarshal([]byte(part), &doc); err != nil {
			t.Fatalf("%s: document %d: %v", name, i, err)
		}
		if len(doc) > 0 {
			docs = append(docs, doc)
		}
	}
	return docs
}

// get walks v along path (string keys and int indexes); nil when absent.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k < 0 || k >= len(l) {
				return nil
			}
			v = l[k]
		default:
			panic(fmt.Sprintf("bad path element %T", p))
		}
	}
	return v
}

func getString(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

// getInt reads a YAML number (JSON float64) as an int; -1 when absent.
func getInt(v any, path ...any) int {
	switch n := get(v, path...).(type) {
	case float64:
		return int(n)
	case json.Number:
		i, _ := n.Int64()
		return int(i)
	}
	return -1
}

func getList(v any, path ...any) []any {
	l, _ := get(v, path...).([]any)
	return l
}

// flagValue finds --name=value or --name value in args.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

func stringList(l []any) []string {
	out := make([]string, 0, len(l))
	for _, v := range l {
		out = append(out, fmt.Sprint(v))
	}
	return out
}
