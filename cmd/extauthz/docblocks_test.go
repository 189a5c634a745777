//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testutil/testprog"
)

// The documentation's examples run as tests (docs/development.md, "Examples
// that run"): an HTML comment on the line before a fence says what to do
// with the block, and a shell block that says nothing fails the test.
//
//	<!-- run -->
//	<!-- run; needs PROGRAM, … -->
//	<!-- run in background; ready when URL answers -->
//	<!-- not run: REASON, naming the tests that check it (TestName) -->

// repoRoot is the repository's root, seen from this package's directory.
const repoRoot = "../.."

// docFiles are the Markdown files whose blocks are run: the README and
// every file under docs/, relative to the root.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md"}
	err := filepath.WalkDir(filepath.Join(repoRoot, "docs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, err := filepath.Rel(repoRoot, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// markKind is what a block's marking asks for.
type markKind int

const (
	unmarked markKind = iota
	markRun
	markBackground
	markNotRun
)

// docBlock is one fenced block of a Markdown file.
type docBlock struct {
	file  string
	line  int // of the opening fence, 1-based
	lang  string
	body  string
	kind  markKind
	needs []string // programs a run block needs beyond bash and curl
	ready string   // a background block's readiness URL
	why   string   // a block that is not run: the reason
}

func (b docBlock) String() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// shellLangs are the fence languages of blocks a reader pastes into a shell.
var shellLangs = []string{"sh", "bash", "shell", "console", "zsh"}

var (
	fenceRE   = regexp.MustCompile("^( *)(```+|~~~+)\\s*([^`\\s]*)")
	commentRE = regexp.MustCompile(`^\s*<!--\s*(.*?)\s*-->\s*$`)
	readyRE   = regexp.MustCompile(`^ready when (https?://\S+) answers$`)
	testRE    = regexp.MustCompile(`\bTest[A-Z0-9_]\w*`)
)

// parseBlocks returns the fenced blocks of a Markdown file with their
// markings, and an error for each block whose marking is missing or wrong.
func parseBlocks(file, text string) ([]docBlock, []error) {
	var blocks []docBlock
	var errs []error
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		m := fenceRE.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		indent, fence := len(m[1]), m[2]
		b := docBlock{file: file, line: i + 1, lang: m[3]}
		var body []string
		closed := false
		for i++; i < len(lines); i++ {
			if l := strings.TrimSpace(lines[i]); strings.HasPrefix(l, fence) && strings.Trim(l, fence[:1]) == "" {
				closed = true
				break
			}
			l := lines[i]
			for n := 0; n < indent && strings.HasPrefix(l, " "); n++ {
				l = l[1:]
			}
			body = append(body, l)
		}
		if !closed {
			errs = append(errs, fmt.Errorf("%s: the block is never closed", b))
			break
		}
		b.body = strings.Join(body, "\n") + "\n"
		for j := b.line - 2; j >= 0; j-- { // the comments right above the fence
			c := commentRE.FindStringSubmatch(lines[j])
			if c == nil {
				break
			}
			if err := b.mark(c[1]); err != nil {
				errs = append(errs, fmt.Errorf("%s: %v", b, err))
			}
		}
		shell := slices.Contains(shellLangs, b.lang)
		switch {
		case b.lang == "":
			errs = append(errs, fmt.Errorf("%s: a fence without a language; name it (text for plain text)", b))
		case shell && b.kind == unmarked:
			errs = append(errs, fmt.Errorf("%s: a %s block without <!-- run --> or <!-- not run: why -->", b, b.lang))
		case !shell && b.kind != unmarked:
			errs = append(errs, fmt.Errorf("%s: a %s block is marked to run; only shell blocks run", b, b.lang))
		}
		blocks = append(blocks, b)
	}
	return blocks, errs
}

// mark reads one comment above a block. Comments that are not markings
// (markers for other tests, such as helm:values) are left alone.
func (b *docBlock) mark(c string) error {
	var kind markKind
	var parts []string
	switch {
	case strings.HasPrefix(c, "not run"):
		why, ok := strings.CutPrefix(c, "not run:")
		if why = strings.TrimSpace(why); !ok || why == "" {
			return errors.New("<!-- not run --> without a reason: <!-- not run: why -->")
		}
		kind, b.why = markNotRun, why
	case c == "run" || strings.HasPrefix(c, "run;") || strings.HasPrefix(c, "run in background"):
		parts = strings.Split(c, ";")
		kind = markRun
		if strings.TrimSpace(parts[0]) == "run in background" {
			kind = markBackground
		} else if strings.TrimSpace(parts[0]) != "run" {
			return fmt.Errorf("unknown marking %q", c)
		}
	default:
		return nil
	}
	if b.kind != unmarked {
		return errors.New("two markings")
	}
	b.kind = kind
	for _, p := range parts[min(1, len(parts)):] {
		p = strings.TrimSpace(p)
		if needs, ok := strings.CutPrefix(p, "needs "); ok {
			for _, n := range strings.Split(needs, ",") {
				b.needs = append(b.needs, strings.TrimSpace(n))
			}
		} else if m := readyRE.FindStringSubmatch(p); m != nil && kind == markBackground {
			b.ready = m[1]
		} else {
			return fmt.Errorf("unknown part %q of marking %q", p, c)
		}
	}
	if kind == markBackground && b.ready == "" {
		return errors.New("a background block needs \"; ready when URL answers\"")
	}
	return nil
}

// testNames are the test functions of every module in the tree.
func testNames(t *testing.T) map[string]bool {
	t.Helper()
	decl := regexp.MustCompile(`(?m)^func (Test\w+)\(`)
	names := map[string]bool{}
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if strings.HasSuffix(p, "_test.go") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range decl.FindAllSubmatch(b, -1) {
				names[string(m[1])] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestDocBlocks runs the shell blocks of the README and docs/ marked to run,
// each file as one session in a scratch copy of the repository, and fails on
// a shell block that is not marked, or whose "not run" reason names a test
// the tree does not have.
func TestDocBlocks(t *testing.T) {
	tests := testNames(t)
	var sessions [][]docBlock
	for _, f := range docFiles(t) {
		text, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		blocks, errs := parseBlocks(f, string(text))
		for _, err := range errs {
			t.Error(err)
		}
		var run []docBlock
		for _, b := range blocks {
			switch b.kind {
			case markNotRun:
				for _, name := range testRE.FindAllString(b.why, -1) {
					if !tests[name] {
						t.Errorf("%s: not run, checked by %s, which is not a test of the tree", b, name)
					}
				}
				t.Logf("%s: not run: %s", b, b.why)
			case markRun, markBackground:
				run = append(run, b)
			}
		}
		if len(run) > 0 {
			sessions = append(sessions, run)
		}
	}
	if t.Failed() {
		return
	}
	bin := buildBinary(t)
	for _, blocks := range sessions {
		t.Run(blocks[0].file, func(t *testing.T) { runSession(t, bin, blocks) })
	}
}

// runSession runs one file's blocks in order in one bash, from the root of
// a scratch copy of the repository, with extauthz first on PATH.
func runSession(t *testing.T, bin string, blocks []docBlock) {
	needs := []string{"bash", "curl"}
	for _, b := range blocks {
		needs = append(needs, b.needs...)
	}
	for _, n := range needs {
		testprog.Require(t, n)
	}
	dir := t.TempDir()
	work, binDir, goBin, logs := filepath.Join(dir, "repo"), filepath.Join(dir, "bin"), filepath.Join(dir, "gobin"), filepath.Join(dir, "logs")
	for _, d := range []string{binDir, goBin, logs} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(bin, filepath.Join(binDir, "extauthz")); err != nil {
		t.Fatal(err)
	}
	copyRepo(t, work)
	script := filepath.Join(dir, "session.sh")
	if err := os.WriteFile(script, []byte(sessionScript(blocks, logs)), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := os.Create(filepath.Join(dir, "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Dir, cmd.Stdout, cmd.Stderr = work, out, out
	cmd.Env = sessionEnv(binDir, goBin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Run()
	// Everything the session started (servers in the background) is in its
	// process group: stop it all before the next file binds the same ports.
	stopGroup(cmd.Process.Pid)
	if err != nil {
		output, _ := os.ReadFile(out.Name())
		bg, _ := filepath.Glob(filepath.Join(logs, "*.log"))
		var bgLogs strings.Builder
		for _, l := range bg {
			b, _ := os.ReadFile(l)
			fmt.Fprintf(&bgLogs, "\n--- %s\n%s", filepath.Base(l), tail(string(b), 40))
		}
		t.Fatalf("%s: %v (the last ==> line names the block that failed)\n%s%s", blocks[0].file, err, tail(string(output), 80), bgLogs.String())
	}
	if testing.Verbose() {
		output, _ := os.ReadFile(out.Name())
		t.Logf("what the blocks printed:\n%s", output)
	}
	t.Logf("%d block(s) ran in order", len(blocks))
}

// sessionScript is the blocks as one bash script: a run block as written, a
// background block in a subshell whose output goes to a log, followed by a
// wait for its readiness URL.
func sessionScript(blocks []docBlock, logs string) string {
	var s strings.Builder
	s.WriteString("set -euo pipefail\n")
	for i, b := range blocks {
		fmt.Fprintf(&s, "echo %q >&2\n", "==> "+b.String())
		if b.kind == markRun {
			s.WriteString(b.body)
			continue
		}
		log := filepath.Join(logs, fmt.Sprintf("background-%d-line-%d.log", i, b.line))
		fmt.Fprintf(&s, `if curl -fsS -o /dev/null %[1]q 2>/dev/null; then
  echo "%[2]s: %[1]s answers before the block starts: another server holds its port" >&2; exit 1
fi
(
%[3]s) </dev/null >%[4]q 2>&1 &
__pid=$!
for __i in $(seq 300); do
  curl -fsS -o /dev/null %[1]q 2>/dev/null && break
  kill -0 "$__pid" 2>/dev/null || break
  sleep 0.1
done
if ! kill -0 "$__pid" 2>/dev/null || ! curl -fsS -o /dev/null %[1]q; then
  echo "%[2]s: the background block is not running, or %[1]s does not answer" >&2; exit 1
fi
`, b.ready, b, b.body, log)
	}
	return s.String()
}

// sessionEnv is the test's environment for a session: extauthz first on
// PATH, go install writing beside it, -trimpath so that building in the
// scratch copy reuses the build cache, and no EXTAUTHZ_* setting of the
// caller's.
func sessionEnv(binDir, goBin string) []string {
	var env []string
	goflags := "-trimpath"
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "EXTAUTHZ_"), k == "GOBIN":
		case k == "PATH":
		case k == "GOFLAGS":
			goflags = strings.TrimSpace(v + " -trimpath")
		default:
			env = append(env, kv)
		}
	}
	return append(env, "PATH="+goBin+string(os.PathListSeparator)+binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"GOBIN="+goBin, "GOFLAGS="+goflags)
}

// copyRepo copies the repository as a clone would hold it: the files git
// tracks and the untracked ones it does not ignore (so a change under test is
// seen before it is committed); without git, every file but .git.
func copyRepo(t *testing.T, dst string) {
	t.Helper()
	var files []string
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = repoRoot
	if out, err := cmd.Output(); err == nil {
		files = strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	} else {
		err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				if d != nil && d.Name() == ".git" {
					return filepath.SkipDir
				}
				return err
			}
			rel, err := filepath.Rel(repoRoot, p)
			files = append(files, rel)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		src := filepath.Join(repoRoot, f)
		fi, err := os.Lstat(src)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // deleted, not yet committed
				continue
			}
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dst, f)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

// stopGroup kills the process group pgid and waits (briefly) until it is gone.
func stopGroup(pgid int) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	for range 50 {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"…"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
