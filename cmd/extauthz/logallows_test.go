package main

import (
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/extauthz/extauthz/authz"
)

// TestLogAllowsFlag: --log-allows (or EXTAUTHZ_LOG_ALLOWS) is all by
// default, takes all, sampled or none, and refuses anything else naming
// the flag and the variable.
func TestLogAllowsFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want authz.LogAllows
		err  string
	}{
		{nil, "", authz.LogAllowsAll, ""},
		{[]string{"--log-allows", "none"}, "", authz.LogAllowsNone, ""},
		{nil, "sampled", authz.LogAllowsSampled, ""},
		{[]string{"--log-allows=all"}, "none", authz.LogAllowsAll, ""},
		{[]string{"--log-allows", "some"}, "", 0, `--log-allows (or EXTAUTHZ_LOG_ALLOWS): want all, sampled or none, got "some"`},
	} {
		getenv := func(k string) string { return map[string]string{"EXTAUTHZ_LOG_ALLOWS": tc.env}[k] }
		o, err := parseServeFlags("serve", append([]string{"--dev"}, tc.args...), getenv, io.Discard)
		switch {
		case tc.err != "":
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q with EXTAUTHZ_LOG_ALLOWS=%q: error %v; want %q", tc.args, tc.env, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q with EXTAUTHZ_LOG_ALLOWS=%q: %v", tc.args, tc.env, err)
		case o.srv.LogAllows != tc.want:
			t.Errorf("%q with EXTAUTHZ_LOG_ALLOWS=%q: %v; want %v", tc.args, tc.env, o.srv.LogAllows, tc.want)
		}
	}
}

// TestServeLogAllows runs the binary with each --log-allows choice, sends
// it allowed and denied Checks, and counts its decision lines after
// SIGTERM (which writes every buffered line): every deny is logged; allows
// all, one in 100 from the first, or none.
func TestServeLogAllows(t *testing.T) {
	const allows, denies = 250, 3
	for _, tc := range []struct {
		name       string
		env        []string
		args       []string
		allowLines int
	}{
		{"all (default)", nil, nil, allows},
		{"sampled", []string{"EXTAUTHZ_LOG_ALLOWS=sampled"}, nil, 3}, // the 1st, 101st and 201st
		{"none", nil, []string{"--log-allows", "none"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := newKey(t)
			keyFile := filepath.Join(t.TempDir(), "keys")
			writeKeys(t, keyFile, key)
			p := startServeWith(t, nil, tc.env, append([]string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "", "--admin-addr", "",
				"--key-file", keyFile}, tc.args...)...)
			client := authv3.NewAuthorizationClient(p.dialReady(t))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tok := sealFor(t, key)
			for i := range allows + denies {
				req := checkRequest(tok)
				if i%100 == 50 { // a deny now and then: another container
					req.Attributes.ContextExtensions["outbound_container_id"] = "someone-else"
				}
				resp, err := client.Check(ctx, req)
				if err != nil || (resp.GetOkResponse() == nil) != (i%100 == 50) {
					t.Fatalf("Check %d = %v, %v", i, resp.GetStatus(), err)
				}
			}
			stopServe(t, p)
			got := map[string]int{}
			for line := range strings.Lines(p.log()) {
				var m map[string]any
				if json.Unmarshal([]byte(line), &m) == nil && m["message"] == "decision" {
					got[m["decision"].(string)]++
				}
			}
			if got["allow"] != tc.allowLines || got["deny"] != denies {
				t.Errorf("%d allow and %d deny lines; want %d and %d", got["allow"], got["deny"], tc.allowLines, denies)
			}
		})
	}
}

// dialReady waits until p is ready and returns a plain gRPC connection to
// its gRPC listener, closed when the test ends.
func (p *proc) dialReady(t *testing.T) *grpc.ClientConn {
	t.Helper()
	addr := p.addr(t, "grpc")
	p.waitLog(t, "ready", msg("ready"))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
