package server

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/internal/testutil/proc"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
)

const profileTmpl = "profiles:\n  - name: %s\n    accept: [bearer]\n    routes:\n      - {class: api, origin: \"https://api.example.com\", paths: [\"/v1/**\"], credential: key, inject: bearer}\n"

func profileYAML(names ...string) string {
	var b strings.Builder
	b.WriteString("profiles:\n")
	for _, n := range names {
		b.WriteString(strings.TrimPrefix(strings.ReplaceAll(profileTmpl, "%s", n), "profiles:\n"))
	}
	return b.String()
}

// TestProfilesReload: --profiles-file is loaded at start (a bad file stops
// New with the file, line and field), reloaded on change, a bad edit keeps
// the last good profiles, is logged once and counted, and the reload
// counter exists at 0 before anything happens.
func TestProfilesReload(t *testing.T) {
	keyFile, _ := newKeyFile(t)
	path := filepath.Join(t.TempDir(), "profiles.yaml")
	if err := os.WriteFile(path, []byte(profileYAML("first")), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs proc.Lines
	s, err := New(mustConfig(t, "--key-file", keyFile, "--profiles-file", path), zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	names := func() []string { return s.core.Profiles().Names() }
	counted := func(result string) float64 {
		mfs, err := s.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if mf.GetName() == "extauthz_profile_reloads_total" && m.GetLabel()[0].GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
		return -1 // not exported
	}
	if got := names(); !slices.Equal(got, []string{"first"}) || counted("ok") != 0 || counted("error") != 0 {
		t.Fatalf("at start: profiles %v, ok %v, error %v", got, counted("ok"), counted("error"))
	}
	if !strings.Contains(s.Summary(), "profiles first") {
		t.Errorf("Summary() = %q; want the profiles named", s.Summary())
	}

	testsupport.ReplaceFile(t, path, profileYAML("first", "second"))
	s.reloadSecrets(false, "file_changed")
	if got := names(); !slices.Equal(got, []string{"first", "second"}) || counted("ok") != 1 {
		t.Fatalf("after a good edit: %v, ok %v", got, counted("ok"))
	}

	from := logs.Len()
	testsupport.ReplaceFile(t, path, profileYAML("first")+"    colour: red\n")
	for range 3 {
		s.reloadSecrets(false, "file_changed")
	}
	failed := logs.Wait(t, from, "the bad edit logged", msg("profiles reload failed; keeping the last good profiles"))
	if e, _ := failed["error"].(string); !strings.Contains(e, path) || !strings.Contains(e, "line") {
		t.Errorf("the failure says %q; want the file and the line", e)
	}
	if got := names(); !slices.Equal(got, []string{"first", "second"}) || counted("error") != 1 {
		t.Errorf("after a bad edit: %v, error %v; want the last good profiles, one error", got, counted("error"))
	}
	if n := strings.Count(logs.String(), "profiles reload failed"); n != 1 {
		t.Errorf("the same bad file was logged %d times; want once", n)
	}

	// A bad file at start is an error naming the file and the line.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("profiles:\n  - name: x\n    acept: [bearer]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(mustConfig(t, "--key-file", keyFile, "--profiles-file", bad), zerolog.Nop()); err == nil ||
		!strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("New with a bad profiles file = %v; want an error naming the file and line 3", err)
	}
}

// TestProfilesDirectoryReload: a directory (a ConfigMap mount) is reloaded
// when one of its files changes.
func TestProfilesDirectoryReload(t *testing.T) {
	keyFile, _ := newKeyFile(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(profileYAML("a")), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(mustConfig(t, "--key-file", keyFile, "--profiles-file", dir), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(profileYAML("b")), 0o600); err != nil {
		t.Fatal(err)
	}
	s.reloadSecrets(false, "file_changed")
	s.reloadSecrets(false, "file_changed") // a directory's change applies on the second look
	if got := s.core.Profiles().Names(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("after adding b.yaml: %v", got)
	}
}

// TestProfilesSummaryNamesHeaders: check-config's summary names the
// headers a proxy must pass to the HTTP endpoints for the loaded profiles.
func TestProfilesSummaryNamesHeaders(t *testing.T) {
	keyFile, _ := newKeyFile(t)
	s, err := New(mustConfig(t, "--key-file", keyFile, "--profiles-file", "../profiles/providers.yaml"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if want := "profiles openai,anthropic,gemini,github (a proxy passes their capability headers: authorization,x-api-key,x-goog-api-key)"; !strings.Contains(s.Summary(), want) {
		t.Errorf("Summary() = %q; want %q", s.Summary(), want)
	}
}
