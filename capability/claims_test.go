package capability

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// edit returns the valid claims JSON with old replaced by new (exactly once).
func edit(t *testing.T, old, new string) string {
	t.Helper()
	base := claimsJSON()
	if strings.Count(base, old) != 1 {
		t.Fatalf("edit: %q occurs %d times", old, strings.Count(base, old))
	}
	return strings.Replace(base, old, new, 1)
}

// drop removes a member `"name":value,` (or the last one) from the claims JSON.
func drop(t *testing.T, member string) string {
	t.Helper()
	if s := claimsJSON(); strings.Contains(s, member+",") {
		return edit(t, member+",", "")
	}
	return edit(t, ","+member, "")
}

func TestClaimRules(t *testing.T) {
	const tgt = `"targets":{"backendBaseUrl":"https://api.kilo.example/api","providerBaseUrl":"https://api.kilo.example","sessionIngestBaseUrl":"https://ingest.kilo.example"}`
	iat := strconv.FormatInt(t0.UnixMilli(), 10)
	exp := strconv.FormatInt(t0.Add(time.Hour).UnixMilli(), 10)
	at := func(issued, expires int64) string { return claimsJSONAt(issued, expires) }
	ms := t0.UnixMilli()
	maxLife := MaxLifetime.Milliseconds()
	type rule struct {
		name string
		json string
		ok   bool
	}
	var rules []rule
	add := func(name, json string, ok bool) { rules = append(rules, rule{name, json, ok}) }

	add("valid", claimsJSON(), true)
	add("version missing", drop(t, `"version":1`), false)
	add("version 2", edit(t, `"version":1`, `"version":2`), false)
	add("version 0", edit(t, `"version":1`, `"version":0`), false)
	add("version as string", edit(t, `"version":1`, `"version":"1"`), false)
	add("version null", edit(t, `"version":1`, `"version":null`), false)
	add("version true", edit(t, `"version":1`, `"version":true`), false)
	add("version 1.0 is 1", edit(t, `"version":1`, `"version":1.0`), true)
	add("version 1e0 is 1", edit(t, `"version":1`, `"version":1e0`), true)
	add("version 0.1e1 is 1", edit(t, `"version":1`, `"version":0.1e1`), true)
	add("version 1.5", edit(t, `"version":1`, `"version":1.5`), false)
	add("purpose missing", drop(t, `"purpose":"kilo_api_session"`), false)
	add("purpose wrong", edit(t, `"kilo_api_session"`, `"kilo_api"`), false)
	add("purpose case", edit(t, `"kilo_api_session"`, `"KILO_API_SESSION"`), false)
	for _, f := range []struct{ name, member string }{
		{"userId", `"userId":"user-1"`},
		{"cloudAgentSessionId", `"cloudAgentSessionId":"cas-1"`},
		{"kiloSessionId", `"kiloSessionId":"ks-1"`},
		{"outboundContainerId", `"outboundContainerId":"oc-1"`},
		{"userToken", `"userToken":"user-token-1"`},
	} {
		key := `"` + f.name + `":`
		add(f.name+" missing", drop(t, f.member), false)
		add(f.name+" empty", edit(t, f.member, key+`""`), false)
		add(f.name+" null", edit(t, f.member, key+`null`), false)
		add(f.name+" number", edit(t, f.member, key+`1`), false)
		add(f.name+" array", edit(t, f.member, key+`["x"]`), false)
		add(f.name+" object", edit(t, f.member, key+`{}`), false)
	}
	pt := `"providerToken":"provider-token-1"`
	add("providerToken absent", drop(t, pt), true)
	add("providerToken empty", edit(t, pt, `"providerToken":""`), false)
	add("providerToken null", edit(t, pt, `"providerToken":null`), false)
	add("providerToken number", edit(t, pt, `"providerToken":7`), false)
	add("providerToken false", edit(t, pt, `"providerToken":false`), false)

	add("targets missing", drop(t, tgt), false)
	add("targets null", edit(t, tgt, `"targets":null`), false)
	add("targets string", edit(t, tgt, `"targets":"https://api.kilo.example"`), false)
	add("targets array", edit(t, tgt, `"targets":[]`), false)
	add("targets empty object", edit(t, tgt, `"targets":{}`), false)
	for _, k := range []string{"backendBaseUrl", "providerBaseUrl", "sessionIngestBaseUrl"} {
		member := `"` + k + `":"` + map[string]string{
			"backendBaseUrl":       "https://api.kilo.example/api",
			"providerBaseUrl":      "https://api.kilo.example",
			"sessionIngestBaseUrl": "https://ingest.kilo.example",
		}[k] + `"`
		key := `"` + k + `":`
		without := strings.Replace(strings.Replace(claimsJSON(), member+",", "", 1), ","+member, "", 1)
		add("targets."+k+" missing", without, false)
		add("targets."+k+" empty", edit(t, member, key+`""`), false)
		add("targets."+k+" null", edit(t, member, key+`null`), false)
		add("targets."+k+" number", edit(t, member, key+`1`), false)
		add("targets."+k+" relative", edit(t, member, key+`"/api"`), false)
		add("targets."+k+" no scheme", edit(t, member, key+`"api.kilo.example"`), false)
		add("targets."+k+" no host", edit(t, member, key+`"https://"`), false)
		add("targets."+k+" opaque", edit(t, member, key+`"mailto:a@kilo.example"`), false)
		add("targets."+k+" space in host", edit(t, member, key+`"https://a b.example"`), false)
		add("targets."+k+" control char", edit(t, member, key+`"https://a.example/\u0000"`), false)
		add("targets."+k+" http localhost", edit(t, member, key+`"http://localhost:8080"`), true)
	}
	add("targets unknown nested key", edit(t, `"sessionIngestBaseUrl":`, `"extra":"https://x.example","sessionIngestBaseUrl":`), false)
	add("targets case-variant key", edit(t, `"backendBaseUrl"`, `"backendBaseURL"`), false)
	add("targets duplicate key", edit(t, `"providerBaseUrl":`, `"backendBaseUrl":"https://api.kilo.example/api","providerBaseUrl":`), false)

	add("issuedAt missing", drop(t, `"issuedAt":`+iat), false)
	add("expiresAt missing", drop(t, `"expiresAt":`+exp), false)
	add("issuedAt as string", edit(t, `"issuedAt":`+iat, `"issuedAt":"`+iat+`"`), false)
	add("expiresAt as string", edit(t, `"expiresAt":`+exp, `"expiresAt":"`+exp+`"`), false)
	add("issuedAt null", edit(t, `"issuedAt":`+iat, `"issuedAt":null`), false)
	add("issuedAt fractional", edit(t, `"issuedAt":`+iat, `"issuedAt":`+iat+`.5`), false)
	add("issuedAt with .0", edit(t, `"issuedAt":`+iat, `"issuedAt":`+iat+`.0`), true)
	add("issuedAt in exponent form", edit(t, `"issuedAt":`+iat, `"issuedAt":1.75e12`), true)
	add("issuedAt zero", at(0, maxLife), true)
	add("issuedAt negative zero", strings.Replace(at(0, maxLife), `"issuedAt":0`, `"issuedAt":-0`, 1), true)
	add("issuedAt negative", at(-1, 1000), false)
	add("expiresAt equals issuedAt", at(ms, ms), false)
	add("expiresAt before issuedAt", at(ms, ms-1), false)
	add("lifetime exactly 4h", at(ms, ms+maxLife), true)
	add("lifetime 4h plus 1ms", at(ms, ms+maxLife+1), false)
	add("timestamps at 2^53-1", at(maxSafeInteger-1000, maxSafeInteger), true)
	add("expiresAt 2^53", at(maxSafeInteger-999, maxSafeInteger+1), false)
	add("expiresAt 1e400", edit(t, `"expiresAt":`+exp, `"expiresAt":1e400`), false)
	add("expiresAt hex", edit(t, `"expiresAt":`+exp, `"expiresAt":0x1`), false)
	add("expiresAt with plus", edit(t, `"expiresAt":`+exp, `"expiresAt":+`+exp), false)
	add("expiresAt leading zero", edit(t, `"expiresAt":`+exp, `"expiresAt":0`+exp), false)

	// JSON strictness.
	add("case-variant key", edit(t, `"userToken"`, `"UserToken"`), false)
	add("case-variant key alongside", edit(t, `"userToken":"user-token-1"`, `"userToken":"user-token-1","UserToken":"x"`), false)
	add("unknown key", edit(t, `"version":1`, `"version":1,"admin":true`), false)
	add("unknown key null", edit(t, `"version":1`, `"version":1,"x":null`), false)
	add("duplicate key", edit(t, `"userId":"user-1"`, `"userId":"user-1","userId":"user-2"`), false)
	add("duplicate key via escape", edit(t, `"userId":"user-1"`, `"userId":"user-1","user\u0049d":"user-2"`), false)
	add(`\u-escaped key accepted`, edit(t, `"userId"`, `"\u0075serId"`), true)
	add(`\u-escaped value accepted`, edit(t, `"kilo_api_session"`, `"kilo\u005fapi_session"`), true)
	add(`\u-escaped surrogate pair`, edit(t, `"user-1"`, `"\ud83d\ude00"`), true)
	add("lone surrogate escape", edit(t, `"user-1"`, `"\ud83d"`), false)
	add("invalid UTF-8 in value", edit(t, `"user-1"`, "\"user-\xff\""), false)
	add("invalid UTF-8 in key", edit(t, `"version":1`, "\"version\":1,\"\xff\":1"), false)
	add("overlong UTF-8", edit(t, `"user-1"`, "\"\xc0\xae\""), false)
	add("trailing data", claimsJSON()+`{}`, false)
	add("trailing garbage", claimsJSON()+`x`, false)
	add("trailing comma", strings.TrimSuffix(claimsJSON(), "}")+",}", false)
	add("surrounding whitespace", " \n\t"+claimsJSON()+"\r\n ", true)
	add("top-level array", "["+claimsJSON()+"]", false)
	add("top-level null", "null", false)
	add("empty", "", false)
	add("truncated", claimsJSON()[:40], false)
	add("single quotes", strings.ReplaceAll(claimsJSON(), `"`, `'`), false)
	add("comment", "/*x*/"+claimsJSON(), false)
	add("BOM", "\ufeff"+claimsJSON(), false)

	seen := map[string]bool{}
	for _, r := range rules {
		if seen[r.name] {
			t.Fatalf("duplicate subtest name %q", r.name)
		}
		seen[r.name] = true
		t.Run(r.name, func(t *testing.T) {
			c, err := decodeClaims([]byte(r.json))
			if r.ok && err != nil {
				t.Fatalf("decodeClaims = %v; want success", err)
			}
			if !r.ok {
				wantErr(t, err, ErrInvalid)
			}
			// End to end through Open, with the clock inside the claims' window.
			codec, clk := newTestCodec(t, testKey(1))
			if r.ok {
				clk.t = time.UnixMilli(c.IssuedAt)
			}
			_, err = codec.Open(sealRaw(t, testKey(1), []byte(r.json)))
			if r.ok && err != nil {
				t.Fatalf("Open = %v; want success", err)
			}
			if !r.ok {
				wantErr(t, err, ErrInvalid)
			}
		})
	}
}

func TestDecodeClaimsValues(t *testing.T) {
	c, err := decodeClaims([]byte(edit(t, `"userId":"user-1"`, `"userId":"\u00fc\n\"x\""`)))
	if err != nil {
		t.Fatal(err)
	}
	want := Claims{Subject: testSubject(), Version: 1, Purpose: Purpose,
		IssuedAt: t0.UnixMilli(), ExpiresAt: t0.Add(time.Hour).UnixMilli()}
	want.UserID = "ü\n\"x\""
	if c != want {
		t.Fatalf("decodeClaims = %+v; want %+v", c, want)
	}
}
