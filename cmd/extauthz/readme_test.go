package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// TestServeFlagsDocumented: every serve flag has a row in the flag table of
// docs/configuration.md, and the table names no flag serve lacks.
func TestServeFlagsDocumented(t *testing.T) {
	section := docSection(t, "docs/configuration.md", "## Flags")
	var names []string
	_, _ = parseServeFlags("serve", []string{"-h"}, func(string) string { return "" }, &flagLister{&names})
	if len(names) == 0 {
		t.Fatal("no flags listed")
	}
	for _, n := range names {
		if !strings.Contains(section, "| `"+n+"`") && !strings.Contains(section, ", `"+n+"`") {
			t.Errorf("docs/configuration.md \"Flags\" has no row for %s", n)
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
				t.Errorf("docs/configuration.md \"Flags\" has a row for %s, which serve does not have", n)
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

// TestCLIFlagsDocumented: every flag of keygen, issue and open has a row in
// the command-line table of docs/capabilities.md, and the table names no
// flag they lack.
func TestCLIFlagsDocumented(t *testing.T) {
	section := docSection(t, "docs/capabilities.md", "## From the command line")
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
				t.Errorf("docs/capabilities.md command-line table has no row for %s %s", cmd, n)
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
				t.Errorf("docs/capabilities.md command-line table lists %s %s, which %s does not have", cmd, flagName, cmd)
			}
		}
	}
}

// docSection is the section of a Markdown file (relative to the repository's
// root) that starts at the heading line, up to the next heading of the same
// level or above.
func docSection(t *testing.T, file, heading string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, file))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut("\n"+string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("%s has no %q", file, heading)
	}
	level, _, _ := strings.Cut(heading, " ")
	for i, line := range strings.Split(section, "\n") {
		if h, _, _ := strings.Cut(line, " "); strings.Trim(h, "#") == "" && len(h) > 0 && len(h) <= len(level) {
			return strings.Join(strings.Split(section, "\n")[:i], "\n")
		}
	}
	return section
}

// mdLinkRE matches a Markdown link's target: [text](target).
var mdLinkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocLinks: every relative link in the README, BENCHMARKS.md and docs/
// names a file or directory that exists and, with #anchor, a heading or an
// <a id> of that Markdown file.
func TestDocLinks(t *testing.T) {
	files := append(docFiles(t), "BENCHMARKS.md")
	anchors := map[string]map[string]bool{}
	anchorsOf := func(file string) map[string]bool {
		if a, ok := anchors[file]; ok {
			return a
		}
		b, err := os.ReadFile(filepath.Join(repoRoot, file))
		if err != nil {
			t.Fatal(err)
		}
		anchors[file] = mdAnchors(string(b))
		return anchors[file]
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		for n, line := range outsideFences(string(b)) {
			for _, m := range mdLinkRE.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				path, anchor, _ := strings.Cut(target, "#")
				resolved := f
				if path != "" {
					resolved = filepath.ToSlash(filepath.Join(filepath.Dir(f), path))
					if _, err := os.Stat(filepath.Join(repoRoot, resolved)); err != nil {
						t.Errorf("%s:%d: link to %s: no such file", f, n+1, target)
						continue
					}
				}
				if anchor != "" && (!strings.HasSuffix(resolved, ".md") || !anchorsOf(resolved)[anchor]) {
					t.Errorf("%s:%d: link to %s: %s has no heading or <a id> %q", f, n+1, target, resolved, anchor)
				}
			}
		}
	}
}

// outsideFences returns the lines of a Markdown text, with the lines of
// fenced blocks (fences included) blanked, so that line numbers hold.
func outsideFences(text string) []string {
	lines := strings.Split(text, "\n")
	fence := ""
	for i, l := range lines {
		trimmed := strings.TrimSpace(l)
		switch {
		case fence == "" && (strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~")):
			fence = trimmed[:3]
			lines[i] = ""
		case fence != "":
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			lines[i] = ""
		}
	}
	return lines
}

// mdAnchors are the anchors GitHub gives a Markdown file: one per heading
// (lower case, punctuation but - and _ dropped, spaces as -, -1, -2… for
// repeats) and every <a id="…">.
func mdAnchors(text string) map[string]bool {
	anchors := map[string]bool{}
	linkText := regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
	explicit := regexp.MustCompile(`<a (?:id|name)="([^"]+)"`)
	for _, line := range outsideFences(text) {
		for _, m := range explicit.FindAllStringSubmatch(line, -1) {
			anchors[m[1]] = true
		}
		h := strings.TrimLeft(line, "#")
		if len(h) == len(line) || len(line)-len(h) > 6 || !strings.HasPrefix(h, " ") {
			continue
		}
		h = linkText.ReplaceAllString(strings.TrimSpace(h), "$1")
		var slug strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				slug.WriteByte('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				slug.WriteRune(r)
			}
		}
		s := slug.String()
		for n := 1; anchors[s]; n++ {
			s = fmt.Sprintf("%s-%d", slug.String(), n)
		}
		anchors[s] = true
	}
	return anchors
}

// figureRE matches a measured figure: a number with the unit of a time, a
// ratio, a rate, a size or a count of allocations.
var figureRE = regexp.MustCompile(`\d[\d,.]*\s?(?:µs|ns|ms|×|req/s|allocs?\b|allocations|[KMG]iB|[KMG]B\b|%)`)

// numberRE matches a number as written in the documents: 1,000,000 and
// 3.30 are one number each.
var numberRE = regexp.MustCompile(`\d+(?:[.,]\d+)*`)

// TestREADMENumbers: each row of the README's numbers table names a section
// of BENCHMARKS.md and a label, and every number of its figure stands in one
// row or paragraph of that section together with the label; no figure with a
// unit stands anywhere else in the README, so none escapes the check.
func TestREADMENumbers(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	bench, err := os.ReadFile(filepath.Join(repoRoot, "BENCHMARKS.md"))
	if err != nil {
		t.Fatal(err)
	}
	source := regexp.MustCompile(`^\[[^\]]+\]\(BENCHMARKS\.md#([^)]+)\):\s*(.+)$`)
	section := docSection(t, "README.md", "## Numbers")
	rows := 0
	rest := strings.Replace(string(readme), section, "", 1)
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if !strings.HasPrefix(line, "| ") || len(cells) != 3 || cells[0] == "what" {
			continue
		}
		rows++
		m := source.FindStringSubmatch(cells[2])
		if m == nil {
			t.Errorf("README numbers row %q: its source is not [section](BENCHMARKS.md#anchor): label", cells[0])
			continue
		}
		anchor, label := m[1], m[2]
		figures := numberRE.FindAllString(cells[1], -1)
		if len(figures) == 0 {
			t.Errorf("README numbers row %q quotes no number", cells[0])
		}
		units := benchUnits(t, string(bench), anchor)
		found := slices.ContainsFunc(units, func(u string) bool {
			have := numberRE.FindAllString(u, -1)
			return strings.Contains(u, label) && !slices.ContainsFunc(figures, func(f string) bool { return !slices.Contains(have, f) })
		})
		if !found {
			t.Errorf("README numbers row %q: no row or paragraph of BENCHMARKS.md#%s has %q with %v", cells[0], anchor, label, figures)
		}
		rest = strings.Replace(rest, line, "", 1)
	}
	if rows < 3 {
		t.Errorf("README numbers table has %d rows; want the headline figures", rows)
	}
	for _, f := range figureRE.FindAllString(rest, -1) {
		t.Errorf("README quotes %q outside its numbers table, where TestREADMENumbers cannot check it against BENCHMARKS.md", f)
	}
}

// benchUnits splits the section of BENCHMARKS.md at anchor into its table
// rows and its paragraphs.
func benchUnits(t *testing.T, bench, anchor string) []string {
	t.Helper()
	var units []string
	in, level := false, 0
	var para []string
	flush := func() {
		if len(para) > 0 {
			units = append(units, strings.Join(para, " "))
			para = nil
		}
	}
	for _, line := range outsideFences(bench) {
		if h := strings.TrimLeft(line, "#"); h != line && strings.HasPrefix(h, " ") {
			l := len(line) - len(h)
			if in && l <= level {
				break
			}
			if !in && mdAnchors(line)[anchor] {
				in, level = true, l
				continue
			}
		}
		if !in {
			continue
		}
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case strings.HasPrefix(line, "|"):
			flush()
			units = append(units, line)
		default:
			para = append(para, line)
		}
	}
	flush()
	if !in {
		t.Fatalf("BENCHMARKS.md has no section #%s", anchor)
	}
	return units
}
