package capability

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// nodeKKA1 seals stdin (JSON, re-serialised by JSON.stringify) or opens a
// capability from stdin (printing JSON.stringify of the parsed claims), with
// the base64 key from $KKA1_KEY, the way the TypeScript issuer does.
const nodeKKA1 = `
const crypto = require('crypto');
const mode = process.argv[2];
const key = Buffer.from(process.env.KKA1_KEY, 'base64');
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  if (mode === 'seal') {
    const iv = crypto.randomBytes(16);
    const c = crypto.createCipheriv('aes-256-gcm', key, iv);
    const ct = Buffer.concat([c.update(JSON.stringify(JSON.parse(input)), 'utf8'), c.final()]);
    const tag = c.getAuthTag();
    process.stdout.write('kka1.' + [iv, tag, ct].map((b) => b.toString('base64')).join(':'));
  } else if (mode === 'open') {
    const t = input.trim();
    if (!t.startsWith('kka1.')) throw new Error('no prefix');
    const [iv, tag, ct] = t.slice(5).split(':').map((p) => Buffer.from(p, 'base64'));
    if (iv.length !== 16 || tag.length !== 16) throw new Error('bad iv or tag');
    const d = crypto.createDecipheriv('aes-256-gcm', key, iv);
    d.setAuthTag(tag);
    const pt = Buffer.concat([d.update(ct), d.final()]).toString('utf8');
    process.stdout.write(JSON.stringify(JSON.parse(pt)));
  } else {
    throw new Error('mode');
  }
});
`

// nodeRunner returns a function running the script, or skips (fails in CI)
// when node is absent.
func nodeRunner(t *testing.T) func(mode string, key []byte, stdin string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node is required in CI: %v", err)
		}
		t.Skipf("node not found: %v", err)
	}
	script := filepath.Join(t.TempDir(), "kka1.js")
	if err := os.WriteFile(script, []byte(nodeKKA1), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(mode string, key []byte, stdin string) string {
		t.Helper()
		cmd := exec.Command(node, script, mode)
		cmd.Env = append(os.Environ(), "KKA1_KEY="+base64.StdEncoding.EncodeToString(key))
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("node %s: %v\n%s", mode, err, stderr)
		}
		return string(out)
	}
}

func interopSubjects() map[string]Subject {
	plain := testSubject()
	noProvider := testSubject()
	noProvider.ProviderToken = ""
	unicode := testSubject()
	unicode.UserID = "ü-用户-😀 \"q\" \\ </script> \u2028"
	unicode.KiloSessionID = "ses/with space?&"
	long := testSubject()
	long.UserToken = strings.Repeat("t", 20000)
	return map[string]Subject{"plain": plain, "no provider token": noProvider, "unicode": unicode, "long token": long}
}

func TestInteropNodeSealsGoOpens(t *testing.T) {
	run := nodeRunner(t)
	key := testKey(3)
	c, _ := newTestCodec(t, testKey(4), key) // Go tries both keys
	for name, s := range interopSubjects() {
		t.Run(name, func(t *testing.T) {
			want := Claims{Subject: s, Version: 1, Purpose: Purpose,
				IssuedAt: t0.UnixMilli(), ExpiresAt: t0.Add(2 * time.Hour).UnixMilli()}
			plain, err := marshal(want.wire(false))
			if err != nil {
				t.Fatal(err)
			}
			tok := run("seal", key, string(plain))
			got, err := c.Open(tok)
			if err != nil {
				t.Fatalf("Open(node token) = %v", err)
			}
			if got != want {
				t.Fatalf("Open(node token) = %v; want %v", got, want)
			}
		})
	}
}

func TestInteropGoSealsNodeOpens(t *testing.T) {
	run := nodeRunner(t)
	key := testKey(5)
	c, _ := newTestCodec(t, key, testKey(6))
	for name, s := range interopSubjects() {
		t.Run(name, func(t *testing.T) {
			tok, err := c.Seal(s, 90*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			var got, want map[string]any
			if err := json.Unmarshal([]byte(run("open", key, tok)), &got); err != nil {
				t.Fatal(err)
			}
			wantJSON, _ := marshal((&Claims{Subject: s, Version: 1, Purpose: Purpose,
				IssuedAt: t0.UnixMilli(), ExpiresAt: t0.Add(90 * time.Minute).UnixMilli()}).wire(false))
			if err := json.Unmarshal(wantJSON, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("node opened\n%v\nwant\n%v", got, want)
			}
			if _, hasPT := got["providerToken"]; hasPT != (s.ProviderToken != "") {
				t.Fatalf("providerToken presence = %v; want %v", hasPT, s.ProviderToken != "")
			}
		})
	}
}
