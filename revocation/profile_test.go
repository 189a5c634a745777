package revocation

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/testprog"
)

// sealedProfile seals and opens a profile capability issued at issued,
// bound to ctr-p, for the subject ids given.
func sealedProfile(t testing.TB, issued time.Time, subject map[string]string) (string, capability.ProfileClaims) {
	t.Helper()
	codec := testCodec(t, issued)
	tok, err := codec.SealProfile(capability.ProfileSubject{Profile: "github", OutboundContainerID: "ctr-p", Subject: subject,
		Vars: map[string]string{"owner": "acme"}, Credentials: map[string]string{"token": "SECRET-profile-credential"}}, time.Hour)
	return sealOpen(t, tok, err, codec.OpenProfile)
}

// profileSubjectOf is what the decision path hands Check for a profile
// capability.
func profileSubjectOf(tok string, c capability.ProfileClaims) Subject {
	return Subject{Token: tok, OutboundContainerID: c.OutboundContainerID, Subjects: c.Subject, IssuedAt: c.IssuedAt}
}

var profileIDs = map[string]string{"userId": "u-1", "tenant": "t-9", "sessionId": "s-3"}

// TestCheckProfileCapability: a profile capability is revoked by its own
// id, its container or any one of its subject ids, under the skew rule of
// the other subject kinds, and by nothing else.
func TestCheckProfileCapability(t *testing.T) {
	tok, c := sealedProfile(t, testNow, profileIDs)
	other, _ := sealedProfile(t, testNow, profileIDs)
	kka1, _ := sealed(t, testNow)
	checkEach(t, profileSubjectOf(tok, c), []revokeCase{
		{"capability", KindCapability, tok, testNow, ErrRevoked},
		{"capability with spaces", KindCapability, "\t" + tok + "\n", testNow, ErrRevoked},
		{"another profile capability", KindCapability, other, testNow, nil},
		{"a kka1 capability", KindCapability, kka1, testNow, nil},
		{"container", KindOutboundContainer, "ctr-p", testNow, ErrRevoked},
		{"other container", KindOutboundContainer, "ctr-q", testNow, nil},
		{"subject userId", KindSubject, "userId=u-1", testNow, ErrRevoked},
		{"subject tenant", KindSubject, "tenant=t-9", testNow, ErrRevoked},
		{"subject sessionId", KindSubject, "sessionId=s-3", testNow, ErrRevoked},
		{"subject revoked later", KindSubject, "tenant=t-9", testNow.Add(time.Hour), ErrRevoked},
		{"subject, issued the skew afterwards", KindSubject, "tenant=t-9", testNow.Add(-capability.ClockSkew), ErrRevoked},
		{"subject, issued beyond the skew afterwards", KindSubject, "tenant=t-9", testNow.Add(-capability.ClockSkew - time.Millisecond), nil},
		{"another user", KindSubject, "userId=u-2", testNow, nil},
		{"the value under another key", KindSubject, "tenant=u-1", testNow, nil},
		{"the key in another case", KindSubject, "userid=u-1", testNow, nil},
		{"a value that extends one", KindSubject, "userId=u-1x", testNow, nil},
		// userId is a kka1 claim: a profile capability's ids are revoked
		// with KindSubject.
		{"kka1 userId kind", KindUser, "u-1", testNow, nil},
	})
}

// TestSubjectEntryAndKKA1: a subject entry never matches a kka1
// capability (which has no subject map), whatever its claims say.
func TestSubjectEntryAndKKA1(t *testing.T) {
	tok, c := sealed(t, testNow)
	s := NewSet()
	for _, v := range []string{"userId=" + c.UserID, "kiloSessionId=" + c.KiloSessionID, "outboundContainerId=" + c.OutboundContainerID} {
		s.Add(mustEntry(t, KindSubject, v, testNow))
	}
	if err := s.Check(subjectOf(tok, c)); err != nil {
		t.Fatalf("Check(kka1) with subject entries only = %v; want nil", err)
	}
}

// TestProfileCapabilityID: an entry made from an eac1 capability keeps its
// id, the hex of the GCM tag it carries, as for kka1; and a profile
// capability and a kka1 capability never share an id.
func TestProfileCapabilityID(t *testing.T) {
	tok, _ := sealedProfile(t, testNow, nil)
	tag, err := base64.StdEncoding.DecodeString(strings.Split(tok, ":")[1])
	if err != nil {
		t.Fatal(err)
	}
	e := mustEntry(t, KindCapability, tok, testNow)
	if e.Value != hex.EncodeToString(tag) || strings.Contains(fmt.Sprint(e), tok) {
		t.Fatalf("entry of an eac1 capability = %q; want its tag %x, never the capability", e.Value, tag)
	}
	seen := map[string]bool{}
	for i := range 50 {
		p, _ := sealedProfile(t, testNow, nil)
		k, _ := sealed(t, testNow)
		for _, c := range []string{p, k} {
			id := mustEntry(t, KindCapability, c, testNow).Value
			if seen[id] {
				t.Fatalf("round %d: two capabilities share the id %s", i, id)
			}
			seen[id] = true
		}
	}
}

// TestPairFingerprint: Check's fingerprint of a subject pair is the one
// Add stores for the entry key=value.
func TestPairFingerprint(t *testing.T) {
	s := NewSet()
	for _, kv := range [][2]string{{"userId", "u-1"}, {"a", "="}, {"tenant", strings.Repeat("é", 300)}} {
		if got, want := s.pairFingerprint(kv[0], kv[1]), s.fingerprint(subjectIndex, kv[0]+"="+kv[1]); got != want {
			t.Errorf("pairFingerprint(%q, %q) = %x; want %x", kv[0], kv[1], got, want)
		}
	}
	if Kinds[subjectIndex] != KindSubject {
		t.Fatalf("Kinds[subjectIndex] = %s; want subject", Kinds[subjectIndex])
	}
}

func TestNewSubjectEntry(t *testing.T) {
	tok, _ := sealedProfile(t, testNow, nil)
	if e := mustEntry(t, KindSubject, "tenant=a=b", testNow); e.Value != "tenant=a=b" || !e.valid() {
		t.Errorf("NewEntry(subject tenant=a=b) = %+v; want the value kept, the key up to the first '='", e)
	}
	for _, tc := range []struct{ name, value, reason string }{
		{"no '='", "userId", ""},
		{"empty key", "=u-1", ""},
		{"empty value", "userId=", ""},
		{"key starting with a digit", "1user=u", ""},
		{"key with a space", "user id=u", ""},
		{"key too long", strings.Repeat("k", 64) + "=u", ""},
		{"value too long", "userId=" + strings.Repeat("u", maxValueLen+1), ""},
		{"invalid UTF-8", "userId=\xff", ""},
		{"a profile capability as the value", "userId=" + tok, ""},
		{"a profile capability in the reason", "userId=u", "see " + tok},
	} {
		if _, err := NewEntry(KindSubject, tc.value, tc.reason, "", testNow); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewEntry(subject, %s) = %v; want ErrInvalid", tc.name, err)
		} else if strings.Contains(err.Error(), tok) || (tc.value != "" && strings.Contains(err.Error(), tc.value)) {
			t.Errorf("NewEntry(subject, %s): the error quotes the value", tc.name)
		}
	}
	if _, err := NewEntry(KindUser, tok, "", "", testNow); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewEntry(user, an eac1 capability) = %v; want ErrInvalid", err)
	}
	for _, v := range []string{"userId", "1a=b", "a=", ""} {
		if (Entry{Kind: KindSubject, Value: v}).valid() {
			t.Errorf("a stored subject entry %q is valid", v)
		}
	}
}

// TestFileStoreProfileKinds: subject entries and entries of eac1
// capabilities survive a reopen of the file and still revoke.
func TestFileStoreProfileKinds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revocations")
	now := func() time.Time { return testNow }
	tok, c := sealedProfile(t, testNow, profileIDs)
	byID, _ := sealedProfile(t, testNow, map[string]string{"userId": "innocent"})
	revokeInFile(t, path, now, mustEntry(t, KindSubject, "tenant=t-9", testNow), mustEntry(t, KindCapability, byID, testNow))
	s := reopenFile(t, path, now, 2)
	_, innocent := sealedProfile(t, testNow, map[string]string{"userId": "innocent"})
	for name, tc := range map[string]struct {
		sub  Subject
		want error
	}{
		"by subject":        {profileSubjectOf(tok, c), ErrRevoked},
		"by id":             {profileSubjectOf(byID, innocent), ErrRevoked},
		"neither":           {Subject{Token: "eac1.x", Subjects: innocent.Subject, IssuedAt: innocent.IssuedAt}, nil},
		"the subject's key": {Subject{Subjects: map[string]string{"userId": "t-9"}, IssuedAt: c.IssuedAt}, nil},
	} {
		if err := s.Set().Check(tc.sub); !errors.Is(err, tc.want) {
			t.Errorf("%s after reopen: Check = %v; want %v", name, err, tc.want)
		}
	}
}

// TestCheckAllocsProfile: checking a profile capability's subject ids
// allocates nothing either.
func TestCheckAllocsProfile(t *testing.T) {
	tok, c := sealedProfile(t, testNow, profileIDs)
	s := fullSet(t, 1000)
	sub := profileSubjectOf(tok, c)
	if err := s.Check(sub); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = s.Check(sub) }); n != 0 {
		t.Errorf("Check allocates %v times", n)
	}
}

// TestRedisProfileKinds: a subject entry and an eac1 capability's entry
// made through one replica reach the others by announcement and a replica
// started afterwards by its full load, and revoke there.
func TestRedisProfileKinds(t *testing.T) {
	r := testprog.StartRedis(t)
	rs := replicas(t, r, time.Minute)[:2]
	tok, c := sealedProfile(t, time.Now(), profileIDs)
	byID, innocent := sealedProfile(t, time.Now(), map[string]string{"userId": "innocent"})
	for _, e := range []Entry{mustEntry(t, KindSubject, "sessionId=s-3", time.Now()), mustEntry(t, KindCapability, byID, time.Now())} {
		if err := rs[0].Revoke(e); err != nil {
			t.Fatal(err)
		}
	}
	revoked := func(s *RedisStore) bool {
		return errors.Is(s.Set().Check(profileSubjectOf(tok, c)), ErrRevoked) &&
			errors.Is(s.Set().Check(profileSubjectOf(byID, innocent)), ErrRevoked)
	}
	waitFor(t, "both revocations on the other replica", 5*time.Second, func() bool { return revoked(rs[1]) })
	late := openRedis(t, r.URL(), time.Minute)
	waitFor(t, "the late replica ready", 10*time.Second, late.Ready)
	if !revoked(late) {
		t.Fatalf("a replica started afterwards does not revoke by subject and by eac1 id")
	}
	if err := late.Set().Check(Subject{Token: "eac1.x", Subjects: innocent.Subject, IssuedAt: innocent.IssuedAt}); err != nil {
		t.Fatalf("an innocent profile capability: Check = %v; want nil", err)
	}
}

// BenchmarkCheckProfile is BenchmarkCheck for a profile capability with
// three subject ids, every kind revoked somewhere in the set.
func BenchmarkCheckProfile(b *testing.B) {
	tok, c := sealedProfile(b, testNow, profileIDs)
	sub := profileSubjectOf(tok, c)
	for _, n := range []int{0, 1000, 1_000_000} {
		s := fullSet(b, n)
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if s.Check(sub) != nil {
					b.Fatal("revoked")
				}
			}
		})
	}
}
