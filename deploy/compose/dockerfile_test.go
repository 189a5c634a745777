package compose

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// repoRoot is where the Dockerfile, .dockerignore and the Go packages live:
// the build context of every image.
var repoRoot = filepath.Join("..", "..")

// runtimeBase is the maintained distroless line every image after the builder
// runs on (the debian12 line is deprecated); only its nonroot variants, and
// debug-nonroot where a stage needs a shell, are used.
const runtimeBase = "gcr.io/distroless/static-debian13"

type dockerInstr struct {
	cmd  string // upper case: RUN, COPY, …
	args string
}

type dockerStage struct {
	name, base string
	instrs     []dockerInstr
}

func (s dockerStage) all(cmd string) []string {
	var out []string
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

func (s dockerStage) last(cmd string) string {
	l := s.all(cmd)
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1]
}

var argRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

// parseDockerfile splits a Dockerfile into stages, joining continuation lines
// and substituting global ARG defaults into FROM.
func parseDockerfile(t *testing.T, name string) []dockerStage {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	cur := ""
	for _, l := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur == "") {
			continue
		}
		if c, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur += c + " "
			continue
		}
		lines = append(lines, cur+trimmed)
		cur = ""
	}
	globals := map[string]string{}
	var stages []dockerStage
	for _, l := range lines {
		cmd, args, _ := strings.Cut(l, " ")
		cmd, args = strings.ToUpper(cmd), strings.TrimSpace(args)
		switch {
		case cmd == "ARG" && len(stages) == 0:
			k, v, _ := strings.Cut(args, "=")
			globals[k] = v
		case cmd == "FROM":
			f := strings.Fields(argRef.ReplaceAllStringFunc(args, func(ref string) string {
				return globals[argRef.FindStringSubmatch(ref)[1]]
			}))
			s := dockerStage{base: f[len(f)-1]}
			if len(f) >= 3 && strings.EqualFold(f[len(f)-2], "AS") {
				s.base, s.name = f[len(f)-3], f[len(f)-1]
			}
			stages = append(stages, s)
		case len(stages) > 0:
			stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, dockerInstr{cmd, args})
		}
	}
	return stages
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("%d stages; want a multi-stage build", len(stages))
	}
	build := stages[0]
	if build.base != "golang:1.26" {
		t.Errorf("builder base = %q; want golang:1.26", build.base)
	}
	if !slices.Contains(build.all("ENV"), "CGO_ENABLED=0") {
		t.Error("builder does not set ENV CGO_ENABLED=0 (static binaries)")
	}
	built := map[string]bool{}
	for _, run := range build.all("RUN") {
		for _, cmd := range strings.Split(run, "&&") {
			if !strings.Contains(cmd, "go build") {
				continue
			}
			if !strings.Contains(cmd, "-trimpath") {
				t.Errorf("go build without -trimpath: %s", strings.TrimSpace(cmd))
			}
			if m := regexp.MustCompile(`\./cmd/([a-z-]+)`).FindStringSubmatch(cmd); m != nil {
				built[m[1]] = true
			}
		}
	}
	for _, b := range []string{"extauthz", "echo-upstream", "sandbox-client"} {
		if !built[b] {
			t.Errorf("the builder does not build ./cmd/%s", b)
		}
	}

	final := stages[len(stages)-1]
	checks := []struct {
		what, got, want string
	}{
		{"final stage name", final.name, "extauthz"},
		{"final base image", final.base, runtimeBase + ":nonroot"},
		{"final USER", final.last("USER"), "nonroot:nonroot"},
		{"final ENTRYPOINT", final.last("ENTRYPOINT"), `["/extauthz"]`},
		{"final CMD", final.last("CMD"), `["serve"]`},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q; want %q", c.what, c.got, c.want)
		}
	}
	exposed := strings.Fields(strings.Join(final.all("EXPOSE"), " "))
	for _, p := range []string{"9191", "8181", "9090"} {
		if !slices.Contains(exposed, p) {
			t.Errorf("final stage does not EXPOSE %s", p)
		}
	}

	names := map[string]bool{}
	for i, s := range stages {
		if i > 0 && !runsNonRoot(s) {
			t.Errorf("stage %q runs as root (base %s, USER %q)", s.name, s.base, s.last("USER"))
		}
		if i > 0 && s.base != runtimeBase+":nonroot" && s.base != runtimeBase+":debug-nonroot" {
			t.Errorf("stage %q is based on %s; want %s:nonroot (or :debug-nonroot for a shell)", s.name, s.base, runtimeBase)
		}
		for _, cp := range s.all("COPY") {
			f := strings.Fields(cp)
			if from, ok := strings.CutPrefix(f[0], "--from="); ok {
				if !names[from] {
					t.Errorf("stage %q copies from %q, which is not an earlier stage", s.name, from)
				}
				continue
			}
			for _, src := range f[:len(f)-1] {
				if strings.HasPrefix(src, "--") {
					continue
				}
				if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
					t.Errorf("COPY source %s: %v", src, err)
				}
			}
		}
		names[s.name] = true
	}
}

// runsNonRoot: the stage's last USER is nonroot (distroless uid 65532), or it
// sets none and its base image is a nonroot variant.
func runsNonRoot(s dockerStage) bool {
	if u := s.last("USER"); u != "" {
		user, _, _ := strings.Cut(u, ":")
		return user == "nonroot" || user == "65532"
	}
	return strings.Contains(s.base, "nonroot")
}

// TestDockerignore: the build context keeps what the Go build needs: every
// source and embedded file of the packages the three commands are built
// from (go list -deps), with Docker's rules (the last pattern that matches
// decides; "!" keeps), and leaves out tests and the rest of deploy/.
func TestDockerignore(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	excluded := func(file string) bool {
		out := false
		for _, p := range patterns {
			keep := strings.HasPrefix(p, "!")
			p = strings.TrimPrefix(p, "!")
			anyDir := strings.HasPrefix(p, "**/")
			p = strings.TrimPrefix(p, "**/")
			if ok, _ := filepath.Match(p, file); ok || strings.HasPrefix(file, p+"/") || anyDir && matchBase(p, file) {
				out = !keep
			}
		}
		return out
	}
	out, err := exec.Command("go", "list", "-deps", "-f", `{{if .Module}}{{if .Module.Main}}{{range .GoFiles}}{{$.ImportPath}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$.ImportPath}}/{{.}}
{{end}}{{end}}{{end}}`, "../../cmd/extauthz", "../../cmd/echo-upstream", "../../cmd/sandbox-client").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	needs := []string{"go.mod", "go.sum"}
	for _, l := range strings.Fields(string(out)) {
		needs = append(needs, strings.TrimPrefix(l, "github.com/extauthz/extauthz/"))
	}
	if !slices.Contains(needs, "deploy/envoy/envoy-compose.yaml") {
		t.Fatalf("go list names no embedded deploy file; the test tests less than it says:\n%s", out)
	}
	for _, need := range needs {
		if excluded(need) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", need)
		}
	}
	for _, left := range []string{"deploy/helm/Chart.yaml", "deploy/envoy/envoy.yaml", "cmd/extauthz/main_test.go", "deploy/envoy/testdata/x.yaml"} {
		if !excluded(left) {
			t.Errorf(".dockerignore keeps %s, which the build does not need", left)
		}
	}
}

// matchBase says whether p (from a "**/p" pattern) matches an element of
// file's path below the root: **/*_test.go, **/testdata.
func matchBase(p, file string) bool {
	parts := strings.Split(file, "/")
	for i := range parts {
		if ok, _ := filepath.Match(p, strings.Join(parts[i:], "/")); ok {
			return true
		}
		if ok, _ := filepath.Match(p, parts[i]); ok {
			return true
		}
	}
	return false
}
