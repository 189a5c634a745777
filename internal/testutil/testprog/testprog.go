// Package testprog finds the external programs that tests run against the
// project (Node.js, nginx) and wraps the Node.js stand-in for the existing
// TypeScript issuer. It is imported by tests, and by the test command
// (internal/testsuite) for the record of skips.
//
// Outside CI a missing program skips the test (Missing, which records the
// skip for the test command's summary); with CI=true it fails it, so a CI
// machine that lost a package cannot turn a suite green by skipping.
package testprog

import (
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Require returns the path of the program name, found on PATH or at one of
// the extra paths, or skips the test (fails it when CI=true): Missing.
func Require(t testing.TB, name string, extra ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range extra {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	Missing(t, name, "not found on PATH")
	return ""
}

// InstallCommand installs every program the tests run (.ci/run runs it).
const InstallCommand = "bash .ci/install"

// SkipLogEnv names the file to which Missing appends a line for each test
// it skips: the test command (internal/testsuite) sets it, then counts the
// lines (ReadSkipLog) and says how to install what those tests need. A test
// binary that reads it is not cached by go test across runs that name
// different files, so a skip is counted every time it happens.
const SkipLogEnv = "EXTAUTHZ_SKIP_LOG"

// Missing skips t because program is not installed, saying why, and
// records the skip in $EXTAUTHZ_SKIP_LOG; with CI=true it fails t instead,
// so that a CI machine that lost a package cannot turn a suite green by
// skipping.
func Missing(t testing.TB, program, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI (%s installs it): %s", program, InstallCommand, why)
	}
	if log := os.Getenv(SkipLogEnv); log != "" {
		dir, _ := os.Getwd() // the package's directory
		line := strings.Join([]string{dir, t.Name(), program}, "\t") + "\n"
		if f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
			_, _ = f.WriteString(line) // one write: lines from parallel tests do not mix
			f.Close()
		}
	}
	t.Skipf("missing program %s: %s", program, why)
}

// Skip is one test Missing skipped.
type Skip struct{ Dir, Test, Program string }

// ReadSkipLog reads the skips Missing recorded in the file name (none if
// it does not exist), each test once.
func ReadSkipLog(name string) ([]Skip, error) {
	data, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var skips []Skip
	seen := map[Skip]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			continue
		}
		if s := (Skip{f[0], f[1], f[2]}); !seen[s] {
			seen[s] = true
			skips = append(skips, s)
		}
	}
	return skips, nil
}

// NodeKKA1 returns a function that seals (mode "seal": stdin is claims JSON,
// re-serialised by JSON.stringify) or opens (mode "open": stdin is a
// capability, the result is JSON.stringify of the parsed claims) a kka1
// capability with Node's crypto, the way the TypeScript issuer does.
func NodeKKA1(t testing.TB) func(mode string, key []byte, stdin string) string {
	t.Helper()
	return nodeCapability(t)
}

// NodeProfileCapability is NodeKKA1 for profile capabilities
// (docs/profile-capability.md): prefix eac1. and the prefix as additional
// authenticated data, as an issuer in another language would write them.
func NodeProfileCapability(t testing.TB) func(mode string, key []byte, stdin string) string {
	t.Helper()
	return nodeCapability(t, "CAP_PREFIX=eac1.", "CAP_AAD=1")
}

func nodeCapability(t testing.TB, env ...string) func(mode string, key []byte, stdin string) string {
	t.Helper()
	node := Require(t, "node", "/usr/bin/nodejs")
	script := filepath.Join(t.TempDir(), "capability.js")
	if err := os.WriteFile(script, []byte(nodeKKA1), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(mode string, key []byte, stdin string) string {
		t.Helper()
		cmd := exec.Command(node, script, mode)
		cmd.Env = append(append(os.Environ(), "KKA1_KEY="+base64.StdEncoding.EncodeToString(key)), env...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("node %s: %v\n%s", mode, err, stderr)
		}
		return string(out)
	}
}

// nodeKKA1 is the issuer's algorithm in Node: aes-256-gcm, a 16-byte IV, the
// key in base64 in $KKA1_KEY; $CAP_PREFIX (default kka1.) and, with
// $CAP_AAD=1, the prefix as additional authenticated data, for profile
// capabilities.
const nodeKKA1 = `
const crypto = require('crypto');
const mode = process.argv[2];
const key = Buffer.from(process.env.KKA1_KEY, 'base64');
const prefix = process.env.CAP_PREFIX || 'kka1.';
const aad = process.env.CAP_AAD === '1';
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  if (mode === 'seal') {
    const iv = crypto.randomBytes(16);
    const c = crypto.createCipheriv('aes-256-gcm', key, iv);
    if (aad) c.setAAD(Buffer.from(prefix, 'utf8'));
    const ct = Buffer.concat([c.update(JSON.stringify(JSON.parse(input)), 'utf8'), c.final()]);
    const tag = c.getAuthTag();
    process.stdout.write(prefix + [iv, tag, ct].map((b) => b.toString('base64')).join(':'));
  } else if (mode === 'open') {
    const t = input.trim();
    if (!t.startsWith(prefix)) throw new Error('no prefix');
    const [iv, tag, ct] = t.slice(prefix.length).split(':').map((p) => Buffer.from(p, 'base64'));
    if (iv.length !== 16 || tag.length !== 16) throw new Error('bad iv or tag');
    const d = crypto.createDecipheriv('aes-256-gcm', key, iv);
    d.setAuthTag(tag);
    if (aad) d.setAAD(Buffer.from(prefix, 'utf8'));
    const pt = Buffer.concat([d.update(ct), d.final()]).toString('utf8');
    process.stdout.write(JSON.stringify(JSON.parse(pt)));
  } else {
    throw new Error('mode');
  }
});
`
