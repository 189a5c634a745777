package authz

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
	"github.com/extauthz/extauthz/revocation"
)

// newRevocableCore is a decision core over testKey that consults store.
func newRevocableCore(t testing.TB, store revocation.Store, log *testsupport.LockedBuffer) *Authorizer {
	t.Helper()
	return newRevocableCoreAt(t, store, log, testClock)
}

// newRevocableCoreAt is newRevocableCore with its clock.
func newRevocableCoreAt(t testing.TB, store revocation.Store, log *testsupport.LockedBuffer, now func() time.Time) *Authorizer {
	t.Helper()
	logger := zerolog.Nop()
	if log != nil {
		logger = zerolog.New(log).Level(zerolog.DebugLevel)
	}
	core, err := NewAuthorizer(Config{Codec: newCodec(t, now, testKey), Logger: logger, Revocations: store.Set()})
	if err != nil {
		t.Fatal(err)
	}
	return core
}

func decideCap(core *Authorizer, token, caller string) Decision {
	return core.Decide(context.Background(), Input{Protocol: ProtocolGRPC, Complete: true, Method: "GET", Scheme: "https",
		Authority: "api.kilo.example", Path: "/api/x", Capability: []string{token}, CallerID: caller})
}

// TestRevokedCapability: each kind of revocation denies with
// revoked_capability, checked after the capability opens and before the
// caller and the route. A subject revocation also matches a capability
// issued up to capability.ClockSkew after it (an issuer whose clock runs
// fast); one issued later is allowed again.
func TestRevokedCapability(t *testing.T) {
	caps := newCapabilities(t)
	sub := testSubject()
	at := func(d time.Duration) func() time.Time { return func() time.Time { return testNow.Add(d) } }
	soon := seal(t, newCodec(t, at(time.Second), testKey), sub, time.Hour)
	later := seal(t, newCodec(t, at(capability.ClockSkew+time.Second), testKey), sub, time.Hour)
	tests := []struct {
		name      string
		kind      revocation.Kind
		value     string
		token     string
		caller    string
		want      Reason
		wantSoon  Reason
		wantLater Reason
	}{
		{"capability", revocation.KindCapability, caps["CAP"], caps["CAP"], "ctr-1", ReasonRevokedCapability, ReasonNone, ReasonNone},
		{"other capability", revocation.KindCapability, caps["CAP_OTHER"], caps["CAP"], "ctr-1", ReasonNone, ReasonNone, ReasonNone},
		{"user", revocation.KindUser, sub.UserID, caps["CAP"], "ctr-1", ReasonRevokedCapability, ReasonRevokedCapability, ReasonNone},
		{"kilo session", revocation.KindKiloSession, sub.KiloSessionID, caps["CAP"], "ctr-1", ReasonRevokedCapability, ReasonRevokedCapability, ReasonNone},
		{"cloud agent session", revocation.KindCloudAgentSession, sub.CloudAgentSessionID, caps["CAP"], "ctr-1", ReasonRevokedCapability, ReasonRevokedCapability, ReasonNone},
		{"container", revocation.KindOutboundContainer, "ctr-1", caps["CAP"], "ctr-1", ReasonRevokedCapability, ReasonRevokedCapability, ReasonNone},
		{"revoked beats the wrong caller", revocation.KindUser, sub.UserID, caps["CAP"], "ctr-2", ReasonRevokedCapability, ReasonRevokedCapability, ReasonContainerMismatch},
		{"expired beats revoked", revocation.KindUser, sub.UserID, caps["CAP_EXPIRED"], "ctr-1", ReasonExpiredCapability, ReasonRevokedCapability, ReasonNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := revocation.NewMemoryStore()
			// The server's clock stands past the skew, so that every
			// capability above opens.
			core := newRevocableCoreAt(t, store, nil, at(capability.ClockSkew+2*time.Second))
			if d := decideCap(core, tc.token, tc.caller); d.Reason == ReasonRevokedCapability {
				t.Fatalf("revoked before any revocation")
			}
			e, err := revocation.NewEntry(tc.kind, tc.value, "test", "tester", testNow)
			if err != nil {
				t.Fatal(err)
			}
			if err := store.Revoke(e); err != nil {
				t.Fatal(err)
			}
			d := decideCap(core, tc.token, tc.caller)
			if d.Reason != tc.want {
				t.Errorf("after revoking %s: reason %q; want %q", tc.kind, d.Reason, tc.want)
			}
			if d.Reason == ReasonRevokedCapability && (d.Credential() != "" || d.Reason.HTTPStatus() != 401) {
				t.Errorf("revoked decision carries a credential or status %d", d.Reason.HTTPStatus())
			}
			if d := decideCap(core, soon, tc.caller); d.Reason != tc.wantSoon {
				t.Errorf("capability issued 1 s after the revocation: reason %q; want %q", d.Reason, tc.wantSoon)
			}
			if d := decideCap(core, later, tc.caller); d.Reason != tc.wantLater {
				t.Errorf("capability issued past the skew after the revocation: reason %q; want %q", d.Reason, tc.wantLater)
			}
		})
	}
}

// TestRevocationUnavailableFailsClosed: a set marked unavailable (a store
// too stale to trust) denies every capability that opens with
// revocation_unavailable (503), and decides again once fresh.
func TestRevocationUnavailableFailsClosed(t *testing.T) {
	caps := newCapabilities(t)
	store := revocation.NewMemoryStore()
	core := newRevocableCore(t, store, nil)
	store.Set().SetUnavailable(true)
	if d := decideCap(core, caps["CAP"], "ctr-1"); d.Reason != ReasonRevocationUnavailable || d.Reason.HTTPStatus() != 503 {
		t.Fatalf("stale set: reason %q (%d); want revocation_unavailable (503)", d.Reason, d.Reason.HTTPStatus())
	}
	store.Set().SetUnavailable(false)
	if d := decideCap(core, caps["CAP"], "ctr-1"); !d.Allowed() {
		t.Fatalf("fresh set: reason %q; want allowed", d.Reason)
	}
}

func newRevocationAPI(t testing.TB, store revocation.Store, log *testsupport.LockedBuffer) *APIHandler {
	t.Helper()
	h, err := NewAPIHandler(newRevocableCore(t, store, log), APIOptions{Token: testAPIToken, Revocations: store})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestRevokeAPI: the revoke endpoint takes the admin token, POST, and a
// strict JSON object with exactly one selector and an optional reason.
func TestRevokeAPI(t *testing.T) {
	caps := newCapabilities(t)
	caps["PCAP"] = mustSealProfile(t, newCodec(t, testClock, testKey), githubSubject(), time.Hour)
	tests := []struct {
		name   string
		method string
		header map[string][]string
		body   string
		status int
		slug   string
	}{
		{"user", "POST", apiHeader(testAPIToken), `{"userId":"u-1","reason":"offboarded"}`, 200, ""},
		{"capability", "POST", apiHeader(testAPIToken), `{"capability":"${CAP}"}`, 200, ""},
		{"session", "POST", apiHeader(testAPIToken), `{"kiloSessionId":"k-1"}`, 200, ""},
		{"profile capability", "POST", apiHeader(testAPIToken), `{"capability":"${PCAP}"}`, 200, ""},
		{"subject id", "POST", apiHeader(testAPIToken), `{"subject":"tenantId=t-9","reason":"offboarded"}`, 200, ""},
		{"subject id holding '='", "POST", apiHeader(testAPIToken), `{"subject":"tenantId=a=b"}`, 200, ""},
		{"subject without '='", "POST", apiHeader(testAPIToken), `{"subject":"tenantId"}`, 400, apiErrInvalidRequest},
		{"subject with an empty value", "POST", apiHeader(testAPIToken), `{"subject":"tenantId="}`, 400, apiErrInvalidRequest},
		{"subject key not a name", "POST", apiHeader(testAPIToken), `{"subject":"tenant id=t"}`, 400, apiErrInvalidRequest},
		{"subject as an object", "POST", apiHeader(testAPIToken), `{"subject":{"tenantId":"t-9"}}`, 400, apiErrInvalidRequest},
		{"subject and user", "POST", apiHeader(testAPIToken), `{"subject":"userId=u","userId":"u"}`, 400, apiErrInvalidRequest},
		{"profile capability as a subject id", "POST", apiHeader(testAPIToken), `{"subject":"k=${PCAP}"}`, 400, apiErrInvalidRequest},
		{"no token", "POST", nil, `{"userId":"u-1"}`, 401, apiErrUnauthorized},
		{"wrong token", "POST", apiHeader("x" + testAPIToken), `{"userId":"u-1"}`, 401, apiErrUnauthorized},
		{"GET", "GET", apiHeader(testAPIToken), ``, 405, apiErrMethod},
		{"no selector", "POST", apiHeader(testAPIToken), `{"reason":"x"}`, 400, apiErrInvalidRequest},
		{"two selectors", "POST", apiHeader(testAPIToken), `{"userId":"u","kiloSessionId":"k"}`, 400, apiErrInvalidRequest},
		{"empty value", "POST", apiHeader(testAPIToken), `{"userId":""}`, 400, apiErrInvalidRequest},
		{"unknown member", "POST", apiHeader(testAPIToken), `{"userId":"u","why":"x"}`, 400, apiErrInvalidRequest},
		{"case-folded name", "POST", apiHeader(testAPIToken), `{"userid":"u"}`, 400, apiErrInvalidRequest},
		{"duplicate member", "POST", apiHeader(testAPIToken), `{"userId":"u","userId":"v"}`, 400, apiErrInvalidRequest},
		{"null", "POST", apiHeader(testAPIToken), `{"userId":null}`, 400, apiErrInvalidRequest},
		{"number", "POST", apiHeader(testAPIToken), `{"userId":1}`, 400, apiErrInvalidRequest},
		{"not a capability", "POST", apiHeader(testAPIToken), `{"capability":"kka1.nope"}`, 400, apiErrInvalidRequest},
		{"trailing data", "POST", apiHeader(testAPIToken), `{"userId":"u"} x`, 400, apiErrInvalidRequest},
		{"too large", "POST", apiHeader(testAPIToken), `{"userId":"` + strings.Repeat("u", MaxAPIBodyBytes) + `"}`, 413, apiErrRequestTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log testsupport.LockedBuffer
			store := revocation.NewMemoryStore()
			h := newRevocationAPI(t, store, &log)
			w := doHTTP(t, h, caps, httpRequest{method: tc.method, target: RevokePath, header: tc.header, body: caps.expand(t, tc.body)})
			if w.Code != tc.status {
				t.Fatalf("status %d; want %d (%s)", w.Code, tc.status, w.Body)
			}
			assertNoSecrets(t, "response", w.Body.String(), caps)
			assertNoSecrets(t, "log", log.String(), caps)
			if tc.status != 200 {
				if want := `{"error":"` + tc.slug + `"}`; strings.TrimSpace(w.Body.String()) != want {
					t.Errorf("body %s; want %s", w.Body, want)
				}
				if store.Set().Len() != 0 {
					t.Errorf("a refused request revoked something")
				}
				return
			}
			var got struct{ Revoked revocation.Entry }
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if store.Set().Len() != 1 || got.Revoked.ExpiresAt-got.Revoked.RevokedAt != revocation.EntryLifetime.Milliseconds() {
				t.Errorf("revoked %+v; set holds %d", got.Revoked, store.Set().Len())
			}
			for _, want := range []string{`"event":"revocation"`, `"kind":"` + string(got.Revoked.Kind) + `"`, `"value":"` + got.Revoked.Value + `"`, `"remote_addr"`} {
				if !strings.Contains(log.String(), want) {
					t.Errorf("log %s lacks %s", log.String(), want)
				}
			}
		})
	}
}

// TestRevokeAPIDeniesAtOnce: a capability is refused by the very next
// decision after the revoke call answered 200.
func TestRevokeAPIDeniesAtOnce(t *testing.T) {
	caps := newCapabilities(t)
	store := revocation.NewMemoryStore()
	h := newRevocationAPI(t, store, nil)
	if d := decideCap(h.core, caps["CAP"], "ctr-1"); !d.Allowed() {
		t.Fatalf("before: %q", d.Reason)
	}
	w := doHTTP(t, h, caps, httpRequest{method: "POST", target: RevokePath, header: apiHeader(testAPIToken), body: caps.expand(t, `{"capability":"${CAP}","reason":"leaked"}`)})
	if w.Code != 200 {
		t.Fatalf("revoke: %d %s", w.Code, w.Body)
	}
	if d := decideCap(h.core, caps["CAP"], "ctr-1"); d.Reason != ReasonRevokedCapability {
		t.Fatalf("after: %q; want revoked_capability", d.Reason)
	}
	if d := decideCap(h.core, caps["CAP_OTHER"], "ctr-1"); !d.Allowed() {
		t.Fatalf("another capability of the same user: %q; want allowed", d.Reason)
	}
}

// TestRevocationsList: GET /v1/revocations pages through every entry in
// order, with the admin token; bad parameters are invalid_request.
func TestRevocationsList(t *testing.T) {
	caps := newCapabilities(t)
	store := revocation.NewMemoryStore()
	h := newRevocationAPI(t, store, nil)
	for _, u := range []string{"u-c", "u-a", "u-b"} {
		e, _ := revocation.NewEntry(revocation.KindUser, u, "", "", testNow)
		store.Revoke(e)
	}
	var values []string
	target := RevocationsPath + "?limit=2"
	for pages := 0; pages < 3; pages++ {
		w := doHTTP(t, h, caps, httpRequest{target: target, header: apiHeader(testAPIToken)})
		if w.Code != 200 {
			t.Fatalf("list: %d %s", w.Code, w.Body)
		}
		var page struct {
			Revocations []revocation.Entry
			Next        string
		}
		if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Revocations {
			values = append(values, e.Value)
		}
		if page.Next == "" {
			break
		}
		target = RevocationsPath + "?limit=2&after=" + page.Next
	}
	if strings.Join(values, ",") != "u-a,u-b,u-c" {
		t.Errorf("listed %v; want u-a,u-b,u-c", values)
	}
	for _, tc := range []struct {
		target string
		header map[string][]string
		status int
	}{
		{RevocationsPath, nil, 401},
		{RevocationsPath + "?limit=0", apiHeader(testAPIToken), 400},
		{RevocationsPath + "?limit=1001", apiHeader(testAPIToken), 400},
		{RevocationsPath + "?after=zz", apiHeader(testAPIToken), 400},
	} {
		if w := doHTTP(t, h, caps, httpRequest{target: tc.target, header: tc.header}); w.Code != tc.status {
			t.Errorf("GET %s: %d; want %d", tc.target, w.Code, tc.status)
		}
	}
	if w := doHTTP(t, h, caps, httpRequest{method: "POST", target: RevocationsPath, header: apiHeader(testAPIToken), body: "{}"}); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST %s: %d; want 405", RevocationsPath, w.Code)
	}
}

// TestRevocationAPIOff: without a store the revocation paths are 404.
func TestRevocationAPIOff(t *testing.T) {
	h, err := NewAPIHandler(newTestCore(t, nil, nil), APIOptions{Token: testAPIToken})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{RevokePath, RevocationsPath} {
		if w := doHTTP(t, h, nil, httpRequest{method: "POST", target: p, header: apiHeader(testAPIToken), body: `{"userId":"u"}`}); w.Code != 404 {
			t.Errorf("%s without a store: %d; want 404", p, w.Code)
		}
	}
}

// FuzzRevoke: any body is answered 200 (one entry stored) or 400
// invalid_request (nothing stored); never another status, a panic, or an
// answer or log line that quotes the capability.
func FuzzRevoke(f *testing.F) {
	for _, seed := range []string{`{"userId":"u"}`, `{"capability":"$CAP","reason":"r"}`, `{"kiloSessionId":"k","userId":"u"}`,
		`{"reason":"x"}`, `{"userId":"u","userId":"u"}`, `{"userId":"\u0000"}`, `[]`, `{"userId":"u"`, `{"capability":"kka1.$CAP"}`,
		`{"subject":"userId=u"}`, `{"subject":"=u"}`, `{"subject":{"userId":"u"}}`} {
		f.Add(seed)
	}
	caps := newCapabilities(f)
	f.Fuzz(func(t *testing.T, body string) {
		var log testsupport.LockedBuffer
		store := revocation.NewMemoryStore()
		h := newRevocationAPI(t, store, &log)
		body = strings.ReplaceAll(body, "$CAP", caps["CAP"])
		w := doHTTP(t, h, caps, httpRequest{method: "POST", target: RevokePath, header: apiHeader(testAPIToken), body: body})
		switch {
		case w.Code == 200 && store.Set().Len() == 1:
		case w.Code == 400 && store.Set().Len() == 0:
		default:
			t.Fatalf("body %q: status %d with %d entries stored", body, w.Code, store.Set().Len())
		}
		assertNoSecrets(t, "response", w.Body.String(), caps)
		assertNoSecrets(t, "log", log.String(), caps)
	})
}

// TestRevokedCachedCapability: a capability served from the codec's cache of
// opened capabilities is refused by the very next decision after its
// revocation (the check runs after Open, cached or not).
func TestRevokedCachedCapability(t *testing.T) {
	caps := newCapabilities(t)
	ring, err := capability.NewKeyRing(testKey)
	if err != nil {
		t.Fatal(err)
	}
	codec := capability.NewCodec(ring, capability.WithClock(testClock), capability.WithCache(16))
	store := revocation.NewMemoryStore()
	core, err := NewAuthorizer(Config{Codec: codec, Logger: zerolog.Nop(), Revocations: store.Set()})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if d := decideCap(core, caps["CAP"], "ctr-1"); !d.Allowed() {
			t.Fatalf("before revocation: %q", d.Reason)
		}
	}
	if st := codec.CacheStats(); st.Hits == 0 {
		t.Fatalf("the capability was not served from the cache: %+v", st)
	}
	e, err := revocation.NewEntry(revocation.KindCapability, caps["CAP"], "leaked", "tester", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Revoke(e); err != nil {
		t.Fatal(err)
	}
	hits := codec.CacheStats().Hits
	if d := decideCap(core, caps["CAP"], "ctr-1"); d.Reason != ReasonRevokedCapability {
		t.Fatalf("cached capability after revocation: %q; want revoked_capability", d.Reason)
	}
	if codec.CacheStats().Hits == hits {
		t.Errorf("the decision after the revocation did not come from the cache; the test proves nothing")
	}
}
