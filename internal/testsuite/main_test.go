package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/testutil/testprog"
)

func TestSummary(t *testing.T) {
	skip := func(test, program string) testprog.Skip {
		return testprog.Skip{Dir: "/d", Test: test, Program: program}
	}
	for _, tc := range []struct {
		skips []testprog.Skip
		want  string
	}{
		{nil, ""},
		{[]testprog.Skip{skip("TestA", "envoy")}, "1 end-to-end test was skipped for want of envoy; install it with: bash .ci/install"},
		{[]testprog.Skip{skip("TestA", "envoy"), skip("TestB", "envoy")}, "2 end-to-end tests were skipped for want of envoy; install it with: bash .ci/install"},
		{[]testprog.Skip{skip("TestA", "nginx"), skip("TestB", "envoy"), skip("TestC", "redis-server"), skip("TestD", "envoy")},
			"4 end-to-end tests were skipped for want of envoy, nginx and redis-server; install them with: bash .ci/install"},
	} {
		if got := summary(tc.skips); got != tc.want {
			t.Errorf("summary(%v) = %q; want %q", tc.skips, got, tc.want)
		}
	}
}

// TestModules: the root module, then the nested ones, not those in
// testdata or hidden directories.
func TestModules(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{".", "bench", "deploy/helm/test", "deploy/istio/schema", "e2e/testdata/m", ".git/x", "docs"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
		if d != "docs" {
			os.WriteFile(filepath.Join(root, d, "go.mod"), []byte("module x\n"), 0o644)
		}
	}
	got, err := modules(root)
	if want := []string{".", "bench", "deploy/helm/test", "deploy/istio/schema"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("modules = %v, %v; want %v", got, err, want)
	}

	// This repository's: the modules .ci/run vets and tidies (git ls-files).
	git := exec.Command("git", "ls-files", "*/go.mod")
	git.Dir = filepath.Join("..", "..")
	out, err := git.Output()
	if err != nil {
		t.Skipf("no git checkout: %v", err)
	}
	want := []string{"."}
	for _, f := range strings.Fields(string(out)) {
		want = append(want, filepath.Dir(f))
	}
	slices.Sort(want[1:])
	if got, err := modules(filepath.Join("..", "..")); err != nil || !slices.Equal(got, want) {
		t.Errorf("modules of the repository = %v, %v; want those git knows: %v", got, err, want)
	}
}

// TestSkipLog: testprog.Missing records the test it skips, once however
// often it is read, in the file the test command names.
func TestSkipLog(t *testing.T) {
	log := filepath.Join(t.TempDir(), "skips")
	t.Setenv(testprog.SkipLogEnv, log)
	t.Setenv("CI", "")
	t.Run("needs envoy", func(t *testing.T) { testprog.Missing(t, "envoy", "not found") })
	t.Run("needs nginx", func(t *testing.T) { testprog.Require(t, "nginx-that-is-not-there") })
	skips, err := testprog.ReadSkipLog(log)
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := os.Getwd()
	want := []testprog.Skip{{Dir: dir, Test: "TestSkipLog/needs_envoy", Program: "envoy"}, {Dir: dir, Test: "TestSkipLog/needs_nginx", Program: "nginx-that-is-not-there"}}
	if !slices.Equal(skips, want) {
		t.Errorf("ReadSkipLog = %v; want %v", skips, want)
	}
	if s, err := testprog.ReadSkipLog(filepath.Join(t.TempDir(), "none")); s != nil || err != nil {
		t.Errorf("ReadSkipLog of no file = %v, %v", s, err)
	}
}

// TestSkipFixture is what TestRun runs through the test command: a test
// that needs a program that is not installed. Run any other way, it passes.
func TestSkipFixture(t *testing.T) {
	if os.Getenv("TESTSUITE_FIXTURE") == "1" {
		testprog.Missing(t, "fixture-program", "not found")
	}
}

// TestRun runs the test command on TestSkipFixture: go test's output,
// then the line that counts the skip; with CI=true, a failure and no line.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test")
	}
	t.Setenv("TESTSUITE_FIXTURE", "1")
	t.Setenv("CI", "")
	args := []string{"-count=1", "-run", "^TestSkipFixture$", "."}
	var out, errb strings.Builder
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("run = %d\n%s%s", code, out.String(), errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ok  \tgithub.com/extauthz/extauthz/internal/testsuite") ||
		lines[1] != "1 end-to-end test was skipped for want of fixture-program; install it with: bash .ci/install" {
		t.Errorf("output =\n%s\nwant go test's ok line, then the count of skips", out.String())
	}

	t.Setenv("CI", "true")
	out.Reset()
	if code := run(args, &out, &errb); code == 0 || !strings.Contains(out.String(), "fixture-program is required in CI") || strings.Contains(out.String(), "skipped") {
		t.Errorf("with CI=true: run = %d\n%s; want a failure that names the program, no count of skips", code, out.String())
	}
}
