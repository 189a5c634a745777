// Package manifest reads the shipped deployment files (Kubernetes and Istio
// manifests, the docker compose file) as plain data for the
// tests that check them: multi-document YAML as maps, with getters that walk
// a path and yield the zero value where it is absent; and the hosts of the
// shipped route profiles, which the proxy configs must route. Only tests
// import it.
//
// The Istio and Kubernetes manifests are also decoded strictly with their
// own API types, in the separate module deploy/istio/schema, which keeps
// those dependencies out of the root module.
package manifest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/extauthz/extauthz/profiles"
)

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// ReadFile returns the contents of the file name, or fails the test.
func ReadFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Load parses a multi-document YAML file; empty documents are skipped.
func Load(t testing.TB, name string) []map[string]any {
	t.Helper()
	data := ReadFile(t, name)
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

// Get walks v along path (string keys and int indexes); nil when absent.
func Get(v any, path ...any) any {
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

// String is the string at path, or "".
func String(v any, path ...any) string {
	s, _ := Get(v, path...).(string)
	return s
}

// Int reads a YAML number (JSON float64) as an int; -1 when absent.
func Int(v any, path ...any) int {
	switch n := Get(v, path...).(type) {
	case float64:
		return int(n)
	case json.Number:
		i, _ := n.Int64()
		return int(i)
	}
	return -1
}

// List is the list at path, or nil.
func List(v any, path ...any) []any {
	l, _ := Get(v, path...).([]any)
	return l
}

// Flag finds --name=value or --name value in args (a container's command).
func Flag(args []string, name string) (string, bool) {
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

// Strings formats every element of l as a string.
func Strings(l []any) []string {
	out := make([]string, 0, len(l))
	for _, v := range l {
		out = append(out, fmt.Sprint(v))
	}
	return out
}

// ProfileHosts returns the hosts of the exact origins of the route profiles
// in path (a file or a directory, as --profiles-file reads it), in profile
// and route order, each once: what a shipped proxy config must route. An
// origin that is not https://host (no port) fails the test, since the
// configs route hosts on the default port.
func ProfileHosts(t testing.TB, path string) []string {
	t.Helper()
	set, err := profiles.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, name := range set.Names() {
		pr, _ := set.Profile(name)
		for _, o := range pr.Origins() {
			u, err := url.Parse(o)
			if err != nil || u.Scheme != "https" || u.Port() != "" {
				t.Fatalf("profile %s: origin %q is not https://host", name, o)
			}
			if !slices.Contains(hosts, u.Hostname()) {
				hosts = append(hosts, u.Hostname())
			}
		}
	}
	return hosts
}
