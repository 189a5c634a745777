package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/envoyproc"
	"github.com/extauthz/extauthz/internal/testutil/testpki"
	"github.com/extauthz/extauthz/internal/testutil/testprog"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
)

// The proof of issue 24: the unmodified provider SDKs and git, holding only
// a profile capability, through a real Envoy running the shipped
// deploy/envoy/envoy-profiles.yaml with the shipped profiles/providers.yaml,
// to HTTPS stand-ins of the providers (providers_upstreams_test.go).

// The real keys the stand-ins take; a sandbox never sees them.
const (
	openaiKey    = "sk-openai-REAL-KEY-5d1c"
	anthropicKey = "sk-ant-REAL-KEY-82fe"
	geminiKey    = "gemini-REAL-KEY-0b7a"
	githubToken  = "ghs_REAL-TOKEN-c3e9"
)

// The two sandboxes: one Envoy each, as envoy-profiles.yaml says
// (outbound_container_id per listener), and the GitHub owner and repository
// the first one's capability binds.
const (
	sandbox1  = "sandbox-1"
	sandbox2  = "sandbox-2"
	ghOwner   = "acme"
	ghRepo    = "widgets.git"
	guideHost = "http://envoy.egress:10000" // the proxy the guides name
)

// providerHosts are the upstream hosts of envoy-profiles.yaml, by cluster.
var providerHosts = map[string]string{
	"openai":     "api.openai.com",
	"anthropic":  "api.anthropic.com",
	"gemini":     "generativelanguage.googleapis.com",
	"github_git": "github.com",
	"github_api": "api.github.com",
}

// providerStack is extauthz with the shipped profiles, a stand-in per
// provider host, and one Envoy per sandbox on the shipped profile config
// with only its addresses, the CA bundle and the container id changed.
type providerStack struct {
	bin       string
	ext       *extauthzProc
	codec     *capability.Codec
	keyFile   string // the key ring extauthz and issue read
	profiles  string // the repository's profiles/ directory
	tokenFile string
	upstreams map[string]*tlsUpstream // by cluster
	proxies   map[string]string       // sandbox → Envoy listener, host:port
	bareRepo  string                  // acme/widgets.git on the stand-in
	otherRepo string                  // other/widgets.git: another owner's
	sdkPython string                  // the Python with the pinned SDKs
}

func newProviderStack(t *testing.T) *providerStack {
	t.Helper()
	envoyBin := envoyproc.Require(t)
	testprog.Require(t, "git", "/usr/bin/git")
	s := &providerStack{sdkPython: requireSDKPython(t), bin: extauthzBin(t), upstreams: map[string]*tlsUpstream{}, proxies: map[string]string{}}
	s.keyFile, s.codec = newKey(t)
	s.tokenFile = testsupport.SecretFile(t, "api-token", "e2e-admin-token-7f3a9c21d04b\n")
	var err error
	if s.profiles, err = filepath.Abs(filepath.Join("..", "profiles")); err != nil {
		t.Fatal(err)
	}
	s.ext = startServe(t, s.bin, s.keyFile, true,
		"--profiles-file", filepath.Join(s.profiles, "providers.yaml"), "--api-token-file", s.tokenFile,
		"--revocation-file", filepath.Join(t.TempDir(), "revocations"))

	ca := testpki.NewCA(t, "providers")
	for cluster, host := range providerHosts {
		s.upstreams[cluster] = newTLSUpstream(t, host, ca.Issue(testpki.Spec{CommonName: host, DNSNames: []string{host}}).TLS)
	}
	serveOpenAI(s.upstreams["openai"], openaiKey)
	serveAnthropic(s.upstreams["anthropic"], anthropicKey)
	s.bareRepo = serveGit(t, s.upstreams["github_git"], ghOwner, ghRepo, githubToken)
	s.otherRepo = serveGit(t, s.upstreams["github_git"], "other", ghRepo, githubToken)

	for _, sandbox := range []string{sandbox1, sandbox2} {
		cfg := shippedEnvoyConfig(t, "envoy-profiles.yaml")
		mustOK(t, cfg.SetCluster("extauthz", "127.0.0.1", addrPort(t, s.ext.grpc)))
		for cluster, u := range s.upstreams {
			mustOK(t, cfg.SetCluster(cluster, "127.0.0.1", u.port()))
		}
		if n := cfg.ReplaceString(systemCABundle, ca.File); n != len(providerHosts) {
			t.Fatalf("envoy-profiles.yaml: %d clusters trust %s; want the %d providers'", n, systemCABundle, len(providerHosts))
		}
		if n := cfg.ReplaceString(shippedID, sandbox); n != len(providerHosts) {
			t.Fatalf("envoy-profiles.yaml: %d routes name %s; want the %d providers'", n, shippedID, len(providerHosts))
		}
		e, err := envoyproc.Start(envoyBin, cfg, envoyproc.Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Stop)
		if s.proxies[sandbox], err = e.ListenerAddr(envoyListener); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// addrPort is the port of host:port.
func addrPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	port, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		t.Fatalf("address %q: %v %v", addr, err, err2)
	}
	return port
}

// issue runs the "## Issuing" command of docs/providers/<guide> as it is,
// with the built extauthz on PATH, the stack's key file and the
// repository's profiles/, sandbox for the guide's sandbox-7, and secret in
// the file the guide reads it from; it returns the capability printed.
func (s *providerStack) issue(t *testing.T, guide, sandbox, secret string) string {
	t.Helper()
	block := guideBlock(t, guide, "## Issuing", "sh")
	files := secretFile.FindAllStringSubmatch(block, -1)
	if len(files) != 1 {
		t.Fatalf("docs/providers/%s: the issue command reads %d secrets from /run/secrets; want one", guide, len(files))
	}
	secrets := t.TempDir()
	if err := os.WriteFile(filepath.Join(secrets, files[0][1]), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for old, repl := range map[string]string{
		"@/run/secrets/":            "@" + secrets + "/",
		"--profiles-file profiles/": "--profiles-file " + s.profiles,
		"--key-file keys":           "--key-file " + s.keyFile,
		"sandbox-7":                 sandbox,
	} {
		if !strings.Contains(block, old) {
			t.Fatalf("docs/providers/%s: the issue command has no %q", guide, old)
		}
		pairs = append(pairs, old, repl)
	}
	cmd := exec.Command("bash", "-e", "-c", strings.NewReplacer(pairs...).Replace(block))
	cmd.Dir = t.TempDir()
	cmd.Env = append(cleanEnv(), "PATH="+filepath.Dir(s.bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.Output()
	tok := strings.TrimSpace(string(out))
	if err != nil || capability.KindOf(tok) != capability.KindProfile {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("docs/providers/%s's issue command: %v, printed %d bytes\n%s", guide, err, len(out), stderr)
	}
	return tok
}

var secretFile = regexp.MustCompile(`@/run/secrets/([A-Za-z0-9._-]+)`)

// sealProfileWith seals a profile capability with codec c, for what the
// guides' issue command cannot make: one whose lifetime is already over.
func sealProfileWith(t *testing.T, c *capability.Codec, profile, sandbox string, vars, creds map[string]string, ttl time.Duration) string {
	t.Helper()
	if vars == nil {
		vars = map[string]string{}
	}
	tok, err := c.SealProfile(capability.ProfileSubject{
		Profile: profile, OutboundContainerID: sandbox,
		Subject: map[string]string{"userId": "u-42", "sessionId": "s-" + sandbox},
		Vars:    vars, Credentials: creds,
	}, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// assertNoCapability: no request any stand-in received carried a profile
// capability, in a header or in its target.
func (s *providerStack) assertNoCapability(t *testing.T) {
	t.Helper()
	for cluster, u := range s.upstreams {
		u.mu.Lock()
		for _, r := range u.reqs {
			if strings.Contains(r.RequestURI, capability.ProfilePrefix) {
				t.Errorf("%s received a capability in %s", cluster, r.RequestURI)
			}
			for name, vs := range r.Header {
				for _, v := range vs {
					if strings.Contains(v, capability.ProfilePrefix) {
						t.Errorf("%s received a capability in %s (%s %s)", cluster, name, r.Method, r.RequestURI)
					}
				}
			}
		}
		u.mu.Unlock()
	}
}

// sdkResult is one line of testdata/sdk_client.py.
type sdkResult struct {
	Text    string `json:"text"`
	Status  int    `json:"status"`
	Error   string `json:"error"`
	Message string `json:"message"`
	Body    any    `json:"body"`     // the error's body, as the SDK keeps it
	Raw     string `json:"response"` // the response body as it arrived
}

// reason is the deny reason of the response ({"error": reason}).
func (r sdkResult) reason() string {
	var b struct{ Error string }
	_ = json.Unmarshal([]byte(r.Raw), &b)
	return b.Error
}

// requireSDKPython is the Python with the pinned SDKs (bash .ci/install
// installs it, in the user's cache, and .ci/run sets EXTAUTHZ_SDK_PYTHON); a
// test without it skips as a missing program, or fails in CI.
func requireSDKPython(t *testing.T) string {
	t.Helper()
	p := os.Getenv("EXTAUTHZ_SDK_PYTHON")
	if p == "" {
		cache, _ := os.UserCacheDir()
		p = filepath.Join(cache, "extauthz", "sdk", "bin", "python")
	}
	err := exec.Command(p, "-c", "import openai, anthropic").Run()
	if err != nil {
		testprog.Missing(t, "the Python SDKs", "no Python with openai and anthropic at "+p+" (set EXTAUTHZ_SDK_PYTHON): "+err.Error())
	}
	return p
}

// guideBlock returns the first code block of language lang under heading
// in docs/providers/<guide>.
func guideBlock(t *testing.T, guide, heading, lang string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "docs", "providers", guide))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n"+heading+"\n")
	section, _, _ = strings.Cut(section, "\n## ")
	_, block, ok2 := strings.Cut(section, "```"+lang+"\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatalf("docs/providers/%s: no %s block under %q", guide, lang, heading)
	}
	return block
}

// guideEnv reads the sandbox's environment from a provider guide (the sh
// block under "## The sandbox's environment"), with the capability and the
// sandbox's proxy put in: the SDKs run with exactly what the guide says.
func guideEnv(t *testing.T, guide, capabilityValue, proxy string) []string {
	t.Helper()
	block := guideBlock(t, guide, "## The sandbox's environment", "sh")
	var env []string
	gotCap, gotProxy := false, false
	for _, line := range strings.Split(block, "\n") {
		m := envLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v := m[2]
		if v == "eac1.…" {
			v, gotCap = capabilityValue, true
		}
		if v == guideHost {
			v, gotProxy = "http://"+proxy, true
		}
		env = append(env, m[1]+"="+v)
	}
	if !gotCap || !gotProxy {
		t.Fatalf("docs/providers/%s: the environment %q names no capability (eac1.…) or no proxy (%s)", guide, env, guideHost)
	}
	return env
}

var envLine = regexp.MustCompile(`^([A-Z][A-Z0-9_]*)=(\S+)`)

// runSDK runs testdata/sdk_client.py (kind openai or anthropic, mode chat or
// stream) with env alone, as a sandbox would.
func (s *providerStack) runSDK(t *testing.T, env []string, kind, mode string) sdkResult {
	t.Helper()
	cmd := exec.Command(s.sdkPython, filepath.Join("testdata", "sdk_client.py"), kind, mode)
	cmd.Env = append([]string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}, env...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("sdk_client.py %s %s: %v\n%s%s", kind, mode, err, out, stderr)
	}
	var r sdkResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("sdk_client.py %s %s: %v: %s", kind, mode, err, out)
	}
	t.Logf("%s %s: %+v", kind, mode, r)
	return r
}

// through sends one request through a sandbox's Envoy as an HTTP proxy.
func (s *providerStack) through(t *testing.T, sandbox, method, rawURL string, header map[string]string) (*http.Response, string) {
	t.Helper()
	proxy, _ := url.Parse("http://" + s.proxies[sandbox])
	return doWith(t, &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}, Timeout: 15 * time.Second}, method, rawURL, header, "")
}
