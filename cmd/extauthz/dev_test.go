package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
)

// TestDevQuickStart runs `serve --dev` (the README's first command, on free
// ports) and performs the two requests it prints: the grpcurl command's
// CheckRequest over gRPC, and the curl command, verbatim with curl when it is
// installed. Both must allow with the sample capability's provider token.
// It also says that revocations are kept in memory.
func TestDevQuickStart(t *testing.T) {
	cmd := exec.Command(buildBinary(t), "serve", "--dev",
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "")
	cmd.Env = append(os.Environ(), "EXTAUTHZ_KEYS=", "EXTAUTHZ_KEY_FILE=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	var grpcurlLine, curlLine, revocationLine string
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(20 * time.Second)
	for grpcurlLine == "" || curlLine == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("serve --dev exited before printing its sample requests")
			}
			line = strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(line, "go run github.com/fullstorydev/grpcurl/"):
				grpcurlLine = line
			case strings.HasPrefix(line, "curl "):
				curlLine = line
			case strings.HasPrefix(line, "Revocations are kept in memory"):
				revocationLine = line
			}
		case <-timeout:
			t.Fatal("serve --dev printed no sample requests within 20s")
		}
	}

	// --dev implies --revocation-store=memory, and says so.
	if !strings.Contains(revocationLine, "implied by --dev") {
		t.Errorf("serve --dev printed %q before its sample requests; want it to say revocations are in memory, implied by --dev", revocationLine)
	}

	t.Run("grpcurl", func(t *testing.T) {
		m := regexp.MustCompile(`-plaintext -d '([^']+)' (\S+) envoy\.service\.auth\.v3\.Authorization/Check$`).FindStringSubmatch(grpcurlLine)
		if m == nil {
			t.Fatalf("unexpected grpcurl line: %.120s…", grpcurlLine)
		}
		req := &authv3.CheckRequest{}
		if err := protojson.Unmarshal([]byte(m[1]), req); err != nil {
			t.Fatalf("printed request is not a CheckRequest: %v", err)
		}
		conn, err := grpc.NewClient(m[2], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		h := resp.GetOkResponse().GetHeaders()
		if len(h) != 1 || h[0].GetHeader().GetValue() != "Bearer dev-provider-token" {
			t.Fatalf("Check = %v; want an allow with the provider token", resp)
		}
	})

	t.Run("curl", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err == nil {
			out, err := exec.Command("bash", "-c", curlLine).Output()
			if err != nil {
				t.Fatalf("the printed curl command failed: %v", err)
			}
			if !strings.Contains(string(out), "200 OK") || !strings.Contains(string(out), "Authorization: Bearer dev-provider-token") {
				t.Fatalf("curl output = %q; want 200 with the provider token", out)
			}
			return
		}
		// Without curl, send the same request: its headers and URL.
		url := regexp.MustCompile(`(http://\S+/v1/authz/forward)$`).FindStringSubmatch(curlLine)
		if url == nil {
			t.Fatalf("unexpected curl line: %.120s…", curlLine)
		}
		req, _ := http.NewRequest("GET", url[1], nil)
		for _, m := range regexp.MustCompile(`-H '([^:]+): ([^']*)'`).FindAllStringSubmatch(curlLine, -1) {
			req.Header.Set(m[1], m[2])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Authorization") != "Bearer dev-provider-token" {
			t.Fatalf("forward = %d %q; want 200 with the provider token", resp.StatusCode, resp.Header.Get("Authorization"))
		}
	})
}
