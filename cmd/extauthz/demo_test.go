package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testutil/envoyproc"
	"github.com/extauthz/extauthz/internal/testutil/testprog"
)

// TestDemo runs `extauthz demo` as a user would (a real Envoy, found as the
// other end-to-end tests find it), pastes the three requests it prints
// into a shell, in order, and checks what each answers: allowed with the
// real token upstream, denied, and denied as revoked. Then Ctrl-C (SIGINT)
// stops it, and no Envoy and none of its files are left.
func TestDemo(t *testing.T) {
	envoy := envoyproc.Require(t)
	testprog.Require(t, "curl")
	cmd := exec.Command(buildBinary(t), "demo", "--proxy-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "ENVOY_BIN="+envoy)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	printed, done := make(chan string, 1), make(chan error, 1)
	go func() {
		// Wait closes stdout: read it all first.
		<-readAll(stdout, func(printout string) { printed <- printout })
		done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })

	var printout string
	select {
	case printout = <-printed:
	case err := <-done:
		t.Fatalf("demo exited before printing its requests: %v\n%s", err, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("demo printed no requests within 60s:\n%s", stderr.String())
	}
	dir := regexp.MustCompile(`removes (/\S+)\.\n`).FindStringSubmatch(printout)
	if dir == nil {
		t.Fatalf("the printout names no directory:\n%s", printout)
	}
	envoyPID := childPID(t, cmd.Process.Pid, dir[1])

	requests := regexp.MustCompile(`(?m)^   (curl .*)$`).FindAllStringSubmatch(printout, -1)
	if len(requests) != 3 {
		t.Fatalf("the printout has %d commands; want 3 (allowed, denied, revoked):\n%s", len(requests), printout)
	}
	paste := func(line string) (before string, resp *http.Response, body string) {
		t.Helper()
		out, err := exec.Command("bash", "-c", line).Output()
		if err != nil {
			t.Fatalf("pasting %s: %v", line, err)
		}
		i := bytes.Index(out, []byte("HTTP/1.1 "))
		if i < 0 {
			t.Fatalf("pasting %s printed no HTTP response:\n%s", line, out)
		}
		resp, err = http.ReadResponse(bufio.NewReader(bytes.NewReader(out[i:])), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		return string(out[:i]), resp, string(b)
	}

	_, resp, body := paste(requests[0][1])
	if resp.StatusCode != 200 || !strings.Contains(body, `"Bearer demo-user-token"`) || strings.Contains(body, "x-kilo-capability") || strings.Contains(body, "kka1.") {
		t.Errorf("1. allowed = %d %s; want 200, the user token upstream and no capability", resp.StatusCode, body)
	}
	_, resp, body = paste(requests[1][1])
	if resp.StatusCode != 403 || !strings.Contains(body, "upstream_not_allowed") {
		t.Errorf("2. denied = %d %s; want 403 upstream_not_allowed", resp.StatusCode, body)
	}
	revocation, resp, body := paste(requests[2][1])
	if !strings.Contains(revocation, `"kind":"capability"`) || resp.StatusCode != 401 || !strings.Contains(body, "revoked_capability") {
		t.Errorf("3. revoked = %q, then %d %s; want the revocation, then 401 revoked_capability", revocation, resp.StatusCode, body)
	}

	// Ctrl-C: everything the demo started stops, and its files go.
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo after SIGINT: %v; want exit status 0\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo still running 30s after SIGINT")
	}
	if stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(envoyPID), "stat")); err == nil && !bytes.Contains(stat, []byte(") Z ")) {
		t.Errorf("Envoy (pid %d) outlived the demo: %s", envoyPID, stat)
	}
	if pids := processesNaming(dir[1]); len(pids) > 0 {
		t.Errorf("processes still running on the demo's files: %v", pids)
	}
	if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
		t.Errorf("the demo left %s", dir[1])
	}
}

// readAll reads r to its end, calling onPrintout with what was read once a
// line says Ctrl-C stops the demo (the printout's last line). The channel
// it returns is closed at the end of r.
func readAll(r io.Reader, onPrintout func(string)) <-chan struct{} {
	end := make(chan struct{})
	go func() {
		defer close(end)
		var b strings.Builder
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		sent := false
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if !sent && strings.HasPrefix(sc.Text(), "Ctrl-C stops") {
				onPrintout(b.String())
				sent = true
			}
		}
	}()
	return end
}

// childPID is the pid of parent's child whose command line names dir
// (Envoy, on its config in the demo's directory).
func childPID(t *testing.T, parent int, dir string) int {
	t.Helper()
	for _, pid := range processesNaming(dir) {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces, so after the last ')'.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(parent) {
			return pid
		}
	}
	t.Fatalf("no child of the demo (pid %d) runs on %s", parent, dir)
	return 0
}

// processesNaming lists the processes whose command line mentions s.
func processesNaming(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && bytes.Contains(cmdline, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestDemoProxyAddr: the demo's Envoy listens on loopback only.
func TestDemoProxyAddr(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:10000": true, "127.0.0.1:0": true, "[::1]:10000": true, "localhost:10000": true,
		"0.0.0.0:10000": false, ":10000": false, "192.0.2.1:10000": false, "127.0.0.1": false, "127.0.0.1:99999": false,
	} {
		if err := checkLoopbackAddr(addr); (err == nil) != ok {
			t.Errorf("checkLoopbackAddr(%q) = %v; want ok %v", addr, err, ok)
		}
	}
}

// TestDemoProxyAddrInUse: a busy --proxy-addr is refused before anything
// starts, with the way out.
func TestDemoProxyAddrInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"demo", "--proxy-addr", ln.Addr().String()}, nil, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "--proxy-addr 127.0.0.1:0 picks a free port") || out.Len() != 0 {
		t.Errorf("demo on a busy port = %d, %q %q; want 1 and the way out", code, out.String(), errb.String())
	}
}
