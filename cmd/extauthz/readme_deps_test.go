package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDocDependencies: the table of what go.mod requires in
// docs/development.md names exactly the direct requirements of go.mod, so
// neither can drift.
func TestDocDependencies(t *testing.T) {
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	var direct []string
	inRequire := false
	for line := range strings.Lines(string(mod)) {
		line = strings.TrimSpace(line)
		switch {
		case line == "require (":
			inRequire = true
		case line == ")":
			inRequire = false
		case inRequire && !strings.Contains(line, "// indirect"):
			direct = append(direct, strings.Fields(line)[0])
		}
	}
	readme, err := os.ReadFile("../../docs/development.md")
	if err != nil {
		t.Fatal(err)
	}
	var named []string
	start := strings.Index(string(readme), "What `go.mod` requires")
	if start < 0 {
		t.Fatal("docs/development.md has no table of what go.mod requires")
	}
	cell := regexp.MustCompile("`([^`]+)`")
	for line := range strings.Lines(string(readme)[start:]) {
		if !strings.HasPrefix(line, "| `") {
			if len(named) > 0 {
				break
			}
			continue
		}
		first, _, _ := strings.Cut(line[1:], "|")
		for _, m := range cell.FindAllStringSubmatch(first, -1) {
			named = append(named, m[1])
		}
	}
	slices.Sort(direct)
	slices.Sort(named)
	if !slices.Equal(direct, named) {
		t.Errorf("docs/development.md names %q;\ngo.mod requires %q", named, direct)
	}
}
