package capability

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// The encoders as they were before the member table, written from
// docs/decisions.md, section 2: struct tags for JSON, fmt for String. They
// are the oracles the table-driven renderings are held to, byte for byte.

type refTargets struct {
	BackendBaseURL       string `json:"backendBaseUrl"`
	ProviderBaseURL      string `json:"providerBaseUrl"`
	SessionIngestBaseURL string `json:"sessionIngestBaseUrl"`
}

type refSubject struct {
	UserID              string     `json:"userId"`
	CloudAgentSessionID string     `json:"cloudAgentSessionId"`
	KiloSessionID       string     `json:"kiloSessionId"`
	OutboundContainerID string     `json:"outboundContainerId"`
	UserToken           string     `json:"userToken"`
	ProviderToken       string     `json:"providerToken,omitempty"`
	Targets             refTargets `json:"targets"`
}

type refClaims struct {
	Version    int    `json:"version"`
	Purpose    string `json:"purpose"`
	refSubject        // embedded: its members are inlined
	IssuedAt   int64  `json:"issuedAt"`
	ExpiresAt  int64  `json:"expiresAt"`
}

func refSubjectOf(s Subject, redact bool) refSubject {
	r := refSubject{s.UserID, s.CloudAgentSessionID, s.KiloSessionID, s.OutboundContainerID, s.UserToken, s.ProviderToken,
		refTargets{s.Targets.BackendBaseURL, s.Targets.ProviderBaseURL, s.Targets.SessionIngestBaseURL}}
	if redact {
		r.UserToken = "[redacted]"
		if r.ProviderToken != "" {
			r.ProviderToken = "[redacted]"
		}
	}
	return r
}

func refClaimsOf(c Claims, redact bool) refClaims {
	return refClaims{c.Version, c.Purpose, refSubjectOf(c.Subject, redact), c.IssuedAt, c.ExpiresAt}
}

func refSubjectString(s Subject) string {
	var b strings.Builder
	fmt.Fprintf(&b, "userId:%q cloudAgentSessionId:%q kiloSessionId:%q outboundContainerId:%q userToken:[redacted]",
		s.UserID, s.CloudAgentSessionID, s.KiloSessionID, s.OutboundContainerID)
	if s.ProviderToken != "" {
		b.WriteString(" providerToken:[redacted]")
	}
	fmt.Fprintf(&b, " targets:{backendBaseUrl:%q providerBaseUrl:%q sessionIngestBaseUrl:%q}",
		s.Targets.BackendBaseURL, s.Targets.ProviderBaseURL, s.Targets.SessionIngestBaseURL)
	return b.String()
}

// renderingSubjects are subjects whose strings need escaping in JSON, in
// Go quoting, or both, beside the interop ones.
func renderingSubjects() map[string]Subject {
	subjects := interopSubjects()
	odd := testSubject()
	odd.UserID = "quote\" backslash\\ tab\t nl\n nul\x00 del\x7f <>& \u2028\u2029 é 😀"
	odd.KiloSessionID = "\x01\x1f"
	odd.ProviderToken = "tok\"en"
	subjects["characters to escape"] = odd
	bad := testSubject()
	bad.OutboundContainerID = "a\xffb"
	subjects["invalid UTF-8"] = bad
	return subjects
}

// TestRenderingsMatchReference holds every rendering of the member table to
// the reference encoders: Seal's plaintext, both MarshalJSONs and both
// Strings.
func TestRenderingsMatchReference(t *testing.T) {
	for name, s := range renderingSubjects() {
		t.Run(name, func(t *testing.T) {
			c := Claims{Subject: s, Version: Version, Purpose: Purpose,
				IssuedAt: t0.UnixMilli(), ExpiresAt: t0.Add(time.Hour).UnixMilli()}

			got, err := c.marshal()
			want, wantErr := json.Marshal(refClaimsOf(c, false))
			if (err == nil) != (wantErr == nil) || (err == nil && string(got) != string(want)) {
				t.Errorf("marshal = %s, %v\nwant        %s, %v", got, err, want, wantErr)
			}

			lenient := jsontext.AllowInvalidUTF8(true)
			for _, tc := range []struct {
				what      string
				got       func() ([]byte, error)
				reference any
			}{
				{"Claims.MarshalJSON", c.MarshalJSON, refClaimsOf(c, true)},
				{"Subject.MarshalJSON", s.MarshalJSON, refSubjectOf(s, true)},
			} {
				got, err := tc.got()
				want, wantErr := json.Marshal(tc.reference, lenient)
				if err != nil || wantErr != nil || string(got) != string(want) {
					t.Errorf("%s = %s, %v\nwant %s, %v", tc.what, got, err, want, wantErr)
				}
			}

			wantString := fmt.Sprintf("capability.Claims{version:%d purpose:%q %s issuedAt:%d expiresAt:%d}",
				c.Version, c.Purpose, refSubjectString(s), c.IssuedAt, c.ExpiresAt)
			if got := c.String(); got != wantString {
				t.Errorf("Claims.String = %s\nwant %s", got, wantString)
			}
			if got, want := s.String(), "capability.Subject{"+refSubjectString(s)+"}"; got != want {
				t.Errorf("Subject.String = %s\nwant %s", got, want)
			}
		})
	}
}

// TestMemberTable pins the table to docs/decisions.md, section 2: each
// member's name and kind, in the issuer's order, and which are required.
func TestMemberTable(t *testing.T) {
	want := []member{
		{"version", kindVersion}, {"purpose", kindPurpose},
		{"userId", kindString}, {"cloudAgentSessionId", kindString}, {"kiloSessionId", kindString},
		{"outboundContainerId", kindString}, {"userToken", kindSecret}, {"providerToken", kindOptionalSecret},
		{"targets", kindTargets}, {"issuedAt", kindTime}, {"expiresAt", kindTime},
		{"backendBaseUrl", kindURL}, {"providerBaseUrl", kindURL}, {"sessionIngestBaseUrl", kindURL},
	}
	if len(members) != len(want) {
		t.Fatalf("%d members; want %d", len(members), len(want))
	}
	for k, m := range want {
		if members[k] != m {
			t.Errorf("members[%d] = %+v; want %+v", k, members[k], m)
		}
	}
	if got, want := requiredClaims, uint64(1<<numClaims-1)&^(1<<claimProviderToken); got != want {
		t.Errorf("requiredClaims = %b; want every top-level member but providerToken, %b", got, want)
	}
	if got := strings.Join(subjectNames, ","); got != "userId,cloudAgentSessionId,kiloSessionId,outboundContainerId,userToken,providerToken,targets" {
		t.Errorf("subjectNames = %s", got)
	}
	if pointer(numClaims+targetIngest) != "/targets/sessionIngestBaseUrl" || memberName(numClaims+targetBackend) != "targets.backendBaseUrl" {
		t.Errorf("pointer or memberName of a target is wrong: %s, %s", pointer(numClaims+targetIngest), memberName(numClaims+targetBackend))
	}
}

// TestFieldBinding: every string member is bound to its own field of
// Claims, and setting each integer member reads back through intField.
func TestFieldBinding(t *testing.T) {
	var c Claims
	f := c.stringFields()
	for k, m := range members {
		isString := m.kind != kindVersion && m.kind != kindTime && m.kind != kindTargets
		if (f[k] != nil) != isString {
			t.Fatalf("member %s: bound = %v; want %v", m.name, f[k] != nil, isString)
		}
		if isString {
			*f[k] = m.name
		}
		if m.kind == kindVersion || m.kind == kindTime {
			c.setIntField(k, int64(100+k))
		}
	}
	want := Claims{Subject: Subject{UserID: "userId", CloudAgentSessionID: "cloudAgentSessionId",
		KiloSessionID: "kiloSessionId", OutboundContainerID: "outboundContainerId", UserToken: "userToken",
		ProviderToken: "providerToken", Targets: testTargets()}, Version: 100 + claimVersion, Purpose: "purpose",
		IssuedAt: 100 + claimIssuedAt, ExpiresAt: 100 + claimExpiresAt}
	want.Targets.BackendBaseURL, want.Targets.ProviderBaseURL, want.Targets.SessionIngestBaseURL =
		"backendBaseUrl", "providerBaseUrl", "sessionIngestBaseUrl"
	if c != want {
		t.Fatalf("after writing each member's name to its field: %#v; want %#v", c.Subject, want.Subject)
	}
	for _, k := range []int{claimVersion, claimIssuedAt, claimExpiresAt} {
		if c.intField(k) != int64(100+k) {
			t.Errorf("intField(%s) = %d; want %d", members[k].name, c.intField(k), 100+k)
		}
	}
}

// FuzzRenderings holds the table's JSON encoders to the reference encoder on
// arbitrary strings, where escaping and invalid UTF-8 are the risk.
func FuzzRenderings(f *testing.F) {
	for _, s := range []string{"", "plain", "\"\\\x00\x1f\x7f<>&\u2028\u2029", "a\xffb", "\xed\xa0\x80", "😀"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, id, token string) {
		c := Claims{Subject: testSubject(), Version: Version, Purpose: Purpose, IssuedAt: 1, ExpiresAt: 2}
		c.UserID, c.ProviderToken = id, token
		got, err := c.marshal()
		want, wantErr := json.Marshal(refClaimsOf(c, false))
		if (err == nil) != (wantErr == nil) || (err == nil && string(got) != string(want)) {
			t.Fatalf("marshal = %s, %v; reference %s, %v", got, err, want, wantErr)
		}
		got, _ = c.MarshalJSON()
		want, wantErr = json.Marshal(refClaimsOf(c, true), jsontext.AllowInvalidUTF8(true))
		if wantErr != nil || string(got) != string(want) {
			t.Fatalf("MarshalJSON = %s; reference %s, %v", got, want, wantErr)
		}
		if got, want := c.Subject.String(), "capability.Subject{"+refSubjectString(c.Subject)+"}"; got != want {
			t.Fatalf("String = %s; reference %s", got, want)
		}
	})
}
