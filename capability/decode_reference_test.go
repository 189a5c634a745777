package capability

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/strictjson"
)

// decodeClaimsReference is decodeClaims as it was before the single-pass
// decoder: the claims read with the module's generic strict reader
// (internal/strictjson), then checked by every claim rule that does not
// depend on the clock. It is the reference FuzzDecodeClaimsDiff holds
// decodeClaims to.
func decodeClaimsReference(b []byte) (Claims, error) {
	var c Claims
	var seen, targets uint64
	err := strictjson.Decode(b, "claims", func(rd *strictjson.Reader) error {
		var err error
		seen, err = rd.Object("", claimNames, func(i int, p strictjson.Pointer) error {
			var err error
			switch i {
			case claimVersion:
				var n int64
				n, err = rd.Int(p)
				c.Version = int(n)
			case claimPurpose:
				c.Purpose, err = rd.String(p)
			case claimIssuedAt:
				c.IssuedAt, err = rd.Int(p)
			case claimExpiresAt:
				c.ExpiresAt, err = rd.Int(p)
			default:
				var t uint64
				t, err = readSubjectMember(rd, &c.Subject, i, p)
				targets |= t
			}
			return err
		})
		return err
	})
	switch {
	case err != nil:
		return c, fmt.Errorf("%w: claims: %v", ErrInvalid, err)
	case seen&requiredClaims != requiredClaims || targets != 1<<len(targetNames)-1:
		return c, fmt.Errorf("%w: a required claim is missing", ErrInvalid)
	case seen&(1<<claimProviderToken) != 0 && c.ProviderToken == "":
		return c, fmt.Errorf("%w: providerToken is empty", ErrInvalid)
	}
	if err := c.validate(); err != nil {
		return c, err
	}
	return c, nil
}

// FuzzDecodeClaimsDiff holds decodeClaims to decodeClaimsReference: on any
// input both accept or both refuse (with ErrInvalid only), and what they
// accept decodes to the same claims.
func FuzzDecodeClaimsDiff(f *testing.F) {
	for _, s := range claimsSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeClaims(b)
		want, wantErr := decodeClaimsReference(b)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("decodeClaims(%q) error = %v; reference error = %v", b, err, wantErr)
		}
		if err != nil {
			if s := sentinels(err); len(s) != 1 || s[0] != ErrInvalid {
				t.Fatalf("decodeClaims(%q) error %v; want only ErrInvalid", b, err)
			}
			return
		}
		if got != want {
			t.Fatalf("decodeClaims(%q) = %#v; reference %#v", b, got, want)
		}
	})
}

// TestDecodeClaimsMatchesReference runs the differential check on the seeds
// in every test run, not only when fuzzing.
func TestDecodeClaimsMatchesReference(t *testing.T) {
	for _, s := range claimsSeeds() {
		got, err := decodeClaims([]byte(s))
		want, wantErr := decodeClaimsReference([]byte(s))
		if (err == nil) != (wantErr == nil) || (err == nil && got != want) {
			t.Errorf("decodeClaims(%q) = %v, %v; reference %v, %v", s, got, err, want, wantErr)
		}
	}
}

// claimsSeeds are claims documents at the edges of what the decoders
// accept: valid ones, and each rule of docs/decisions.md, section 2, and of
// JSON broken once.
func claimsSeeds() []string {
	base := claimsJSON()
	r := func(old, new string) string { return strings.Replace(base, old, new, 1) }
	iat := fmt.Sprint(t0.UnixMilli())
	seeds := []string{
		base,
		" \n\t" + base + "\r\n ",
		r(`,"providerToken":"provider-token-1"`, ""),
		r(`"providerToken":"provider-token-1"`, `"providerToken":""`),
		r(`"providerToken":"provider-token-1"`, `"providerToken":null`),
		r(`"version":1`, `"version":1.0`),
		r(`"version":1`, `"version":1e0`),
		r(`"version":1`, `"version":0.1e1`),
		r(`"version":1`, `"version":10E-1`),
		r(`"version":1`, `"version":1.5`),
		r(`"version":1`, `"version":-1`),
		r(`"version":1`, `"version":01`),
		r(`"version":1`, `"version":"1"`),
		r(`"version":1`, `"version":1.`),
		r(`"version":1`, `"version":1e`),
		r(`"version":1`, `"version":-`),
		r(`"version":1`, `"version":1 `),
		r(`"issuedAt":`+iat, `"issuedAt":`+iat+`.0`),
		r(`"issuedAt":`+iat, `"issuedAt":1.75e12`),
		r(`"issuedAt":`+iat, `"issuedAt":-0`),
		r(`"issuedAt":`+iat, `"issuedAt":9007199254740991`),
		r(`"issuedAt":`+iat, `"issuedAt":9007199254740992`),
		r(`"issuedAt":`+iat, `"issuedAt":999999999999999`),
		r(`"issuedAt":`+iat, `"issuedAt":1e400`),
		r(`"kilo_api_session"`, `"kilo\u005fapi_session"`),
		r(`"kilo_api_session"`, `"kilo_api"`),
		r(`"userId"`, `"\u0075serId"`),
		r(`"userId"`, `"UserId"`),
		r(`"userId"`, `"userI\u0044"`),
		r(`"userId":"user-1"`, `"userId":"user-1","userId":"x"`),
		r(`"userId":"user-1"`, `"userId":"user-1","user\u0049d":"x"`),
		r(`"user-1"`, `"\ud83d\ude00"`),
		r(`"user-1"`, `"\ud83d"`),
		r(`"user-1"`, `"\ude00\ud83d"`),
		r(`"user-1"`, `"\ud83d\u0041"`),
		r(`"user-1"`, `"\u00fc\n\"x\"\/\b\f\r\t\\"`),
		r(`"user-1"`, `"\u0000"`),
		r(`"user-1"`, `"\x41"`),
		r(`"user-1"`, `"\u00G0"`),
		r(`"user-1"`, "\"user-\xff\""),
		r(`"user-1"`, "\"\xc0\xae\""),
		r(`"user-1"`, "\"\xed\xa0\x80\""),
		r(`"user-1"`, "\"\xef\xbf\xbd\u2028\x7f\""),
		r(`"user-1"`, "\"a\tb\""),
		r(`"user-1"`, `null`),
		r(`"user-1"`, `["x"]`),
		r(`"user-1"`, `{}`),
		r(`"targets":{`, `"targets":{"extra":"https://x.example",`),
		r(`"backendBaseUrl"`, `"backendBaseURL"`),
		r(`"providerBaseUrl":`, `"backendBaseUrl":"https://api.kilo.example/api","providerBaseUrl":`),
		r(`"https://api.kilo.example/api"`, `"https://other.example/api"`),
		r(`"https://api.kilo.example/api"`, `"/api"`),
		r(`"https://api.kilo.example/api"`, `"https://a b.example"`),
		r(`"https://api.kilo.example/api"`, `"http:\/\/localhost:8080"`),
		r(`"targets":{`, `"targets" : { `),
		r(`,"issuedAt"`, ` , "issuedAt"`),
		base + "{}",
		base + "x",
		strings.TrimSuffix(base, "}") + ",}",
		strings.TrimSuffix(base, "}"),
		"\ufeff" + base,
		"[" + base + "]",
		"{}", "{ }", "{", "", " ", "null", "[]", `{"targets":{"backendBaseUrl":null}}`,
	}
	for i := 1; i < len(base); i += 37 {
		seeds = append(seeds, base[:i])
	}
	return seeds
}

// TestClaimIndexes pins the member indexes decodeClaims dispatches on to
// the names they stand for.
func TestClaimIndexes(t *testing.T) {
	for i, want := range map[int]string{claimVersion: "version", claimPurpose: "purpose",
		firstSubjectClaim: "userId", firstSubjectClaim + 1: "cloudAgentSessionId", firstSubjectClaim + 2: "kiloSessionId",
		firstSubjectClaim + 3: "outboundContainerId", firstSubjectClaim + 4: "userToken", claimProviderToken: "providerToken",
		claimTargets: "targets", claimIssuedAt: "issuedAt", claimExpiresAt: "expiresAt"} {
		if claimNames[i] != want {
			t.Errorf("claimNames[%d] = %q; want %q", i, claimNames[i], want)
		}
	}
	for i, want := range map[int]string{targetBackend: "backendBaseUrl", targetProvider: "providerBaseUrl", targetIngest: "sessionIngestBaseUrl"} {
		if targetNames[i] != want {
			t.Errorf("targetNames[%d] = %q; want %q", i, targetNames[i], want)
		}
	}
}

// BenchmarkDecodeClaims compares decodeClaims with its reference on the
// claims Seal writes.
func BenchmarkDecodeClaims(b *testing.B) {
	c := Claims{Subject: testSubject(), Version: Version, Purpose: Purpose,
		IssuedAt: t0.UnixMilli(), ExpiresAt: t0.Add(time.Hour).UnixMilli()}
	plain, err := c.marshal()
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		decode func([]byte) (Claims, error)
	}{{"single-pass", decodeClaims}, {"reference", decodeClaimsReference}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(plain)))
			for b.Loop() {
				if _, err := bc.decode(plain); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPlainRun checks the word-at-a-time scan against plainByte for every
// byte value at every position of a word and its tail, behind plain bytes
// and behind another stop byte.
func TestPlainRun(t *testing.T) {
	for n := 1; n <= 20; n++ {
		for p := range n {
			for b := range 256 {
				in := []byte(strings.Repeat("a", n))
				in[p] = byte(b)
				want := n
				if !plainByte[b] {
					want = p
				}
				if got := plainRun(in, 0); got != want {
					t.Fatalf("plainRun(%q, 0) = %d; want %d", in, got, want)
				}
				if p+1 < n {
					in[p+1] = 0 // a second stop byte after the first
					if !plainByte[b] {
						if got := plainRun(in, 0); got != p {
							t.Fatalf("plainRun(%q, 0) = %d; want %d", in, got, p)
						}
					}
				}
			}
		}
	}
}
