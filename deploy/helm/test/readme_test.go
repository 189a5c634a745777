package test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"
)

// helmGuide is the Helm guide, whose blocks these tests render.
const helmGuide = "../../../docs/helm.md"

// readmeBlocks returns the code blocks of the Helm guide (docs/helm.md)
// that follow the line <!-- marker -->.
func readmeBlocks(t *testing.T, marker string) []string {
	t.Helper()
	data, err := os.ReadFile(helmGuide)
	if err != nil {
		t.Fatal(err)
	}
	return markedBlocks(t, "docs/helm.md", string(data), marker)
}

// markedBlocks returns the code blocks of text (a Markdown page, named for
// errors) that follow the line <!-- marker -->.
func markedBlocks(t *testing.T, name, text, marker string) []string {
	t.Helper()
	var blocks []string
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if l != "<!-- "+marker+" -->" {
			continue
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```") {
			t.Fatalf("%s: <!-- %s --> is not followed by a code block", name, marker)
		}
		var b []string
		for _, l := range lines[i+2:] {
			if l == "```" {
				break
			}
			b = append(b, l)
		}
		blocks = append(blocks, strings.Join(b, "\n"))
	}
	return blocks
}

// words splits a shell command line into words: blanks separate, and single
// or double quotes group (no escapes, no expansions: the guide needs none).
func words(t *testing.T, line string) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	var quote rune
	in := false
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				out, in = append(out, cur.String()), false
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		t.Fatalf("unbalanced quote in %q", line)
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

var createSecret = regexp.MustCompile(`^kubectl -n (\S+) create secret generic (\S+) --from-file=([^=\s]+)=\S+$`)

// TestREADMEInstall renders the install command of docs/helm.md as helm would,
// and checks that the Secret it creates is the one the pods mount.
func TestREADMEInstall(t *testing.T) {
	blocks := readmeBlocks(t, "helm:install")
	if len(blocks) != 1 {
		t.Fatalf("docs/helm.md: %d helm:install blocks; want 1", len(blocks))
	}
	var install []string
	var secretNS, secretName, secretKey string
	for _, line := range strings.Split(strings.ReplaceAll(blocks[0], "\\\n", " "), "\n") {
		if m := createSecret.FindStringSubmatch(line); m != nil {
			secretNS, secretName, secretKey = m[1], m[2], m[3]
		}
		if strings.HasPrefix(line, "helm install ") {
			install = words(t, line)
		}
	}
	if install == nil || secretName == "" {
		t.Fatalf("docs/helm.md install block has no helm install or no kubectl create secret line:\n%s", blocks[0])
	}
	if len(install) < 4 || install[2] != releaseName || install[3] != "deploy/helm/extauthz" {
		t.Fatalf("docs/helm.md: %q; want helm install %s deploy/helm/extauthz …", install, releaseName)
	}
	vals := map[string]any{}
	ns := ""
	for rest := install[4:]; len(rest) > 0; rest = rest[2:] {
		if len(rest) < 2 {
			t.Fatalf("docs/helm.md: helm install option %q without a value", rest[0])
		}
		switch rest[0] {
		case "-n", "--namespace":
			ns = rest[1]
		case "--set":
			if err := strvals.ParseInto(rest[1], vals); err != nil {
				t.Fatalf("docs/helm.md: --set %s: %v", rest[1], err)
			}
		default:
			t.Fatalf("docs/helm.md: helm install option %q: the test does not know it", rest[0])
		}
	}
	if ns != namespace || secretNS != namespace {
		t.Errorf("docs/helm.md: release namespace %q, Secret namespace %q; want both %q", ns, secretNS, namespace)
	}
	y, err := yaml.Marshal(vals)
	if err != nil {
		t.Fatal(err)
	}
	r := mustRender(t, string(y))
	ctr := r.container(t)
	checkPod(t, r.Deployment.Spec.Template.Spec, ctr)
	checkVolumes(t, r.Deployment.Spec.Template.Spec, ctr, keysMount, map[string]string{"keys": secretName}, nil, nil)
	if !slices.Contains(ctr.Args, "--key-file=/etc/extauthz/keys/"+secretKey) {
		t.Errorf("args %q do not read the Secret's key %q", ctr.Args, secretKey)
	}
}

// TestREADMEValues renders each values block of docs/helm.md.
func TestREADMEValues(t *testing.T) {
	blocks := readmeBlocks(t, "helm:values")
	if len(blocks) < 3 {
		t.Fatalf("docs/helm.md: %d helm:values blocks; want HTTP mode, mTLS and Istio", len(blocks))
	}
	for i, b := range blocks {
		r := mustRender(t, imageValues+b)
		ctr := r.container(t)
		checkPod(t, r.Deployment.Spec.Template.Spec, ctr)
		for _, k := range defaultKinds {
			if !slices.Contains(r.kinds, k) {
				t.Errorf("block %d renders no %s", i, k)
			}
		}
	}
}

// TestArgsAreServeFlags: every flag the chart passes has a row in the
// flag table of docs/configuration.md, which the root module's
// TestServeFlagsDocumented keeps in step with `extauthz serve`'s flags; a
// misspelt flag would stop the server at start.
func TestArgsAreServeFlags(t *testing.T) {
	data, err := os.ReadFile("../../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(data), "\n## Flags\n")
	section, _, _ = strings.Cut(section, "\n## ")
	var rows []string
	for _, l := range strings.Split(section, "\n") {
		if strings.HasPrefix(l, "| `--") {
			first, _, _ := strings.Cut(l[1:], " | ")
			rows = append(rows, first)
		}
	}
	if len(rows) < 10 {
		t.Fatalf("docs/configuration.md \"Flags\": %d flag rows", len(rows))
	}
	for _, c := range chartCases {
		for _, a := range mustRender(t, imageValues+c.values).container(t).Args[1:] {
			name, _, _ := strings.Cut(a, "=")
			if !slices.ContainsFunc(rows, func(r string) bool { return strings.Contains(r, "`"+name+"`") }) {
				t.Errorf("%s: %s is not a flag in the serve table of docs/configuration.md", c.name, name)
			}
		}
	}
}
