package e2e

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/capability"
)

// TestProvidersThroughEnvoy is issue 24's proof: the unmodified openai and
// anthropic Python SDKs and git, each holding only a profile capability
// issued and configured as docs/providers/ says, through a real Envoy with
// the shipped envoy-profiles.yaml and profiles/providers.yaml, reach HTTPS
// stand-ins of the providers with the real key, and never with the
// capability; another owner's repository, another sandbox, an expired and a
// revoked capability are denied. The subtests run in order on one stack:
// the revocations come last (the subject one revokes every capability
// issued for the guides' user).
func TestProvidersThroughEnvoy(t *testing.T) {
	s := newProviderStack(t)
	t.Run("openai chat and streamed chat", s.testOpenAI)
	t.Run("anthropic messages and streamed messages", s.testAnthropic)
	t.Run("gemini and the GitHub REST API", s.testHeaderClients)
	t.Run("git clone and push", s.testGit)
	t.Run("another sandbox", s.testOtherSandbox)
	t.Run("expired", s.testExpired)
	t.Run("revoked within a second", s.testRevoked)
	s.assertNoCapability(t)
}

func (s *providerStack) testOpenAI(t *testing.T) {
	up := s.upstreams["openai"]
	env := guideEnv(t, "openai.md", s.issue(t, "openai.md", sandbox1, openaiKey), s.proxies[sandbox1])
	for mode, want := range map[string]string{"chat": "hello from openai", "stream": "hello streamed openai"} {
		if r := s.runSDK(t, env, "openai", mode); r.Text != want {
			t.Errorf("openai %s = %+v; want %q", mode, r, want)
		}
		if got := up.last().Header.Get("Authorization"); got != "Bearer "+openaiKey {
			t.Errorf("openai %s: the stand-in got authorization %q; want the real key", mode, got)
		}
	}
}

func (s *providerStack) testAnthropic(t *testing.T) {
	up := s.upstreams["anthropic"]
	env := guideEnv(t, "anthropic.md", s.issue(t, "anthropic.md", sandbox1, anthropicKey), s.proxies[sandbox1])
	for mode, want := range map[string]string{"chat": "hello from anthropic", "stream": "hello streamed anthropic"} {
		if r := s.runSDK(t, env, "anthropic", mode); r.Text != want {
			t.Errorf("anthropic %s = %+v; want %q", mode, r, want)
		}
		h := up.last().Header
		if h.Get("X-Api-Key") != anthropicKey || h.Get("Authorization") != "" {
			t.Errorf("anthropic %s: the stand-in got x-api-key %q, authorization %q; want the real key in x-api-key alone", mode, h.Get("X-Api-Key"), h.Get("Authorization"))
		}
	}
}

// testHeaderClients: the other two shipped origins, with the headers their
// clients send (google-genai's x-goog-api-key; a REST client's bearer).
func (s *providerStack) testHeaderClients(t *testing.T) {
	gem := s.issue(t, "gemini.md", sandbox1, geminiKey)
	resp, body := s.through(t, sandbox1, http.MethodPost, "http://generativelanguage.googleapis.com/v1beta/models/gemini-test:generateContent",
		map[string]string{"x-goog-api-key": gem})
	if got := s.upstreams["gemini"].last().Header.Get("X-Goog-Api-Key"); resp.StatusCode != http.StatusOK || got != geminiKey {
		t.Errorf("gemini: %d %s, the stand-in got x-goog-api-key %q; want 200 with the real key", resp.StatusCode, body, got)
	}

	api := s.upstreams["github_api"]
	gh := s.issue(t, "github.md", sandbox1, githubToken)
	resp, body = s.through(t, sandbox1, http.MethodGet, "http://api.github.com/repos/acme/widgets/pulls", map[string]string{"Authorization": "Bearer " + gh})
	if got := api.last().Header.Get("Authorization"); resp.StatusCode != http.StatusOK || got != "Bearer "+githubToken {
		t.Errorf("GitHub REST: %d %s, the stand-in got authorization %q; want 200 with the real token", resp.StatusCode, body, got)
	}
	before := api.count()
	resp, body = s.through(t, sandbox1, http.MethodGet, "http://api.github.com/repos/other/widgets/pulls", map[string]string{"Authorization": "Bearer " + gh})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "upstream_not_allowed") || api.count() != before {
		t.Errorf("GitHub REST, another owner: %d %s, %d requests upstream; want 403 upstream_not_allowed and none", resp.StatusCode, body, api.count()-before)
	}
}

// testOtherSandbox: the first sandbox's capabilities, copied into the
// second, are refused there before any upstream sees them.
func (s *providerStack) testOtherSandbox(t *testing.T) {
	before := s.upstreams["openai"].count() + s.upstreams["anthropic"].count()
	for _, sdk := range sdks {
		env := guideEnv(t, sdk.guide, s.issue(t, sdk.guide, sandbox1, sdk.key), s.proxies[sandbox2])
		r := s.runSDK(t, env, sdk.profile, "chat")
		if r.Status != http.StatusForbidden || r.Error != "PermissionDeniedError" || r.reason() != "container_mismatch" {
			t.Errorf("%s: sandbox-1's capability in sandbox-2: %+v; want PermissionDeniedError 403 container_mismatch", sdk.profile, r)
		}
	}
	if n := s.upstreams["openai"].count() + s.upstreams["anthropic"].count() - before; n != 0 {
		t.Errorf("the stand-ins got %d requests; want none", n)
	}
}

// sdks are the two SDKs' profiles, guides and real keys.
var sdks = []struct{ profile, guide, key string }{{"openai", "openai.md", openaiKey}, {"anthropic", "anthropic.md", anthropicKey}}

// testExpired: a capability whose lifetime is over, sealed with the key and
// a clock two hours back, in both SDKs.
func (s *providerStack) testExpired(t *testing.T) {
	old := capability.NewCodec(s.codec.KeyRing(), capability.WithClock(func() time.Time { return time.Now().Add(-2 * time.Hour) }))
	before := s.upstreams["openai"].count() + s.upstreams["anthropic"].count()
	for _, sdk := range sdks {
		tok := sealProfileWith(t, old, sdk.profile, sandbox1, nil, map[string]string{"api-key": sdk.key}, time.Hour)
		r := s.runSDK(t, guideEnv(t, sdk.guide, tok, s.proxies[sandbox1]), sdk.profile, "chat")
		if r.Status != http.StatusUnauthorized || r.Error != "AuthenticationError" || r.reason() != "expired_capability" {
			t.Errorf("%s, expired capability: %+v; want AuthenticationError 401 expired_capability", sdk.profile, r)
		}
	}
	if n := s.upstreams["openai"].count() + s.upstreams["anthropic"].count() - before; n != 0 {
		t.Errorf("the stand-ins got %d requests; want none", n)
	}
}

// testRevoked: capabilities that work, revoked through the server's API
// with `extauthz revoke` as the guides say: one capability (read from
// stdin) is denied by the next request, within a second; then every
// capability of a subject id, which the anthropic SDK sees on a stream.
func (s *providerStack) testRevoked(t *testing.T) {
	tok := s.issue(t, "openai.md", sandbox1, openaiKey)
	env := guideEnv(t, "openai.md", tok, s.proxies[sandbox1])
	antEnv := guideEnv(t, "anthropic.md", s.issue(t, "anthropic.md", sandbox1, anthropicKey), s.proxies[sandbox1])
	if r := s.runSDK(t, env, "openai", "chat"); r.Text != "hello from openai" {
		t.Fatalf("before the revocation: %+v; want an answer", r)
	}
	chat := func() int {
		resp, _ := s.through(t, sandbox1, http.MethodPost, "http://api.openai.com/v1/chat/completions", map[string]string{"Authorization": "Bearer " + tok})
		return resp.StatusCode
	}
	s.revoke(t, tok, "--capability-stdin")
	acked := time.Now()
	for chat() != http.StatusUnauthorized {
		if time.Since(acked) > time.Second {
			t.Fatal("still allowed a second after the revocation was acknowledged")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("denied %v after the revocation was acknowledged", time.Since(acked))
	if r := s.runSDK(t, env, "openai", "chat"); r.Status != http.StatusUnauthorized || r.Error != "AuthenticationError" || r.reason() != "revoked_capability" {
		t.Errorf("openai, revoked capability: %+v; want AuthenticationError 401 revoked_capability", r)
	}
	// Every capability issued for the user until now; a stream is refused
	// before it starts.
	s.revoke(t, "", "--subject", "userId=u-42")
	if r := s.runSDK(t, antEnv, "anthropic", "stream"); r.Status != http.StatusUnauthorized || r.Error != "AuthenticationError" || r.reason() != "revoked_capability" {
		t.Errorf("anthropic, revoked subject: %+v; want AuthenticationError 401 revoked_capability", r)
	}
}

// revoke runs `extauthz revoke` against the stack's API with args, stdin
// on its standard input.
func (s *providerStack) revoke(t *testing.T, stdin string, args ...string) {
	t.Helper()
	cmd := exec.Command(s.bin, append([]string{"revoke", "--api-url", "http://" + s.ext.http, "--api-token-file", s.tokenFile, "--reason", "e2e"}, args...)...)
	cmd.Env, cmd.Stdin = cleanEnv(), strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("extauthz revoke %q: %v\n%s", args, err, out)
	}
}
