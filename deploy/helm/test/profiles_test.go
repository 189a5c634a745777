package test

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"
)

// shippedProfiles is the repository's profiles/providers.yaml, which an
// operator passes with --set-file.
var shippedProfiles = func() string {
	b, err := os.ReadFile("../../../profiles/providers.yaml")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

// profilesValues turns route profiles on with files (name → content) and an
// existing ConfigMap ("" for none).
func profilesValues(files map[string]string, existing string) string {
	if files == nil {
		files = map[string]string{} // null would delete the key
	}
	y, err := yaml.Marshal(map[string]any{"profiles": map[string]any{
		"enabled": true, "files": files, "existingConfigMap": existing,
	}})
	if err != nil {
		panic(err)
	}
	return "\n" + string(y)
}

var profilesArgs = []string{
	"--container-id-from=context-extension:outbound_container_id",
	"--profiles-file=/etc/extauthz/profiles",
}

var profilesMounts = map[string]string{"keys": "/etc/extauthz/keys", "profiles": "/etc/extauthz/profiles"}

// profilesCases: route profiles from the values, from an existing
// ConfigMap, or both, in one directory mounted whole.
var profilesCases = []chartCase{
	{
		name:          "route profiles in the values and an existing ConfigMap",
		values:        profilesValues(map[string]string{"providers.yaml": shippedProfiles}, "sandbox-profiles"),
		args:          profilesArgs,
		mounts:        profilesMounts,
		secrets:       map[string]string{"keys": "extauthz-keys"},
		configMaps:    map[string][]string{"profiles": {"extauthz-profiles", "sandbox-profiles"}},
		kinds:         []string{"ConfigMap"},
		servicePorts:  map[string]int32{"grpc": 9191, "http-admin": 9090},
		decisionPorts: []int32{9191},
		check: func(t *testing.T, r *render) {
			cm := r.ConfigMap
			if cm.Namespace != namespace || !selects(r.Deployment.Labels, cm.Labels) {
				t.Errorf("ConfigMap %s/%s labels %v; want the release's namespace and labels", cm.Namespace, cm.Name, cm.Labels)
			}
			if len(cm.Data) != 1 || cm.Data["providers.yaml"] != shippedProfiles {
				t.Errorf("ConfigMap data keys %v; want providers.yaml exactly as profiles/providers.yaml", slices.Sorted(maps.Keys(cm.Data)))
			}
		},
	},
	{
		name:          "route profiles from an existing ConfigMap alone",
		values:        profilesValues(nil, "sandbox-profiles"),
		args:          profilesArgs,
		mounts:        profilesMounts,
		secrets:       map[string]string{"keys": "extauthz-keys"},
		configMaps:    map[string][]string{"profiles": {"sandbox-profiles"}},
		servicePorts:  map[string]int32{"grpc": 9191, "http-admin": 9090},
		decisionPorts: []int32{9191},
	},
}

func init() { chartCases = append(chartCases, profilesCases...) }

// TestProfilesSetFile renders the install options values.yaml gives for the
// shipped profiles, parsed as helm parses --set and --set-file: the escaped
// dot keeps providers.yaml one key.
func TestProfilesSetFile(t *testing.T) {
	vals := map[string]any{}
	if err := strvals.ParseInto("profiles.enabled=true", vals); err != nil {
		t.Fatal(err)
	}
	read := func(rs []rune) (any, error) {
		b, err := os.ReadFile("../../../" + string(rs))
		return string(b), err
	}
	if err := strvals.ParseIntoFile(`profiles.files.providers\.yaml=profiles/providers.yaml`, vals, read); err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(vals)
	if err != nil {
		t.Fatal(err)
	}
	r := mustRender(t, imageValues+string(y))
	if r.ConfigMap == nil || r.ConfigMap.Data["providers.yaml"] != shippedProfiles {
		t.Fatalf("ConfigMap = %+v; want providers.yaml from --set-file", r.ConfigMap)
	}
	if !slices.Contains(r.container(t).Args, "--profiles-file=/etc/extauthz/profiles") {
		t.Errorf("args %q lack --profiles-file", r.container(t).Args)
	}
	raw, err := os.ReadFile(chartDir + "/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `--set-file 'profiles.files.providers\.yaml=profiles/providers.yaml'`) {
		t.Error("values.yaml no longer shows the --set-file this test renders")
	}
}

// TestProfilesRefused: profiles on from nowhere, profile values with
// profiles off, and a file the server would not read fail the render.
func TestProfilesRefused(t *testing.T) {
	for _, c := range []struct{ name, values, want string }{
		{"on without a source", "profiles: {enabled: true}", "profiles.enabled needs profiles.files"},
		{"files while off", "profiles: {files: {a.yaml: 'profiles: []'}}", "need profiles.enabled: true"},
		{"ConfigMap while off", "profiles: {existingConfigMap: p}", "need profiles.enabled: true"},
		{"a file the server skips", profilesValues(map[string]string{"providers.json": shippedProfiles}, ""), `profiles.files "providers.json": want a file name`},
		{"a file in a directory", profilesValues(map[string]string{"../a.yaml": shippedProfiles}, ""), `profiles.files "../a.yaml": want a file name`},
		{"an empty file", profilesValues(map[string]string{"a.yaml": ""}, ""), `profiles.files "a.yaml": want the file's YAML as a string`},
		{"a blank file", profilesValues(map[string]string{"a.yaml": "  \n"}, ""), `profiles.files "a.yaml": want the file's YAML as a string`},
		{"a file as a map", "profiles: {enabled: true, files: {a.yaml: {profiles: []}}}", "at '/profiles/files/a.yaml'"},
		{"misspelt", "profiles: {enable: true}", "additional properties 'enable' not allowed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := failure(t, imageValues+c.values); !strings.Contains(got, c.want) {
				t.Errorf("render failed with %q; want it to say %q", got, c.want)
			}
		})
	}
}

var createConfigMap = regexp.MustCompile(`(?m)^kubectl -n (\S+) create configmap (\S+) --from-file=(\S+)$`)

// TestIstioProfilesGuide renders the values block of docs/istio-profiles.md
// and checks it against the guide's kubectl line: the ConfigMap it creates
// is the one mounted, with the principal identity and the upstream scheme
// Istio's gateway needs.
func TestIstioProfilesGuide(t *testing.T) {
	data, err := os.ReadFile("../../../docs/istio-profiles.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := markedBlocks(t, "docs/istio-profiles.md", string(data), "helm:values")
	if len(blocks) != 1 {
		t.Fatalf("docs/istio-profiles.md: %d helm:values blocks; want 1", len(blocks))
	}
	m := createConfigMap.FindStringSubmatch(string(data))
	if m == nil || m[1] != namespace || m[3] != "profiles/providers.yaml" {
		t.Fatalf("docs/istio-profiles.md: kubectl create configmap line %q; want one in %s from profiles/providers.yaml", m, namespace)
	}
	r := mustRender(t, imageValues+blocks[0])
	ctr := r.container(t)
	checkPod(t, r.Deployment.Spec.Template.Spec, ctr)
	checkVolumes(t, r.Deployment.Spec.Template.Spec, ctr, profilesMounts, map[string]string{"keys": "extauthz-keys"}, nil,
		map[string][]string{"profiles": {m[2]}})
	for _, want := range []string{"--profiles-file=/etc/extauthz/profiles", "--upstream-scheme=https"} {
		if !slices.Contains(ctr.Args, want) {
			t.Errorf("args %q lack %s", ctr.Args, want)
		}
	}
	if !slices.ContainsFunc(ctr.Args, func(a string) bool { return strings.HasPrefix(a, "--container-id-from=principal:") }) {
		t.Errorf("args %q: want the container id from the Istio principal", ctr.Args)
	}
	if r.Istio["AuthorizationPolicy"] == nil {
		t.Error("no AuthorizationPolicy: istio.enabled admits the egress gateway alone")
	}
}
