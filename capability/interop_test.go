package capability

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testutil/testprog"
)

func interopSubjects() map[string]Subject {
	plain := testSubject()
	noProvider := testSubject()
	noProvider.ProviderToken = ""
	unicode := testSubject()
	unicode.UserID = "ü-用户-😀 \"q\" \\ </script> \u2028"
	unicode.KiloSessionID = "ses/with space?&"
	long := testSubject()
	long.UserToken = strings.Repeat("t", 20000)
	return map[string]Subject{"plain": plain, "no provider token": noProvider, "unicode": unicode, "long token": long}
}

func TestInteropNodeSealsGoOpens(t *testing.T) {
	run := testprog.NodeKKA1(t)
	key := testKey(3)
	c, _ := newTestCodec(t, testKey(4), key) // Go tries both keys
	for name, s := range interopSubjects() {
		t.Run(name, func(t *testing.T) {
			want := Claims{Subject: s, Version: 1, Purpose: Purpose,
				IssuedAt: t0.UnixMilli(), ExpiresAt: t0.Add(2 * time.Hour).UnixMilli()}
			plain, err := want.marshal()
			if err != nil {
				t.Fatal(err)
			}
			tok := run("seal", key, string(plain))
			got, err := c.Open(tok)
			if err != nil {
				t.Fatalf("Open(node token) = %v", err)
			}
			if got != want {
				t.Fatalf("Open(node token) = %v; want %v", got, want)
			}
		})
	}
}

func TestInteropGoSealsNodeOpens(t *testing.T) {
	run := testprog.NodeKKA1(t)
	key := testKey(5)
	c, _ := newTestCodec(t, key, testKey(6))
	for name, s := range interopSubjects() {
		t.Run(name, func(t *testing.T) {
			tok, err := c.Seal(s, 90*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			var got, want map[string]any
			if err := json.Unmarshal([]byte(run("open", key, tok)), &got); err != nil {
				t.Fatal(err)
			}
			wantJSON, _ := (&Claims{Subject: s, Version: 1, Purpose: Purpose,
				IssuedAt: t0.UnixMilli(), ExpiresAt: t0.Add(90 * time.Minute).UnixMilli()}).marshal()
			if err := json.Unmarshal(wantJSON, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("node opened\n%v\nwant\n%v", got, want)
			}
			if _, hasPT := got["providerToken"]; hasPT != (s.ProviderToken != "") {
				t.Fatalf("providerToken presence = %v; want %v", hasPT, s.ProviderToken != "")
			}
		})
	}
}
