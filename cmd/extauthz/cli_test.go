package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHelpOnStdout: help asked for goes to stdout with status 0, so that
// `extauthz serve --help | less` shows it; nothing goes to stderr.
func TestHelpOnStdout(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"},
		{"serve", "--help"}, {"serve", "-h"}, {"help", "serve"},
		{"check-config", "--help"}, {"issue", "--help"}, {"open", "-h"}, {"keygen", "--help"},
		{"revoke", "--help"}, {"version", "--help"}, {"demo", "--help"},
	} {
		var out, errb bytes.Buffer
		code := run(args, strings.NewReader(""), &out, &errb)
		if code != 0 || errb.Len() != 0 || !strings.HasPrefix(out.String(), "usage: extauthz") {
			t.Errorf("%q = %d, stdout %.60q, stderr %q; want 0 and the usage on stdout alone", args, code, out.String(), errb.String())
		}
	}
	// Not asked for: no command at all is a usage error, on stderr.
	var out, errb bytes.Buffer
	if code := run(nil, nil, &out, &errb); code != 2 || out.Len() != 0 || !strings.HasPrefix(errb.String(), "usage: extauthz") {
		t.Errorf("no command = %d, stdout %q, stderr %.60q; want 2 and the usage on stderr", code, out.String(), errb.String())
	}
}

// TestUsageErrorsAreOneLine: a wrong flag or command is one line on
// stderr that names the one meant when it is close, and points to --help;
// not the usage text.
func TestUsageErrorsAreOneLine(t *testing.T) {
	for _, k := range []string{"EXTAUTHZ_KEYS", "EXTAUTHZ_KEY_FILE", "EXTAUTHZ_DEV"} {
		t.Setenv(k, "")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--grpc-adr", ":1"}, "extauthz serve: unknown flag --grpc-adr; did you mean --grpc-addr? (extauthz serve --help lists the flags)"},
		{[]string{"serve", "--nope"}, "extauthz serve: unknown flag --nope (extauthz serve --help lists the flags)"},
		{[]string{"serve", "--keys", "x"}, "extauthz serve: unknown flag --keys; it is read from the environment only: set EXTAUTHZ_KEYS (extauthz serve --help lists the flags)"},
		{[]string{"check-config", "--shutdown-timeout"}, "extauthz check-config: --shutdown-timeout needs a value (extauthz check-config --help lists the flags)"},
		{[]string{"issue", "--tll", "1h"}, "extauthz issue: unknown flag --tll; did you mean --ttl? (extauthz issue --help lists the flags)"},
		{[]string{"keygen", "extra"}, `extauthz keygen: unexpected argument "extra" (input is read from stdin) (extauthz keygen --help lists the flags)`},
		{[]string{"sreve"}, `extauthz: unknown command "sreve"; did you mean serve? (extauthz --help lists the commands)`},
		{[]string{"frobnicate"}, `extauthz: unknown command "frobnicate" (extauthz --help lists the commands)`},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, strings.NewReader(""), &out, &errb)
		if code != 2 || out.Len() != 0 || errb.String() != tc.want+"\n" {
			t.Errorf("%q = %d, stdout %q, stderr %q; want 2 and the line %q", tc.args, code, out.String(), errb.String(), tc.want)
		}
	}
}

// TestErrorsNameTheVariable: an error about a setting that came from the
// environment names the variable, whether a flag's own rule refuses it, a
// rule between flags does, or the address will not bind.
func TestErrorsNameTheVariable(t *testing.T) {
	for _, k := range []string{"EXTAUTHZ_KEYS", "EXTAUTHZ_KEY_FILE", "EXTAUTHZ_DEV", "EXTAUTHZ_GRPC_ADDR", "EXTAUTHZ_ADMIN_ADDR", "EXTAUTHZ_HTTP_ADDR"} {
		t.Setenv(k, "")
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name, value string
		args        []string
		cmd         string
		want        string
	}{
		{"own rule", "9191", nil, "check-config", "EXTAUTHZ_GRPC_ADDR (for --grpc-addr): want host:port"},
		{"rule between flags", "127.0.0.1:9090", []string{"--admin-addr", "127.0.0.1:9090"}, "check-config",
			`EXTAUTHZ_GRPC_ADDR (for --grpc-addr): --admin-addr "127.0.0.1:9090" and --grpc-addr "127.0.0.1:9090" are the same listening address`},
		{"command line wins", "bogus", []string{"--grpc-addr", "127.0.0.1:9090", "--admin-addr", "127.0.0.1:9090"}, "check-config",
			`extauthz check-config: --admin-addr "127.0.0.1:9090" and --grpc-addr`},
		{"address in use", busy.Addr().String(), nil, "serve", "EXTAUTHZ_GRPC_ADDR (for --grpc-addr): --grpc-addr " + busy.Addr().String() + ": listen tcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("EXTAUTHZ_GRPC_ADDR", tc.value)
			args := append([]string{tc.cmd, "--dev", "--http-addr", "", "--http-container-id-header", "", "--admin-addr", ""}, tc.args...)
			var out, errb bytes.Buffer
			code := run(args, strings.NewReader(""), &out, &errb)
			if code == 0 || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("EXTAUTHZ_GRPC_ADDR=%s %q = %d, stderr %q; want it to say %q", tc.value, args, code, errb.String(), tc.want)
			}
		})
	}
}

// TestCheckConfigWarnsAboutPermissions: check-config says what serve would
// log about a key file other users may read, and still passes it.
func TestCheckConfigWarnsAboutPermissions(t *testing.T) {
	for _, k := range []string{"EXTAUTHZ_KEYS", "EXTAUTHZ_KEY_FILE", "EXTAUTHZ_STRICT_PERMS", "EXTAUTHZ_API_TOKEN_FILE"} {
		t.Setenv(k, "")
	}
	keys := filepath.Join(t.TempDir(), "keys")
	writeKeys(t, keys, newKey(t))
	if err := os.Chmod(keys, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"check-config", "--grpc-addr", "127.0.0.1:0", "--http-addr", "", "--admin-addr", "", "--key-file", keys}
	var out, errb bytes.Buffer
	if code := run(args, strings.NewReader(""), &out, &errb); code != 0 || !strings.Contains(out.String(), "configuration OK") {
		t.Fatalf("check-config = %d, %q %q", code, out.String(), errb.String())
	}
	if want := "WRN --key-file " + keys + " is open to other users (mode 0644)"; !strings.HasPrefix(errb.String(), want) || strings.Count(errb.String(), "\n") != 1 {
		t.Errorf("check-config stderr = %q; want the one warning %q…", errb.String(), want)
	}
	// A private key file: nothing to say.
	os.Chmod(keys, 0o600)
	out.Reset()
	errb.Reset()
	if code := run(args, strings.NewReader(""), &out, &errb); code != 0 || errb.Len() != 0 {
		t.Errorf("check-config with a 0600 key file = %d, stderr %q; want 0 and nothing", code, errb.String())
	}
}

// TestSecondSignalExitsAtOnce: the first SIGINT or SIGTERM starts the
// drain (NOT_SERVING, a delay, then closing); a second one during it ends
// the process at once with the shell's status for that signal.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGINT", syscall.SIGINT}, {"SIGTERM", syscall.SIGTERM}} {
		t.Run(tc.name, func(t *testing.T) {
			keyFile := filepath.Join(t.TempDir(), "keys")
			writeKeys(t, keyFile, newKey(t))
			p := startServeWith(t, nil, []string{"EXTAUTHZ_DRAIN_DELAY=60s"}, "--grpc-addr", "127.0.0.1:0", "--http-addr", "", "--admin-addr", "", "--key-file", keyFile)
			p.waitLog(t, "ready", msg("ready"))
			p.cmd.Process.Signal(tc.sig)
			p.waitLog(t, "draining", msg("draining"))
			start := time.Now()
			p.cmd.Process.Signal(tc.sig)
			select {
			case err := <-p.done:
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 128+int(tc.sig) {
					t.Errorf("after a second %s: %v; want exit status %d", tc.name, err, 128+int(tc.sig))
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("exited %v after the second signal; want at once", d)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("serve still draining 20s after a second %s", tc.name)
			}
			if !strings.Contains(p.log(), "second signal during the drain") {
				t.Errorf("no line says why it exited:\n%s", p.log())
			}
		})
	}
}
