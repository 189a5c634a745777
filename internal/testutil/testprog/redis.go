package testprog

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Redis is a redis-server a test started on a free loopback port, with its
// data (an append-only file fsynced on every write, so that it survives
// SIGKILL) in a temporary directory.
type Redis struct {
	bin, dir string
	Port     int
	cmd      *exec.Cmd
	tls      []string // the TLS arguments; none: plain TCP
}

// StartRedis starts redis-server (skipping the test when it is missing,
// failing it in CI) and stops it when the test ends.
func StartRedis(t testing.TB) *Redis { return startRedis(t, nil) }

// StartRedisTLS is StartRedis serving TLS only (rediss://), with the
// server certificate and key in PEM files; clients need no certificate.
func StartRedisTLS(t testing.TB, certFile, keyFile string) *Redis {
	return startRedis(t, []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-auth-clients", "no"})
}

func startRedis(t testing.TB, tls []string) *Redis {
	t.Helper()
	r := &Redis{bin: Require(t, "redis-server", "/usr/bin/redis-server"), dir: t.TempDir(), tls: tls}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.Port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r.Start(t)
	t.Cleanup(r.Kill)
	return r
}

// URL is the redis:// (or, with TLS, rediss://) URL of the server.
func (r *Redis) URL() string {
	if r.tls != nil {
		return "rediss://" + r.addr()
	}
	return "redis://" + r.addr()
}

func (r *Redis) addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// Start runs redis-server on r's port and data directory and waits until it
// accepts connections.
func (r *Redis) Start(t testing.TB) {
	t.Helper()
	port := []string{"--port", strconv.Itoa(r.Port)}
	if r.tls != nil {
		port = append([]string{"--port", "0", "--tls-port", strconv.Itoa(r.Port)}, r.tls...)
	}
	args := append([]string{"--bind", "127.0.0.1", "--dir", r.dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always",
		"--daemonize", "no", "--logfile", filepath.Join(r.dir, "log")}, port...)
	r.cmd = exec.Command(r.bin, args...)
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go r.cmd.Wait()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", r.addr()); err == nil {
			c.Close()
			return
		}
	}
	log, _ := os.ReadFile(filepath.Join(r.dir, "log"))
	t.Fatalf("redis-server did not start on port %d:\n%s", r.Port, log)
}

// Kill stops redis-server with SIGKILL and waits until its port is free.
func (r *Redis) Kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Kill()
	for range 200 {
		c, err := net.Dial("tcp", r.addr())
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
}
