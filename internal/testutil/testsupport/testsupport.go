// Package testsupport holds what the tests of several packages share: a
// goroutine-safe log sink, a capability subject with planted secrets,
// planted trace contexts, key and secret files, a sealed capability, the
// Check an Envoy sends, and an HTTP call. Only tests import it.
//
// It imports capability and policy to build a capability.Subject: an arrow
// from internal/testutil up to the product packages, which is why it lives
// here, where no production package can import it.
package testsupport

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/proc"
)

// Secrets planted in test subjects: no log line, metadata value, deny or
// error may ever contain one of them.
const (
	UserToken     = "SECRET-user-token-7f3a"
	ProviderToken = "SECRET-provider-token-91c2"
)

// Trace contexts the tracing tests plant in requests: a W3C parent
// (TraceParent, sampled) and a B3 one.
const (
	W3CTraceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
	W3CSpanID   = "00f067aa0ba902b7"
	B3TraceID   = "80f198ee56343ba864fe8b2a57d3eff7"
	B3SpanID    = "e457b5a2e4d86bd1"
	TraceParent = "00-" + W3CTraceID + "-" + W3CSpanID + "-01"
)

// Subject is a subject bound to container, with the planted tokens, the
// user "user-1", the cloud agent session "cas-1" and the session "sess-1".
func Subject(container string, targets capability.Targets) capability.Subject {
	return capability.Subject{
		UserID:              "user-1",
		CloudAgentSessionID: "cas-1",
		KiloSessionID:       "sess-1",
		OutboundContainerID: container,
		UserToken:           UserToken,
		ProviderToken:       ProviderToken,
		Targets:             targets,
	}
}

// LockedBuffer is a goroutine-safe io.Writer that collects log lines or a
// process's output for assertions. The zero value is ready to use.
type LockedBuffer = proc.Output

// SecretFile writes content to a new file, readable by its owner only, in
// a temporary directory, and returns its path.
func SecretFile(t testing.TB, name, content string) string {
	t.Helper()
	path := t.TempDir() + "/" + name
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// NewKey is a fresh random capability key.
func NewKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, capability.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// WriteKeys writes a key file holding keys, the first sealing, with
// ReplaceFile.
func WriteKeys(t testing.TB, path string, keys ...[]byte) {
	t.Helper()
	var b strings.Builder
	b.WriteString("# test keys; the first seals\n")
	for _, k := range keys {
		b.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	}
	ReplaceFile(t, path, b.String())
}

// ReplaceFile writes content to path by renaming a new file (mode 0600)
// over it, as a Kubernetes Secret update does: a reader sees the old file
// or the new one, never a part.
func ReplaceFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Seal seals subject with key, valid for an hour.
func Seal(t testing.TB, key []byte, subject capability.Subject) string {
	t.Helper()
	ring, err := capability.NewKeyRing(key)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := capability.NewCodec(ring).Seal(subject, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// CheckRequest is the Check an Envoy sends for container's POST to a
// provider route on http://localhost:8080, with the capability tok as its
// bearer token.
func CheckRequest(container, tok string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		ContextExtensions: map[string]string{"outbound_container_id": container},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Scheme: "http", Host: "localhost:8080", Path: "/api/openrouter/v1/chat/completions",
			Headers: map[string]string{"authorization": "Bearer " + tok},
		}},
	}}
}

// HTTPCall makes one HTTP request, with token (when set) as its bearer
// token, and returns the status and the body.
func HTTPCall(t testing.TB, method, url, token string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
