package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeFlagsInREADME: every serve flag has a row in the README's
// "Running the server" table.
func TestServeFlagsInREADME(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section, _, _ := strings.Cut(string(b), "## Capabilities from the command line")
	_, section, _ = strings.Cut(section, "## Running the server")
	var names []string
	_, _ = parseServeFlags("serve", []string{"-h"}, func(string) string { return "" }, &flagLister{&names})
	if len(names) == 0 {
		t.Fatal("no flags listed")
	}
	for _, n := range names {
		if !strings.Contains(section, "| `"+n+"`") && !strings.Contains(section, ", `"+n+"`") {
			t.Errorf("README \"Running the server\" has no row for %s", n)
		}
	}
}

// flagLister collects the flag names of a usage text.
type flagLister struct{ names *[]string }

func (f *flagLister) Write(p []byte) (int, error) {
	for _, line := range strings.Split(string(p), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "--"); ok {
			name, _, _ = strings.Cut(name, " ")
			*f.names = append(*f.names, "--"+name)
		}
	}
	return len(p), nil
}
