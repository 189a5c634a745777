package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/testutil/testprog"
)

// Stand-ins for the providers behind the profile tests: each is a
// tlsUpstream (it records every request) that answers as the provider's API
// does, but only with the real key in the provider's header; a capability,
// or no key, gets the provider's 401.

// providerDeny answers 401 in the provider's error shape.
func providerDeny(w http.ResponseWriter, what string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprintf(w, `{"type":"error","error":{"type":"authentication_error","message":"%s"}}`, what)
}

// wantsStream reads the "stream" member of a JSON request body.
func wantsStream(r *http.Request) bool {
	var body struct{ Stream bool }
	_ = json.NewDecoder(r.Body).Decode(&body)
	return body.Stream
}

// serveOpenAI answers chat completions, whole or streamed, when the request
// carries authorization: Bearer <key>.
func serveOpenAI(u *tlsUpstream, key string) {
	u.handle("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+key {
			providerDeny(w, "bad key")
			return
		}
		if !wantsStream(r) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"c1","object":"chat.completion","created":1,"model":"gpt-test","choices":[{"index":0,"message":{"role":"assistant","content":"hello from openai"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":3,"total_tokens":4}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, part := range []string{"hello ", "streamed ", "openai"} {
			fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-test\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", part)
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, "data: [DONE]\n\n")
	})
}

// serveAnthropic answers messages, whole or streamed, when the request
// carries x-api-key: <key> and no authorization header.
func serveAnthropic(u *tlsUpstream, key string) {
	u.handle("/v1/messages", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != key || r.Header.Get("Authorization") != "" {
			providerDeny(w, "bad key")
			return
		}
		msg := `{"id":"m1","type":"message","role":"assistant","model":"claude-test","content":[%s],"stop_reason":%s,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":3}}`
		if !wantsStream(r) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, msg, `{"type":"text","text":"hello from anthropic"}`, `"end_turn"`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		event := func(name, data string) {
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
			w.(http.Flusher).Flush()
		}
		event("message_start", `{"type":"message_start","message":`+fmt.Sprintf(msg, "", "null")+`}`)
		event("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
		for _, part := range []string{"hello ", "streamed ", "anthropic"} {
			event("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":%q}}`, part))
		}
		event("content_block_stop", `{"type":"content_block_stop","index":0}`)
		event("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":3}}`)
		event("message_stop", `{"type":"message_stop"}`)
	})
}

// serveGit serves owner/repo (a bare repository it creates, with one commit
// on main, pushes allowed) through git http-backend, GitHub's way: only with
// authorization: Basic base64(x-access-token:<token>). It returns the bare
// repository's path.
func serveGit(t *testing.T, u *tlsUpstream, owner, repo, token string) string {
	t.Helper()
	git := testprog.Require(t, "git", "/usr/bin/git")
	backend := "/usr/lib/git-core/git-http-backend"
	if out, err := exec.Command(git, "--exec-path").Output(); err == nil {
		backend = filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	}
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("git http-backend: %v", err)
	}
	root := t.TempDir()
	bare := filepath.Join(root, owner, repo)
	work := t.TempDir()
	for _, args := range [][]string{
		{"init", "-q", "--bare", "-b", "main", bare},
		{"-C", bare, "config", "http.receivepack", "true"},
		{"init", "-q", "-b", "main", work},
		{"-C", work, "-c", "user.email=e2e@example.com", "-c", "user.name=e2e", "commit", "-q", "--allow-empty", "-m", "first"},
		{"-C", work, "push", "-q", bare, "main"},
	} {
		if out, err := exec.Command(git, args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+token))
	h := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	serve := func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != want {
			w.Header().Set("WWW-Authenticate", `Basic realm="GitHub"`)
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}
	for _, p := range []string{"info/refs", "git-upload-pack", "git-receive-pack"} {
		u.handle("/"+owner+"/"+repo+"/"+p, serve)
	}
	return bare
}
