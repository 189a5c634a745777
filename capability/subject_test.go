package capability

import (
	"errors"
	"strings"
	"testing"
)

// subjectDoc is a valid subject document carrying the sentinel tokens.
const subjectDoc = `{"userId":"user-1","cloudAgentSessionId":"cas-1","kiloSessionId":"ks-1",` +
	`"outboundContainerId":"oc-1","userToken":"` + sentinelUser + `","providerToken":"` + sentinelProvider + `",` +
	`"targets":{"backendBaseUrl":"https://api.kilo.example/api","providerBaseUrl":"https://api.kilo.example",` +
	`"sessionIngestBaseUrl":"https://ingest.kilo.example"}}`

func sentinelSubject() Subject {
	s := testSubject()
	s.UserToken, s.ProviderToken = sentinelUser, sentinelProvider
	return s
}

// subjectEdit replaces the first old in subjectDoc by new.
func subjectEdit(t *testing.T, old, new string) string {
	t.Helper()
	if !strings.Contains(subjectDoc, old) {
		t.Fatalf("subjectDoc lacks %q", old)
	}
	return strings.Replace(subjectDoc, old, new, 1)
}

func TestDecodeSubject(t *testing.T) {
	type verdict int
	const (
		ok    verdict = iota
		shape         // a *SubjectError
		rule          // a plain ErrInvalid error
	)
	noProvider := sentinelSubject()
	noProvider.ProviderToken = ""
	emptyUser := sentinelSubject()
	emptyUser.UserID = ""
	noTargets := sentinelSubject()
	noTargets.Targets = testTargets()
	noTargets.Targets.ProviderBaseURL = ""
	escaped := sentinelSubject()
	escaped.UserID = "user-\u00fc/\"q\""

	tests := []struct {
		name    string
		doc     string
		verdict verdict
		want    Subject // for ok
		msg     string  // for errors: a substring of the message
	}{
		{"valid", subjectDoc, ok, sentinelSubject(), ""},
		{"valid with whitespace", "\n\t " + subjectDoc + " \r\n", ok, sentinelSubject(), ""},
		{"no providerToken", subjectEdit(t, `"providerToken":"`+sentinelProvider+`",`, ""), ok, noProvider, ""},
		{"missing userId decodes to empty", subjectEdit(t, `"userId":"user-1",`, ""), ok, emptyUser, ""},
		{"empty userId decodes to empty", subjectEdit(t, `"user-1"`, `""`), ok, emptyUser, ""},
		{"missing target decodes to empty", subjectEdit(t, `"providerBaseUrl":"https://api.kilo.example",`, ""), ok, noTargets, ""},
		{"escaped key", subjectEdit(t, `"userId"`, `"\u0075serId"`), ok, sentinelSubject(), ""},
		{"escaped target key", subjectEdit(t, `"backendBaseUrl"`, `"backend\u0042aseUrl"`), ok, sentinelSubject(), ""},
		{"escaped value", subjectEdit(t, `"user-1"`, `"user-\u00fc\/\"q\""`), ok, escaped, ""},

		{"userId number", subjectEdit(t, `"user-1"`, `1`), shape, Subject{}, "at /userId: got a JSON number, want a string"},
		{"cloudAgentSessionId boolean", subjectEdit(t, `"cas-1"`, `true`), shape, Subject{}, "at /cloudAgentSessionId: got a JSON boolean"},
		{"kiloSessionId object", subjectEdit(t, `"ks-1"`, `{}`), shape, Subject{}, "at /kiloSessionId: got a JSON object"},
		{"outboundContainerId array", subjectEdit(t, `"oc-1"`, `["oc-1"]`), shape, Subject{}, "at /outboundContainerId: got a JSON array"},
		{"userToken number", subjectEdit(t, `"`+sentinelUser+`"`, `7`), shape, Subject{}, "at /userToken: got a JSON number"},
		{"providerToken number", subjectEdit(t, `"`+sentinelProvider+`"`, `7`), shape, Subject{}, "at /providerToken: got a JSON number"},
		{"targets string", subjectEdit(t, `{"backendBaseUrl":"https://api.kilo.example/api","providerBaseUrl":"https://api.kilo.example","sessionIngestBaseUrl":"https://ingest.kilo.example"}`, `"https://api.kilo.example"`), shape, Subject{}, "at /targets: got a JSON string, want an object"},
		{"backendBaseUrl number", subjectEdit(t, `"https://api.kilo.example/api"`, `1`), shape, Subject{}, "at /targets/backendBaseUrl: got a JSON number"},
		{"providerBaseUrl array", subjectEdit(t, `"https://api.kilo.example"`, `[]`), shape, Subject{}, "at /targets/providerBaseUrl: got a JSON array"},
		{"sessionIngestBaseUrl boolean", subjectEdit(t, `"https://ingest.kilo.example"`, `false`), shape, Subject{}, "at /targets/sessionIngestBaseUrl: got a JSON boolean"},

		{"null userId", subjectEdit(t, `"user-1"`, `null`), shape, Subject{}, "at /userId: got a JSON null"},
		{"null cloudAgentSessionId", subjectEdit(t, `"cas-1"`, `null`), shape, Subject{}, "at /cloudAgentSessionId: got a JSON null"},
		{"null kiloSessionId", subjectEdit(t, `"ks-1"`, `null`), shape, Subject{}, "at /kiloSessionId: got a JSON null"},
		{"null outboundContainerId", subjectEdit(t, `"oc-1"`, `null`), shape, Subject{}, "at /outboundContainerId: got a JSON null"},
		{"null userToken", subjectEdit(t, `"`+sentinelUser+`"`, `null`), shape, Subject{}, "at /userToken: got a JSON null"},
		{"null providerToken", subjectEdit(t, `"`+sentinelProvider+`"`, `null`), shape, Subject{}, "at /providerToken: got a JSON null"},
		{"null targets", subjectEdit(t, `{"backendBaseUrl":"https://api.kilo.example/api","providerBaseUrl":"https://api.kilo.example","sessionIngestBaseUrl":"https://ingest.kilo.example"}`, `null`), shape, Subject{}, "at /targets: got a JSON null"},
		{"null backendBaseUrl", subjectEdit(t, `"https://api.kilo.example/api"`, `null`), shape, Subject{}, "at /targets/backendBaseUrl: got a JSON null"},
		{"null providerBaseUrl", subjectEdit(t, `"https://api.kilo.example"`, `null`), shape, Subject{}, "at /targets/providerBaseUrl: got a JSON null"},
		{"null sessionIngestBaseUrl", subjectEdit(t, `"https://ingest.kilo.example"`, `null`), shape, Subject{}, "at /targets/sessionIngestBaseUrl: got a JSON null"},

		{"case-variant key", subjectEdit(t, `"userToken"`, `"UserToken"`), shape, Subject{}, "unknown field at byte 101 in the top-level object: field names are case-sensitive, did you mean /userToken?"},
		{"case-variant target key", subjectEdit(t, `"backendBaseUrl"`, `"backendBaseURL"`), shape, Subject{}, "in /targets: field names are case-sensitive, did you mean /targets/backendBaseUrl?"},
		{"unknown key", subjectEdit(t, `{`, `{"admin":true,`), shape, Subject{}, "unknown field at byte 1 in the top-level object (field names are case-sensitive)"},
		{"unknown nested key", subjectEdit(t, `"backendBaseUrl"`, `"x":{"y":1},"backendBaseUrl"`), shape, Subject{}, "unknown field at byte 206 in /targets (field names"},
		{"ttlSeconds is not a subject member", subjectEdit(t, `{`, `{"ttlSeconds":60,`), shape, Subject{}, "unknown field at byte 1 in the top-level object"},
		{"claims are not a subject", subjectEdit(t, `{`, `{"version":1,`), shape, Subject{}, "unknown field at byte 1 in the top-level object"},
		{"token where a name belongs", subjectEdit(t, `"targets"`, `"`+sentinelProvider+`","targets"`), shape, Subject{}, "unknown field at byte"},
		{"escaped case-variant key", subjectEdit(t, `"userId"`, `"\u0055serId"`), shape, Subject{}, "did you mean /userId?"},
		{"duplicate key", subjectEdit(t, `{`, `{"userId":"other",`), shape, Subject{}, "at /userId: duplicate field"},
		{"duplicate escaped key", subjectEdit(t, `{`, `{"\u0075serId":"other",`), shape, Subject{}, "at /userId: duplicate field"},
		{"duplicate userToken", subjectEdit(t, `{`, `{"userToken":"`+sentinelUser+`",`), shape, Subject{}, "at /userToken: duplicate field"},
		{"duplicate targets", subjectEdit(t, `{`, `{"targets":{},`), shape, Subject{}, "at /targets: duplicate field"},
		{"duplicate target key", subjectEdit(t, `"backendBaseUrl"`, `"backendBaseUrl":"https://other.example","backendBaseUrl"`), shape, Subject{}, "at /targets/backendBaseUrl: duplicate field"},

		{"trailing object", subjectDoc + "{}", shape, Subject{}, "data after the subject object"},
		{"trailing token", subjectDoc + `"` + sentinelUser + `"`, shape, Subject{}, "data after the subject object"},
		{"trailing garbage", subjectDoc + sentinelUser, shape, Subject{}, "invalid JSON at byte"},
		{"trailing comma", strings.TrimSuffix(subjectDoc, "}") + ",}", shape, Subject{}, "invalid JSON at byte"},
		{"invalid UTF-8 in a value", subjectEdit(t, `"user-1"`, "\"user-\xff\""), shape, Subject{}, "invalid JSON at byte"},
		{"invalid UTF-8 in a key", subjectEdit(t, `{`, "{\"\xc0\xae\":1,"), shape, Subject{}, "invalid JSON at byte"},
		{"lone surrogate escape", subjectEdit(t, `"user-1"`, `"\ud800"`), shape, Subject{}, "invalid JSON at byte"},
		{"single quotes", strings.ReplaceAll(subjectDoc, `"`, `'`), shape, Subject{}, "invalid JSON at byte"},
		{"truncated", subjectDoc[:len(subjectDoc)/2], shape, Subject{}, "invalid JSON: truncated"},
		{"truncated in targets", strings.TrimSuffix(subjectDoc, "}}"), shape, Subject{}, "invalid JSON: truncated"},
		{"empty", "", shape, Subject{}, "invalid JSON: the input is empty"},
		{"whitespace", " \n", shape, Subject{}, "invalid JSON: the input is empty"},
		{"null document", "null", shape, Subject{}, "at the top level: got a JSON null, want an object"},
		{"array document", "[" + subjectDoc + "]", shape, Subject{}, "at the top level: got a JSON array, want an object"},
		{"string document", `"` + sentinelUser + `"`, shape, Subject{}, "at the top level: got a JSON string"},

		{"empty providerToken", subjectEdit(t, `"`+sentinelProvider+`"`, `""`), rule, Subject{}, "providerToken is empty"},
		{"shape error before empty providerToken", subjectEdit(t, `"`+sentinelProvider+`"`, `""`) + "{}", shape, Subject{}, "data after the subject object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeSubject([]byte(tc.doc))
			if tc.verdict == ok {
				if err != nil {
					t.Fatalf("DecodeSubject(%q) = %v", tc.doc, err)
				}
				if got != tc.want {
					t.Fatalf("DecodeSubject(%q) = %v; want %v", tc.doc, got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("DecodeSubject(%q) = %v, nil; want an error", tc.doc, got)
			}
			wantErr(t, err, ErrInvalid)
			if _, isShape := errors.AsType[*SubjectError](err); isShape != (tc.verdict == shape) {
				t.Errorf("DecodeSubject(%q) = %T %v; want a *SubjectError: %v", tc.doc, err, err, tc.verdict == shape)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("DecodeSubject(%q) = %v; want it to contain %q", tc.doc, err, tc.msg)
			}
			assertClean(t, "DecodeSubject error", err.Error(), sentinelUser, sentinelProvider)
		})
	}
}

// FuzzDecodeSubject checks that DecodeSubject never panics, fails only with
// ErrInvalid and never quotes the document's tokens, and that what it
// accepts re-encodes to a document that decodes to the same subject.
func FuzzDecodeSubject(f *testing.F) {
	f.Add(subjectDoc)
	for _, s := range []string{"", "{}", "null", `{"targets":{}}`, `{"providerToken":""}`, `{"providerToken":null}`,
		`{"userId":"a","userId":"b"}`, `{"\u0075serId":"\u00fc"}`, `{"targets":{"x":1}}`, subjectDoc + "{}",
		strings.Replace(subjectDoc, `"userId"`, `"UserId"`, 1), "{\"userId\":\"\xff\"}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		s, err := DecodeSubject([]byte(doc))
		if err != nil {
			wantErr(t, err, ErrInvalid)
			assertClean(t, "DecodeSubject error", err.Error(), sentinelUser, sentinelProvider)
			return
		}
		c := Claims{Subject: s}
		f := c.stringFields()
		b, err := appendMembers(nil, &c, &f, firstSubjectClaim, endSubjectClaims, plainJSON)
		if err != nil {
			t.Fatalf("accepted subject does not encode: %v", err)
		}
		again, err := DecodeSubject(b)
		if err != nil || again != s {
			t.Fatalf("round trip of %q via %q = %v, %v", doc, b, again, err)
		}
	})
}
