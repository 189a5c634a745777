package server

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestServeUnixSocket: --grpc-addr unix:PATH serves Check on a Unix-domain
// socket, for a sidecar proxy; a stale socket file (a killed process's)
// does not stop a restart.
func TestServeUnixSocket(t *testing.T) {
	keyFile, key := newKeyFile(t)
	sock := filepath.Join(t.TempDir(), "extauthz.sock")
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	p := startServer(t, "--grpc-addr", "unix:"+sock, "--http-addr", "", "--admin-addr", "", "--key-file", keyFile)
	if got := p.addr(t, "grpc"); got != sock {
		t.Fatalf("grpc listens on %q; want %q", got, sock)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, checkRequest(sealFor(t, key)))
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("Check over the socket = %v, %v; want an allow", resp, err)
	}
}

// TestServeWarnsOpenGRPC: a gRPC listener on a non-loopback address without
// mTLS is said once at start, with what protects it; on loopback it is not.
func TestServeWarnsOpenGRPC(t *testing.T) {
	keyFile, _ := newKeyFile(t)
	const warning = "the gRPC listener takes plain connections on a non-loopback address"
	open := startServer(t, "--grpc-addr", "0.0.0.0:0", "--http-addr", "", "--admin-addr", "", "--key-file", keyFile)
	open.waitLog(t, "the open-listener warning", func(m map[string]any) bool {
		s, _ := m["message"].(string)
		return m["level"] == "warn" && strings.HasPrefix(s, warning) && strings.Contains(s, "--tls-client-ca-file")
	})
	open.waitLog(t, "ready", msg("ready"))
	if n := strings.Count(open.logs.String(), warning); n != 1 {
		t.Errorf("the warning was logged %d times; want once", n)
	}
	loop := startServer(t, "--grpc-addr", "127.0.0.1:0", "--http-addr", "", "--admin-addr", "", "--key-file", keyFile)
	loop.waitLog(t, "ready", msg("ready"))
	if strings.Contains(loop.logs.String(), warning) {
		t.Errorf("a loopback gRPC listener was warned about:\n%s", loop.logs.String())
	}
}

// TestListenAddrs: the rule of one address, and of several.
func TestListenAddrs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" for none
	}{
		{[]string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "unix:/tmp/a.sock"}, ""},
		{[]string{"--grpc-addr", "bogus"}, `--grpc-addr (or EXTAUTHZ_GRPC_ADDR): want host:port (e.g. :9191 or 127.0.0.1:9191; port 0 picks a free one) or unix:PATH, got "bogus"`},
		{[]string{"--admin-addr", ":99999"}, `--admin-addr (or EXTAUTHZ_ADMIN_ADDR): the port must be a number from 0 to 65535, got ":99999"`},
		{[]string{"--http-addr", "unix:"}, "--http-addr (or EXTAUTHZ_HTTP_ADDR): unix: needs a socket path"},
		{[]string{"--grpc-addr", ""}, "--grpc-addr (or EXTAUTHZ_GRPC_ADDR): must not be empty"},
		{[]string{"--grpc-addr", ":9191", "--admin-addr", "127.0.0.1:9191"}, `--admin-addr "127.0.0.1:9191" and --grpc-addr ":9191" are the same listening address`},
		{[]string{"--grpc-addr", "unix:/s", "--http-addr", "unix:/s"}, "are the same listening address"},
		{[]string{"--grpc-addr", "127.0.0.1:9191", "--admin-addr", "127.0.0.2:9191"}, ""},
		{[]string{"--grpc-addr", ":0", "--admin-addr", ":0"}, ""},
	} {
		_, err := parseConfig(tc.args...)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: %v; want %q", tc.args, err, tc.want)
		}
	}
}
