package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/authz"
	"github.com/extauthz/extauthz/bench/extauthzproc"
	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/profiles"
)

// TestFlagsRefused: the profile flags that cannot make a run are refused
// before anything is built, as a misuse (exit 2) that names the flag.
func TestFlagsRefused(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-profile", "nosuch"}, "-profile must be one of anthropic, gemini, openai"},
		{[]string{"-profile", "github"}, "-profile must be one of"}, // its routes need variables
		{[]string{"-reload-every", "200ms"}, "-reload-every needs -profile"},
		{[]string{"-profile", "openai", "-reload-every", "5ms"}, "-reload-every must be at least 20ms"},
		{[]string{"-profile", "openai", "-reload-every", "-1s"}, "-reload-every must be at least"},
		{[]string{"-profile", "openai", "-flood"}, "-flood and -profile do not combine"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := realMain(tc.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tc.want)
			}
		})
	}
}

// TestProfileRequest sends each -profile choice's request, as the run
// builds it, to extauthz's gRPC service in process with the shipped
// profiles: it is allowed, verify accepts the answer, and the do-nothing
// server's answer is the same message, so that both servers send alike.
// verify refuses any other answer.
func TestProfileRequest(t *testing.T) {
	_, codec, err := extauthzproc.NewKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	client := inProcessExtauthz(t, codec)
	for _, name := range profileNames() {
		t.Run(name, func(t *testing.T) {
			pt, err := newProfileTarget(codec, name)
			if err != nil {
				t.Fatal(err)
			}
			req := checkRequest(pt.call.sdkCall, pt.capValue)
			h := req.GetAttributes().GetRequest().GetHttp()
			if h.GetHost() != pt.call.host || !strings.HasPrefix(h.GetPath(), "/v1") ||
				req.GetAttributes().GetContextExtensions()["upstream_scheme"] != "https" {
				t.Errorf("request %s %s, extensions %v; want %s, a /v1 path, upstream https",
					h.GetHost(), h.GetPath(), req.GetAttributes().GetContextExtensions(), pt.call.host)
			}
			var capValue string
			for _, hv := range h.GetHeaderMap().GetHeaders() {
				if hv.GetKey() == pt.call.capHeader {
					capValue = string(hv.GetRawValue())
				}
			}
			if !strings.HasPrefix(capValue, pt.call.capPrefix+capability.ProfilePrefix) {
				t.Errorf("%s: %.20q…; want %q then the capability", pt.call.capHeader, capValue, pt.call.capPrefix+capability.ProfilePrefix)
			}

			resp, err := client.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if err := pt.verify(resp); err != nil {
				t.Errorf("verify(extauthz's answer): %v", err)
			}
			if want := pt.nopAnswer(); !proto.Equal(resp, want) {
				t.Errorf("extauthz answers\n%v\nthe do-nothing server\n%v", resp, want)
			}
		})
	}

	pt, err := newProfileTarget(codec, "openai")
	if err != nil {
		t.Fatal(err)
	}
	other := pt.call.sdkCall
	other.host = "api.anthropic.com" // not a route of the openai profile
	resp, err := client.Check(context.Background(), checkRequest(other, pt.capValue))
	if err != nil {
		t.Fatal(err)
	}
	wrong := *pt
	wrong.wantValue = "Bearer another"
	for what, tc := range map[string]struct {
		pt   *profileTarget
		resp *authv3.CheckResponse
	}{
		"a deny":                {pt, resp},
		"another secret":        {&wrong, pt.nopAnswer()},
		"an allow of anthropic": {pt, mustTarget(t, codec, "anthropic").nopAnswer()},
	} {
		if err := tc.pt.verify(tc.resp); err == nil || strings.Contains(err.Error(), profileSecret) {
			t.Errorf("verify(%s) = %v; want an error that does not name the secret", what, err)
		}
	}
}

func mustTarget(t *testing.T, codec *capability.Codec, name string) *profileTarget {
	t.Helper()
	pt, err := newProfileTarget(codec, name)
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

// inProcessExtauthz serves extauthz's Check (authz.Register, as serve
// registers it) over codec's key with the tree's profiles/providers.yaml,
// in process over an in-memory connection.
func inProcessExtauthz(t *testing.T, codec *capability.Codec) authv3.AuthorizationClient {
	t.Helper()
	core, err := authz.NewAuthorizer(authz.Config{Codec: codec, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	root, err := extauthzproc.ModuleDir()
	if err != nil {
		t.Fatal(err)
	}
	set, err := profiles.Load(filepath.Join(root, "profiles", "providers.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	core.SetProfiles(set)
	srv, err := authz.NewGRPCServer(core, authz.GRPCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(authz.ServerOptions()...)
	authz.Register(gs, srv)
	ln := bufconn.Listen(1 << 20)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

// TestRewriterWrite: rewrites 1 and 2 put a new file in place (another
// inode), rewrite 3 writes the same file; each is the profiles and a
// comment that differs from the last.
func TestRewriterWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "profiles.yaml")
	content := []byte("profiles: []\n")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	w := &rewriter{path: path, content: content}
	ino := inode(t, path)
	var last []byte
	for _, tc := range []struct {
		n      int
		rename bool
	}{{1, true}, {2, true}, {3, false}, {4, true}} {
		if err := w.write(tc.n); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%s\n# grpcbench rewrite %d\n", content, tc.n); string(got) != want || bytes.Equal(got, last) {
			t.Errorf("rewrite %d: %q; want %q", tc.n, got, want)
		}
		last = got
		now := inode(t, path)
		if renamed := now != ino; renamed != tc.rename {
			t.Errorf("rewrite %d: renamed %v; want %v", tc.n, renamed, tc.rename)
		}
		ino = now
	}
	if w.renames != 3 || w.inPlace != 1 {
		t.Errorf("counted %d renames, %d in place; want 3 and 1", w.renames, w.inPlace)
	}
	if !bytes.Equal(content, []byte("profiles: []\n")) {
		t.Errorf("rewrites changed the original content: %q", content)
	}

	// Started and stopped, it reports what it wrote and no error.
	r := startRewriter(path, content, time.Millisecond)
	renames, inPlace, err := r.Stop()
	if err != nil || renames < 0 || inPlace < 0 {
		t.Errorf("Stop() = %d, %d, %v", renames, inPlace, err)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestProfileReloads reads the counters from a /metrics text, and refuses
// one that lacks them.
func TestProfileReloads(t *testing.T) {
	body := "# HELP extauthz_profile_reloads_total Reloads.\n# TYPE extauthz_profile_reloads_total counter\n" +
		"extauthz_profile_reloads_total{result=\"error\"} 2\nextauthz_profile_reloads_total{result=\"ok\"} 123\n" +
		"extauthz_key_reloads_total{result=\"ok\"} 9\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ok, failed, err := profileReloads(context.Background(), addr)
	if ok != 123 || failed != 2 || err != nil {
		t.Errorf("profileReloads = %d, %d, %v; want 123, 2", ok, failed, err)
	}
	body = "extauthz_key_reloads_total{result=\"ok\"} 9\n"
	if _, _, err := profileReloads(context.Background(), addr); err == nil {
		t.Errorf("profileReloads without the counter: no error")
	}
}

// TestFailure: a profile run fails on any failed check, and with reloads
// on a failed rewrite or no reload at all, not on a refused one; a kka1
// run never does.
func TestFailure(t *testing.T) {
	profile := Config{Profile: "openai"}
	ok := &ReloadResult{Renames: 2, InPlace: 1, OK: 3}
	for _, tc := range []struct {
		name   string
		c      Config
		failed int64
		reload *ReloadResult
		want   string
	}{
		{"kka1 with errors", Config{}, 5, nil, ""},
		{"profile", profile, 0, nil, ""},
		{"profile with errors", profile, 1, nil, "1 of 101 checks failed"},
		{"reloads", profile, 0, ok, ""},
		{"reloads with errors", profile, 2, ok, "2 of 101 checks failed"},
		{"a reload refused", profile, 0, &ReloadResult{OK: 3, Errors: 1}, ""},
		{"no reload", profile, 0, &ReloadResult{Renames: 4}, "never reloaded"},
		{"a rewrite failed", profile, 0, &ReloadResult{OK: 1, Err: os.ErrPermission}, "rewriting the profiles file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Report{Config: tc.c, Checks: []int64{100, 1}, Failed: []int64{0, tc.failed}, Reload: tc.reload}
			err := r.failure()
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("failure() = %v; want %q", err, tc.want)
			}
		})
	}
}

// TestProfileFlags: extauthz gets the profiles file, and with reloads the
// admin listener and a poll four times per rewrite.
func TestProfileFlags(t *testing.T) {
	if got, want := fmt.Sprint(profileFlags("p.yaml", 0)), "[--profiles-file p.yaml]"; got != want {
		t.Errorf("profileFlags(0) = %s; want %s", got, want)
	}
	if got, want := fmt.Sprint(profileFlags("p.yaml", 200*time.Millisecond)),
		"[--profiles-file p.yaml --admin-addr 127.0.0.1:0 --key-reload-interval 50ms]"; got != want {
		t.Errorf("profileFlags(200ms) = %s; want %s", got, want)
	}
}
