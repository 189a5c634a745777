package authz

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
	"github.com/extauthz/extauthz/policy"
	"github.com/extauthz/extauthz/profiles"
	"github.com/extauthz/extauthz/revocation"
)

// The secrets the profile tests plant; no deny, log or metadata may carry
// one, and an allow carries exactly one, where its route injects it.
const (
	profileSecret = "sk-SENTINEL-profile-secret"
	otherSecret   = "sk-SENTINEL-other-secret"
)

// profileCore is a decision core with the shipped provider profiles
// loaded, and a sealer of their capabilities.
type profileCore struct {
	core  *Authorizer
	codec *capability.Codec
	set   *revocation.Set
}

func newProfileCore(t testing.TB) profileCore { return newProfileCoreWith(t, testClock, Config{}) }

// newProfileCoreWith is newProfileCore with the codec's clock and cfg's
// metrics and logger.
func newProfileCoreWith(t testing.TB, clock func() time.Time, cfg Config) profileCore {
	t.Helper()
	codec := newCodec(t, clock, testKey)
	set := revocation.NewSet()
	cfg.Codec, cfg.Revocations = codec, set
	core, err := NewAuthorizer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := profiles.Load("../profiles/providers.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	core.SetProfiles(ps)
	return profileCore{core: core, codec: codec, set: set}
}

// seal issues a capability of profile for container ctr-1 with the
// planted secret in slot and the given variables.
func (pc profileCore) seal(t testing.TB, profile, slot string, vars map[string]string) string {
	t.Helper()
	tok, err := pc.codec.SealProfile(capability.ProfileSubject{Profile: profile, OutboundContainerID: "ctr-1",
		Subject: map[string]string{"user": "u-1"}, Vars: vars, Credentials: map[string]string{slot: profileSecret}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func basicOfCap(user, tok string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+tok))
}

// profileCheck is one Check with a profile capability through the real
// gRPC service (Register, the checkwire codec) and what it must answer.
type profileCheck struct {
	name      string
	url       string // https://host/path
	method    string // "" = POST
	container string // "" = ctr-1
	headers   map[string]string
	raw       []*corev3.HeaderValue // header_map entries, for repeated headers
	reason    Reason
	set       string // on allow: header: value
	remove    []string
	challenge string // on deny: WWW-Authenticate
}

func (c profileCheck) request() *authv3.CheckRequest {
	scheme, rest, _ := strings.Cut(c.url, "://")
	host, path, _ := strings.Cut(rest, "/")
	method := c.method
	if method == "" {
		method = "POST"
	}
	container := c.container
	if container == "" {
		container = "ctr-1"
	}
	req := checkRequestFrom(&authv3.AttributeContext_HttpRequest{Method: method, Scheme: scheme, Host: host, Path: "/" + path,
		Headers: c.headers})
	if c.raw != nil {
		req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: c.raw}
	}
	req.Attributes.ContextExtensions["outbound_container_id"] = container
	return req
}

func TestProfileCapabilityOverGRPC(t *testing.T) {
	pc := newProfileCore(t)
	openai := pc.seal(t, "openai", "api-key", nil)
	anthropic := pc.seal(t, "anthropic", "api-key", nil)
	gemini := pc.seal(t, "gemini", "api-key", nil)
	github := pc.seal(t, "github", "token", map[string]string{"owner": "acme", "repo": "widgets.git"})
	unknown := pc.seal(t, "nosuch", "api-key", nil)
	kka1 := seal(t, pc.codec, testSubject(), time.Hour)
	gitBasic := "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+profileSecret))
	cases := []profileCheck{
		{name: "openai bearer", url: "https://api.openai.com/v1/chat/completions", headers: map[string]string{"authorization": "Bearer " + openai},
			set: "authorization: Bearer " + profileSecret, remove: []string{"x-kilo-capability"}},
		{name: "anthropic bearer, injected as x-api-key", url: "https://api.anthropic.com/v1/messages", headers: map[string]string{"authorization": "Bearer " + anthropic},
			set: "x-api-key: " + profileSecret, remove: []string{"x-kilo-capability", "authorization"}},
		{name: "anthropic x-api-key", url: "https://api.anthropic.com/v1/messages", headers: map[string]string{"x-api-key": anthropic},
			set: "x-api-key: " + profileSecret, remove: []string{"x-kilo-capability", "authorization"}},
		{name: "anthropic in both places", url: "https://api.anthropic.com/v1/messages", headers: map[string]string{"x-api-key": anthropic, "authorization": "Bearer " + anthropic},
			set: "x-api-key: " + profileSecret, remove: []string{"x-kilo-capability", "authorization"}},
		{name: "gemini", url: "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent", headers: map[string]string{"x-goog-api-key": gemini},
			set: "x-goog-api-key: " + profileSecret, remove: []string{"x-kilo-capability"}},
		{name: "git fetch with Basic", url: "https://github.com/acme/widgets.git/git-upload-pack", headers: map[string]string{"authorization": basicOfCap("x-access-token", github)},
			set: "authorization: " + gitBasic, remove: []string{"x-kilo-capability"}},
		{name: "git ref advertisement, any user name", method: "GET", url: "https://github.com/acme/widgets.git/info/refs?service=git-receive-pack",
			headers: map[string]string{"authorization": basicOfCap("me", github)}, set: "authorization: " + gitBasic, remove: []string{"x-kilo-capability"}},
		{name: "github REST with bearer", method: "GET", url: "https://api.github.com/repos/acme/widgets/pulls", headers: map[string]string{"authorization": "Bearer " + github},
			set: "authorization: Bearer " + profileSecret, remove: []string{"x-kilo-capability"}},

		{name: "git with no credential: Basic challenge", method: "GET", url: "https://github.com/acme/widgets.git/info/refs?service=git-upload-pack",
			reason: ReasonMissingCapability, challenge: `Basic realm="extauthz"`},
		{name: "no credential elsewhere: bearer challenge", url: "https://api.openai.com/v1/chat/completions",
			reason: ReasonMissingCapability, challenge: `Bearer realm="extauthz"`},
		{name: "another owner", url: "https://github.com/evil/widgets.git/git-upload-pack", headers: map[string]string{"authorization": basicOfCap("x", github)},
			reason: ReasonUpstreamNotAllowed},
		{name: "another repository of the owner", url: "https://github.com/acme/secrets.git/git-upload-pack", headers: map[string]string{"authorization": basicOfCap("x", github)},
			reason: ReasonUpstreamNotAllowed},
		{name: "another owner on the REST API", method: "GET", url: "https://api.github.com/repos/evil/widgets", headers: map[string]string{"authorization": "Bearer " + github},
			reason: ReasonUpstreamNotAllowed},
		{name: "another origin", url: "https://api.anthropic.com/v1/messages", headers: map[string]string{"authorization": "Bearer " + openai},
			reason: ReasonUpstreamNotAllowed},
		{name: "a path outside the routes", url: "https://api.openai.com/v2/x", headers: map[string]string{"authorization": "Bearer " + openai},
			reason: ReasonUpstreamNotAllowed},
		{name: "a traversal", url: "https://api.openai.com/v1/../admin", headers: map[string]string{"authorization": "Bearer " + openai},
			reason: ReasonInvalidUpstreamURL},
		{name: "an encoded slash", url: "https://github.com/acme/widgets.git%2F..%2F..%2Fevil%2Fx/info/refs", method: "GET", headers: map[string]string{"authorization": basicOfCap("x", github)},
			reason: ReasonInvalidUpstreamURL},
		{name: "a method the route does not take", method: "DELETE", url: "https://github.com/acme/widgets.git/info/refs", headers: map[string]string{"authorization": basicOfCap("x", github)},
			reason: ReasonUpstreamNotAllowed},
		{name: "another container", container: "ctr-2", url: "https://api.openai.com/v1/chat/completions", headers: map[string]string{"authorization": "Bearer " + openai},
			reason: ReasonContainerMismatch},
		{name: "a place the profile does not accept", url: "https://api.openai.com/v1/chat/completions", headers: map[string]string{"x-api-key": openai},
			reason: ReasonInvalidCapability},
		{name: "accepted and not accepted places", url: "https://api.openai.com/v1/chat/completions", headers: map[string]string{"authorization": "Bearer " + openai, "x-goog-api-key": openai},
			reason: ReasonInvalidCapability},
		{name: "two different profile capabilities", url: "https://api.anthropic.com/v1/messages", headers: map[string]string{"authorization": "Bearer " + anthropic, "x-api-key": openai},
			reason: ReasonInvalidCapability},
		{name: "repeated x-api-key, different values", url: "https://api.anthropic.com/v1/messages",
			raw: []*corev3.HeaderValue{{Key: "x-api-key", RawValue: []byte(anthropic)}, {Key: "X-Api-Key", RawValue: []byte(openai)}}, reason: ReasonInvalidCapability},
		{name: "a kka1 capability beside", url: "https://api.openai.com/v1/chat/completions", headers: map[string]string{"authorization": "Bearer " + openai, "x-kilo-capability": kka1},
			reason: ReasonInvalidCapability},
		{name: "in the kka1 header, which no profile accepts", url: "https://api.openai.com/v1/chat/completions", headers: map[string]string{"x-kilo-capability": openai},
			reason: ReasonInvalidCapability},
		{name: "an unknown profile", url: "https://api.openai.com/v1/chat/completions", headers: map[string]string{"authorization": "Bearer " + unknown},
			reason: ReasonInvalidCapability},
		{name: "a forged capability", url: "https://api.openai.com/v1/chat/completions", headers: map[string]string{"authorization": "Bearer " + openai[:len(openai)-4] + "AAAA"},
			reason: ReasonInvalidCapability},
	}
	gs := grpc.NewServer(ServerOptions()...)
	srv, err := NewGRPCServer(pc.core, GRPCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	Register(gs, srv)
	client := authv3.NewAuthorizationClient(serveBufconn(t, gs))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := client.Check(context.Background(), c.request())
			if err != nil {
				t.Fatal(err)
			}
			assertProfileResponse(t, resp, c)
			// The oracle reads the decoded message and builds the answer
			// with protobuf-go: the wire path answers the same.
			if want := mustOracle(t, srv, c.request()); !proto.Equal(resp, want) {
				t.Errorf("wire answer differs from the oracle's:\n%v\n%v", resp, want)
			}
		})
	}
}

func mustOracle(t *testing.T, srv *GRPCServer, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	nr := srv.readerNow()
	saved := srv.reader
	srv.reader = nr.reader
	defer func() { srv.reader = saved }()
	resp, err := srv.oracleCheck(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func assertProfileResponse(t *testing.T, resp *authv3.CheckResponse, c profileCheck) {
	t.Helper()
	text := resp.String()
	if c.reason != ReasonNone {
		if codes.Code(resp.GetStatus().GetCode()) == codes.OK || resp.GetStatus().GetMessage() != string(c.reason) {
			t.Fatalf("status %v; want a deny %s", resp.GetStatus(), c.reason)
		}
		var challenge string
		for _, h := range resp.GetDeniedResponse().GetHeaders() {
			if h.GetHeader().GetKey() == "www-authenticate" {
				challenge = h.GetHeader().GetValue()
			}
		}
		if c.challenge != "" && challenge != c.challenge {
			t.Errorf("www-authenticate = %q; want %q", challenge, c.challenge)
		}
		if strings.Contains(text, profileSecret) || strings.Contains(text, "eac1.") {
			t.Errorf("a deny carries a secret or a capability: %v", text)
		}
		return
	}
	ok := resp.GetOkResponse()
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK || ok == nil {
		t.Fatalf("status %v; want an allow", resp.GetStatus())
	}
	if len(ok.GetHeaders()) != 1 {
		t.Fatalf("allow sets %v; want one header", ok.GetHeaders())
	}
	h := ok.GetHeaders()[0]
	if got := h.GetHeader().GetKey() + ": " + h.GetHeader().GetValue(); got != c.set {
		t.Errorf("allow sets %q; want %q", got, c.set)
	}
	if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
		t.Errorf("append action %v; want overwrite", h.GetAppendAction())
	}
	if !slices.Equal(ok.GetHeadersToRemove(), c.remove) {
		t.Errorf("removes %v; want %v", ok.GetHeadersToRemove(), c.remove)
	}
	if slices.Contains(ok.GetHeadersToRemove(), h.GetHeader().GetKey()) {
		t.Errorf("removes the header it sets")
	}
	meta := resp.GetDynamicMetadata().GetFields()
	if meta["profile"].GetStringValue() == "" || meta["outbound_container_id"].GetStringValue() != "ctr-1" || meta["route_class"].GetStringValue() == "" {
		t.Errorf("metadata %v; want route_class, profile and outbound_container_id", meta)
	}
	if strings.Contains(text, "eac1.") {
		t.Errorf("an allow carries the capability: %v", text)
	}
}

// TestProfileCapabilityOverHTTP: the forward-auth and Envoy http_service
// endpoints decide a profile capability as Check does, reading every
// header the loaded profiles accept their capability in, and answer an
// allow with the injected header and the headers to remove.
func TestProfileCapabilityOverHTTP(t *testing.T) {
	pc := newProfileCore(t)
	h, err := NewHTTPHandler(pc.core, HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	anthropic := pc.seal(t, "anthropic", "api-key", nil)
	github := pc.seal(t, "github", "token", map[string]string{"owner": "acme", "repo": "widgets.git"})
	caps := capabilities{"A": anthropic, "G": github}
	forward := func(host, uri string, hdr map[string][]string) httpRequest {
		hd := map[string][]string{"X-Forwarded-Method": {"POST"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {host},
			"X-Forwarded-Uri": {uri}, "X-Outbound-Container-Id": {"ctr-1"}}
		for k, v := range hdr {
			hd[k] = v
		}
		return httpRequest{target: ForwardPath, host: "extauthz:8181", header: hd}
	}
	envoy := func(host, path string, hdr map[string][]string) httpRequest {
		hd := map[string][]string{"X-Forwarded-Proto": {"https"}, "X-Outbound-Container-Id": {"ctr-1"}}
		for k, v := range hdr {
			hd[k] = v
		}
		return httpRequest{method: "POST", target: EnvoyPathPrefix + path, host: host, header: hd}
	}
	for _, c := range []struct {
		name            string
		req             httpRequest
		status          int
		set, value      string
		removeHeader    string
		remove          string
		challenge       string
		reason          Reason
		wantNoBearerSet bool
	}{
		{name: "forward, x-api-key", req: forward("api.anthropic.com", "/v1/messages", map[string][]string{"X-Api-Key": {"${A}"}}),
			status: 200, set: "X-Api-Key", value: profileSecret, removeHeader: HeaderRemove, remove: "x-kilo-capability,x-outbound-container-id,authorization"},
		{name: "forward, bearer", req: forward("api.anthropic.com", "/v1/messages", map[string][]string{"Authorization": {"Bearer ${A}"}}),
			status: 200, set: "X-Api-Key", value: profileSecret, removeHeader: HeaderRemove, remove: "x-kilo-capability,x-outbound-container-id,authorization"},
		{name: "envoy, bearer", req: envoy("api.anthropic.com", "/v1/messages", map[string][]string{"Authorization": {"Bearer ${A}"}}),
			status: 200, set: "X-Api-Key", value: profileSecret, removeHeader: headerEnvoyRemove, remove: "x-kilo-capability,x-outbound-container-id,authorization"},
		{name: "envoy, git Basic", req: envoy("github.com", "/acme/widgets.git/git-upload-pack", map[string][]string{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+github))}}),
			status: 200, set: "Authorization", value: "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+profileSecret)),
			removeHeader: headerEnvoyRemove, remove: "x-kilo-capability,x-outbound-container-id"},
		{name: "envoy, git without a credential", req: envoy("github.com", "/acme/widgets.git/info/refs?service=git-upload-pack", nil),
			status: 401, challenge: `Basic realm="extauthz"`, reason: ReasonMissingCapability},
		{name: "forward, x-api-key repeated with another value", req: forward("api.anthropic.com", "/v1/messages", map[string][]string{"X-Api-Key": {"${A}", "${G}"}}),
			status: 401, reason: ReasonInvalidCapability},
		{name: "forward, another owner", req: forward("github.com", "/evil/widgets.git/git-upload-pack", map[string][]string{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+github))}}),
			status: 403, reason: ReasonUpstreamNotAllowed},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := doHTTP(t, h, caps, c.req)
			if w.Code != c.status {
				t.Fatalf("status %d; want %d\n%s", w.Code, c.status, dumpResponse(w))
			}
			if c.reason != ReasonNone {
				if c.challenge == "" {
					assertHTTPDeny(t, w, c.reason)
				} else if w.Header().Get(HeaderReason) != string(c.reason) {
					t.Errorf("reason %q; want %s", w.Header().Get(HeaderReason), c.reason)
				}
				if c.challenge != "" && w.Header().Get("WWW-Authenticate") != c.challenge {
					t.Errorf("WWW-Authenticate = %q; want %q", w.Header().Get("WWW-Authenticate"), c.challenge)
				}
				return
			}
			if got := w.Header().Values(c.set); len(got) != 1 || got[0] != c.value {
				t.Errorf("%s = %q; want %q", c.set, got, c.value)
			}
			if got := w.Header().Get(c.removeHeader); got != c.remove {
				t.Errorf("%s = %q; want %q", c.removeHeader, got, c.remove)
			}
			if c.set != "Authorization" && w.Header().Get("Authorization") != "" {
				t.Errorf("an allow into %s also sets Authorization", c.set)
			}
			if w.Header().Get(HeaderProfile) == "" || w.Header().Get(HeaderRouteClass) == "" {
				t.Errorf("allow without profile or route class headers: %v", w.Header())
			}
			if strings.Contains(dumpResponse(w), "eac1.") {
				t.Errorf("the answer carries the capability")
			}
		})
	}
}

// TestProfileRedeem: redeem answers, for a profile capability, the header
// to set with its value and the headers to remove; a deny is the same as
// Check's.
func TestProfileRedeem(t *testing.T) {
	pc := newProfileCore(t)
	api, err := NewAPIHandler(pc.core, APIOptions{Token: testAPIToken})
	if err != nil {
		t.Fatal(err)
	}
	anthropic := pc.seal(t, "anthropic", "api-key", nil)
	w := doHTTP(t, api, nil, redeemRequestFor(redeemBody(anthropic, "ctr-1", "POST", "https://api.anthropic.com/v1/messages")))
	want := `{"header":"x-api-key","value":"` + profileSecret + `","remove":["authorization"],"routeClass":"anthropic_api","profile":"anthropic"}`
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != want {
		t.Errorf("redeem = %d %s; want 200 %s", w.Code, w.Body, want)
	}
	w = doHTTP(t, api, nil, redeemRequestFor(redeemBody(anthropic, "ctr-2", "POST", "https://api.anthropic.com/v1/messages")))
	if w.Code != 403 || !strings.Contains(w.Body.String(), string(ReasonContainerMismatch)) || strings.Contains(w.Body.String(), profileSecret) {
		t.Errorf("redeem by another container = %d %s", w.Code, w.Body)
	}
}

// TestProfileCapabilityRevokedAndExpired: revocation by capability and by
// container, and expiry, deny a profile capability as they deny kka1.
func TestProfileCapabilityRevokedAndExpired(t *testing.T) {
	now := testNow
	pc := newProfileCoreWith(t, func() time.Time { return now }, Config{})
	set := pc.set
	decide := func(tok string) Reason {
		d := pc.core.Decide(context.Background(), Input{Protocol: ProtocolGRPC, Complete: true, Method: "POST", Scheme: "https",
			Authority: "api.openai.com", Path: "/v1/chat/completions", Authorization: []string{"Bearer " + tok}, CallerID: "ctr-1"})
		return d.Reason
	}
	a, b := pc.seal(t, "openai", "api-key", nil), pc.seal(t, "openai", "api-key", nil)
	if r := decide(a); r != ReasonNone {
		t.Fatalf("fresh capability: %v", r)
	}
	e, err := revocation.NewEntry(revocation.KindOutboundContainer, "ctr-1", "", "", now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	set.Add(e)
	if r := decide(a); r != ReasonRevokedCapability {
		t.Errorf("after revoking its container: %v; want revoked_capability", r)
	}
	set.Replace(nil)
	now = now.Add(2 * time.Hour)
	if r := decide(b); r != ReasonExpiredCapability {
		t.Errorf("after its lifetime: %v; want expired_capability", r)
	}
}

// TestProfileReloadTakesEffect: a new set of profiles decides from the next
// request; a capability of a profile no longer loaded is denied.
func TestProfileReloadTakesEffect(t *testing.T) {
	pc := newProfileCore(t)
	gemini := pc.seal(t, "gemini", "api-key", nil)
	anthropic := pc.seal(t, "anthropic", "api-key", nil)
	decide := func(authority string, in Input) Reason {
		in.Protocol, in.Complete, in.Method, in.Scheme, in.Authority, in.Path, in.CallerID = ProtocolGRPC, true, "POST", "https", authority, "/v1beta/models/m:generateContent", "ctr-1"
		in.profiles = pc.core.currentProfiles()
		return pc.core.Decide(context.Background(), in).Reason
	}
	if got := pc.core.ProfileHeaders(); !slices.Equal(got, []string{"x-api-key", "x-goog-api-key"}) {
		t.Fatalf("profile headers %v", got)
	}
	if r := decide("generativelanguage.googleapis.com", Input{Named: [][]string{nil, {gemini}}}); r != ReasonNone {
		t.Fatalf("before reload: %v", r)
	}
	only, err := profiles.Parse("only.yaml", []byte(`profiles:
  - name: openai
    accept: [bearer]
    routes:
      - {class: openai_api, origin: "https://api.openai.com", paths: ["/v1/**"], credential: api-key, inject: bearer}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	pc.core.SetProfiles(only)
	if got := pc.core.ProfileHeaders(); len(got) != 0 {
		t.Errorf("profile headers after reload %v; want none", got)
	}
	if r := decide("generativelanguage.googleapis.com", Input{Named: [][]string{nil, {gemini}}}); r != ReasonMissingCapability {
		t.Errorf("after reload, x-goog-api-key is no longer read: %v; want missing_capability", r)
	}
	if r := decide("api.anthropic.com", Input{Authorization: []string{"Bearer " + anthropic}}); r != ReasonInvalidCapability {
		t.Errorf("after its profile left: %v; want invalid_capability", r)
	}
}

// TestProfileObserved: the decision line and the metrics carry the
// profile; every label set of a loaded profile is exported at 0 at load;
// nothing logged carries the secret or the capability.
func TestProfileObserved(t *testing.T) {
	var log testsupport.LockedBuffer
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	pc := newProfileCoreWith(t, testClock, Config{Metrics: m, Logger: zerolog.New(&log)})
	core := pc.core
	allow := []string{"result", "allow", "reason", "", "route_class", "openai_api", "profile", "openai"}
	deny := []string{"result", "deny", "reason", string(ReasonContainerMismatch), "route_class", "", "profile", "github"}
	for _, labels := range [][]string{allow, deny} {
		if v, ok := seriesValue(t, reg, labels...); !ok || v != 0 {
			t.Fatalf("series %v at %v (exported %v) after load; want 0", labels, v, ok)
		}
	}
	tok := pc.seal(t, "openai", "api-key", nil)
	d := core.Decide(context.Background(), Input{Protocol: ProtocolGRPC, Complete: true, Method: "POST", Scheme: "https",
		Authority: "api.openai.com", Path: "/v1/chat/completions", Authorization: []string{"Bearer " + tok}, CallerID: "ctr-1"})
	if !d.Allowed() || d.Profile != "openai" {
		t.Fatalf("decision %v %q", d.Reason, d.Profile)
	}
	if v, _ := seriesValue(t, reg, allow...); v != 1 {
		t.Errorf("allow series = %v; want 1", v)
	}
	out := log.String()
	if !strings.Contains(out, `"profile":"openai"`) {
		t.Errorf("decision line without the profile: %s", out)
	}
	if strings.Contains(out, profileSecret) || strings.Contains(out, "eac1.") {
		t.Errorf("the log carries a secret or the capability: %s", out)
	}
}

// seriesValue is the value of the decisions series with labels (name,
// value pairs), and whether it is exported.
func seriesValue(t *testing.T, reg *prometheus.Registry, labels ...string) (float64, bool) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "extauthz_decisions_total" {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for i := 0; i < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue series
				}
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// FuzzProfileCheck drives the gRPC adapter with the shipped provider
// profiles loaded and arbitrary requests in which "$O", "$A" and "$G"
// stand for openai, anthropic and github capabilities bound to ctr-1: it
// never panics or errors, the wire path answers as the oracle does, a deny
// carries no secret, and an allow is right: the bound caller, the route
// its profile gives with the capability's variables, the credential as
// that route injects it, and no header that carried a capability left in
// place upstream (each one is overwritten or removed).
func FuzzProfileCheck(f *testing.F) {
	for _, s := range [][7]string{
		{"POST", "api.openai.com", "/v1/chat/completions", "Bearer $O", "", "", "ctr-1"},
		{"POST", "api.anthropic.com", "/v1/messages", "Bearer $A", "$A", "", "ctr-1"},
		{"POST", "api.anthropic.com", "/v1/messages", "", "$A", "$A", "ctr-1"},
		{"GET", "github.com", "/acme/widgets.git/info/refs?service=git-upload-pack", "Basic $G", "", "", "ctr-1"},
		{"GET", "github.com", "/acme/widgets.git/info/refs", "", "", "", "ctr-1"},
		{"POST", "github.com", "/evil/widgets.git/git-receive-pack", "Basic $G", "", "", "ctr-1"},
		{"GET", "api.github.com", "/repos/acme/x/pulls", "Bearer $G", "", "", "ctr-2"},
		{"POST", "api.openai.com", "/v1/%2e%2e/x", "Bearer $O, Bearer $A", "", "", "ctr-1"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], s[6])
	}
	pc := newProfileCore(f)
	caps := map[string]string{
		"$O": pc.seal(f, "openai", "api-key", nil),
		"$A": pc.seal(f, "anthropic", "api-key", nil),
		"$G": pc.seal(f, "github", "token", map[string]string{"owner": "acme", "repo": "widgets.git"}),
	}
	expand := func(v string) string {
		v = strings.ReplaceAll(v, "Basic $G", basicOfCap("x-access-token", caps["$G"]))
		for k, c := range caps {
			v = strings.ReplaceAll(v, k, c)
		}
		return v
	}
	srv, err := NewGRPCServer(pc.core, GRPCOptions{})
	if err != nil {
		f.Fatal(err)
	}
	srv.reader.Named = pc.core.ProfileHeaders()
	f.Fuzz(func(t *testing.T, method, host, path, authorization, apiKey, capHeader, callerID string) {
		headers := map[string]string{}
		for name, v := range map[string]string{"authorization": authorization, "x-api-key": apiKey, "x-kilo-capability": capHeader} {
			if v != "" {
				headers[name] = expand(v)
			}
		}
		req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			ContextExtensions: map[string]string{"outbound_container_id": callerID},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: method, Scheme: "https", Host: host, Path: path, Headers: headers,
			}},
		}}
		resp := oracleAndWire(t, srv, req)
		ok := resp.GetOkResponse()
		if ok == nil {
			if text := resp.String(); strings.Contains(text, "eac1.") || strings.Contains(text, profileSecret) {
				t.Fatalf("a deny carries a capability or a secret: %v", text)
			}
			return
		}
		if callerID != "ctr-1" {
			t.Fatalf("allowed caller %q; only ctr-1 is bound", callerID)
		}
		md := resp.GetDynamicMetadata().AsMap()
		pr, found := pc.core.Profiles().Profile(md["profile"].(string))
		if !found {
			t.Fatalf("allowed for profile %v, which is not loaded", md["profile"])
		}
		var vars []policy.Var
		if pr.Name() == "github" {
			vars = []policy.Var{{Name: "owner", Value: "acme"}, {Name: "repo", Value: "widgets.git"}}
		}
		route, err := pr.Classify(policy.Request{Scheme: "https", Authority: host, Path: path, Method: method}, nil, vars)
		if err != nil || string(route.Class) != md["route_class"] {
			t.Fatalf("allowed as %v, but the profile says %v, %v", md["route_class"], route.Class, err)
		}
		set := ok.GetHeaders()[0].GetHeader()
		prefix, value := injectedValue(route.Inject, profileSecret)
		if set.GetKey() != route.Inject.HeaderName() || set.GetValue() != prefix+value {
			t.Fatalf("allow sets %s: %.24q…; want the route's injection", set.GetKey(), set.GetValue())
		}
		for name, v := range headers {
			if strings.Contains(v, "eac1.") && name != set.GetKey() && !slices.Contains(ok.GetHeadersToRemove(), name) {
				t.Fatalf("%s carried a capability and is neither overwritten nor removed: %v", name, ok)
			}
		}
	})
}

// TestProfileTraced: a Check on a profile capability gets a span that
// names the profile and carries no secret or capability.
func TestProfileTraced(t *testing.T) {
	f := newTraceFixture(t, nil)
	ps, err := profiles.Load("../profiles/providers.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	f.core.SetProfiles(ps)
	tok, err := f.core.codec.SealProfile(capability.ProfileSubject{Profile: "openai", OutboundContainerID: "ctr-1",
		Credentials: map[string]string{"api-key": profileSecret}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := profileCheck{url: "https://api.openai.com/v1/chat/completions", headers: map[string]string{"authorization": "Bearer " + tok}}
	resp := f.check(t, context.Background(), c.request())
	if resp.GetOkResponse() == nil {
		t.Fatalf("not allowed: %v", resp.GetStatus())
	}
	s := f.only(t)
	wantAttrs(t, s, map[attribute.Key]string{attrDecision: "allow", attrRouteClass: "openai_api", attrProfile: "openai", attrContainerID: "ctr-1"})
	for k, v := range attrsOf(s) {
		if strings.Contains(v, profileSecret) || strings.Contains(v, "eac1.") {
			t.Errorf("span attribute %s carries a secret or the capability", k)
		}
	}
}
