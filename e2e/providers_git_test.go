package e2e

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/testprog"
)

// guideGitScript is the sh block of docs/providers/github.md's "## The
// sandbox's git", with the capability and the sandbox's proxy put in.
func guideGitScript(t *testing.T, capabilityValue, proxy string) string {
	t.Helper()
	block := guideBlock(t, "github.md", "## The sandbox's git", "sh")
	if !strings.Contains(block, "eac1.…") || !strings.Contains(block, guideHost) {
		t.Fatalf("docs/providers/github.md: the sandbox's git names no capability (eac1.…) or no proxy (%s)", guideHost)
	}
	return strings.NewReplacer("eac1.…", capabilityValue, guideHost, "http://"+proxy).Replace(block)
}

// testGit runs the GitHub guide's commands as they are (they configure git
// and clone), then pushes from the clone: the stand-in, a real git
// http-backend, sees only the real token, and the push lands in its bare
// repository. Another owner's repository is refused before it.
func (s *providerStack) testGit(t *testing.T) {
	git := testprog.Require(t, "git", "/usr/bin/git")
	bash := testprog.Require(t, "bash", "/bin/bash")
	up := s.upstreams["github_git"]
	tok := s.issue(t, "github.md", sandbox1, githubToken)
	home, work := t.TempDir(), t.TempDir()
	// The sandbox's environment alone: no proxy variable or git setting of
	// this machine's.
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0", "GIT_CAPABILITY=" + tok,
		"GIT_AUTHOR_NAME=sandbox", "GIT_AUTHOR_EMAIL=sandbox@example.com", "GIT_COMMITTER_NAME=sandbox", "GIT_COMMITTER_EMAIL=sandbox@example.com"}
	run := func(dir, name string, args ...string) (string, error) {
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, slices.Clone(env)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	if out, err := run(work, bash, "-e", "-c", guideGitScript(t, tok, s.proxies[sandbox1])); err != nil {
		t.Fatalf("the guide's commands: %v\n%s", err, out)
	}
	clone := filepath.Join(work, "widgets")
	if out, err := run(clone, git, "log", "-1", "--format=%s"); err != nil || strings.TrimSpace(out) != "first" {
		t.Fatalf("the clone's last commit: %q, %v; want the stand-in's \"first\"", out, err)
	}
	if out, err := run(clone, git, "commit", "-q", "--allow-empty", "-m", "pushed from the sandbox"); err != nil {
		t.Fatalf("git commit: %v\n%s", err, out)
	}
	if out, err := run(clone, git, "push", "-q", "origin", "main"); err != nil {
		t.Fatalf("git push: %v\n%s", err, out)
	}
	if out, err := run(s.bareRepo, git, "log", "-1", "--format=%s", "main"); err != nil || strings.TrimSpace(out) != "pushed from the sandbox" {
		t.Errorf("the stand-in's repository after the push: %q, %v; want the sandbox's commit", out, err)
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+githubToken))
	paths := map[string]bool{}
	up.mu.Lock()
	for _, r := range up.reqs {
		if got := r.Header.Get("Authorization"); got != want {
			t.Errorf("%s %s reached the stand-in with authorization %q; want the real token", r.Method, r.RequestURI, got)
		}
		p, _, _ := strings.Cut(r.RequestURI, "?")
		paths[r.Method+" "+strings.TrimPrefix(p, "/"+ghOwner+"/"+ghRepo+"/")] = true
	}
	up.mu.Unlock()
	for _, p := range []string{"GET info/refs", "POST git-upload-pack", "POST git-receive-pack"} {
		if !paths[p] {
			t.Errorf("the stand-in saw %v; want %s among them", paths, p)
		}
	}

	before := up.count()
	out, err := run(work, git, "clone", "-q", "https://github.com/other/widgets.git", "other")
	if err == nil || !strings.Contains(out, "403") {
		t.Errorf("clone of another owner's repository: %v\n%s; want it refused with 403", err, out)
	}
	if n := up.count() - before; n != 0 {
		t.Errorf("another owner's repository: %d requests reached the stand-in; want none", n)
	}
	t.Logf("git, another owner's repository: %s", strings.TrimSpace(out))

	// An expired capability in the credential helper: git gives up after
	// the second 401.
	old := capability.NewCodec(s.codec.KeyRing(), capability.WithClock(func() time.Time { return time.Now().Add(-2 * time.Hour) }))
	env = append(env, "GIT_CAPABILITY="+sealProfileWith(t, old, "github", sandbox1, map[string]string{"owner": ghOwner, "repo": ghRepo}, map[string]string{"token": githubToken}, time.Hour))
	out, err = run(work, git, "clone", "-q", "https://github.com/acme/widgets.git", "expired")
	if err == nil || !strings.Contains(out, "Authentication failed") || up.count() != before {
		t.Errorf("clone with an expired capability: %v\n%s; want Authentication failed, nothing upstream", err, out)
	}
	t.Logf("git, expired capability: %s", strings.TrimSpace(out))
}
