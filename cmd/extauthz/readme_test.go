package main

import (
	"os"
	"path/filepath"
	"slices"
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
	// And the table names no flag serve lacks.
	for _, line := range strings.Split(section, "\n") {
		first, ok := strings.CutPrefix(line, "| `--")
		if !ok {
			continue
		}
		first, _, _ = strings.Cut("`--"+first, " |")
		for _, cell := range strings.Split(first, ", ") {
			if n := strings.Trim(cell, "`"); !slices.Contains(names, n) {
				t.Errorf("README \"Running the server\" has a row for %s, which serve does not have", n)
			}
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

// TestCLIFlagsInREADME: every flag of keygen, issue and open has a row in
// the README's command-line table, and the table names no flag they lack.
func TestCLIFlagsInREADME(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(b), "## Capabilities from the command line")
	section, _, _ = strings.Cut(section, "\n## ")
	for _, cmd := range []string{"keygen", "issue", "open"} {
		var usage strings.Builder
		run([]string{cmd, "-h"}, strings.NewReader(""), &usage, &usage)
		var names []string
		for _, line := range strings.Split(usage.String(), "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "-") {
				name, _, _ := strings.Cut(line, " ")
				if name == "--help" || name == "-h" {
					continue
				}
				names = append(names, name)
			}
		}
		if len(names) == 0 {
			t.Errorf("%s -h lists no flag:\n%s", cmd, usage.String())
		}
		for _, n := range names {
			if !strings.Contains(section, "| `"+cmd+"` | `"+n) {
				t.Errorf("README command-line table has no row for %s %s", cmd, n)
			}
		}
		for _, line := range strings.Split(section, "\n") {
			rest, ok := strings.CutPrefix(line, "| `"+cmd+"` | `")
			if !ok {
				continue
			}
			flagName, _, _ := strings.Cut(rest, " ")
			flagName, _, _ = strings.Cut(flagName, "`")
			if !slices.Contains(names, flagName) {
				t.Errorf("README command-line table lists %s %s, which %s does not have", cmd, flagName, cmd)
			}
		}
	}
}
