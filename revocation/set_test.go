package revocation

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
)

var testNow = time.UnixMilli(1_780_000_000_000)

// testCodec seals and opens with a fixed key, its clock stopped at now.
func testCodec(t testing.TB, now time.Time) *capability.Codec {
	t.Helper()
	ring, err := capability.NewKeyRing(make([]byte, capability.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return capability.NewCodec(ring, capability.WithClock(func() time.Time { return now }))
}

// sealOpen returns a capability just sealed (tok, err) and its claims as
// open reads them, failing the test on an error of either.
func sealOpen[C any](t testing.TB, tok string, err error, open func(string) (C, error)) (string, C) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	c, err := open(tok)
	if err != nil {
		t.Fatal(err)
	}
	return tok, c
}

func sealed(t testing.TB, issued time.Time) (string, capability.Claims) {
	t.Helper()
	codec := testCodec(t, issued)
	tok, err := codec.Seal(testsupport.Subject("ctr-1", capability.Targets{
		BackendBaseURL: "https://api.example", ProviderBaseURL: "https://llm.example", SessionIngestBaseURL: "https://ingest.example",
	}), time.Hour)
	return sealOpen(t, tok, err, codec.Open)
}

func subjectOf(tok string, c capability.Claims) Subject {
	return Subject{Token: tok, UserID: c.UserID, CloudAgentSessionID: c.CloudAgentSessionID,
		KiloSessionID: c.KiloSessionID, OutboundContainerID: c.OutboundContainerID, IssuedAt: c.IssuedAt}
}

func mustEntry(t testing.TB, k Kind, v string, at time.Time) Entry {
	t.Helper()
	e, err := NewEntry(k, v, "test", "tester", at)
	if err != nil {
		t.Fatalf("NewEntry(%s): %v", k, err)
	}
	return e
}

// revokeCase is one entry (kind, value, revoked at) and what Check answers
// once it is in the set.
type revokeCase struct {
	name  string
	kind  Kind
	value string
	at    time.Time
	want  error
}

// checkEach puts each case's entry alone in a set and checks sub.
func checkEach(t *testing.T, sub Subject, tests []revokeCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSet()
			s.Add(mustEntry(t, tc.kind, tc.value, tc.at))
			if got := s.Check(sub); !errors.Is(got, tc.want) {
				t.Errorf("Check after revoking %s = %v; want %v", tc.kind, got, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	tok, c := sealed(t, testNow)
	other, _ := sealed(t, testNow)
	checkEach(t, subjectOf(tok, c), []revokeCase{
		{"capability", KindCapability, tok, testNow, ErrRevoked},
		{"capability with spaces", KindCapability, " " + tok + "\n", testNow, ErrRevoked},
		{"another capability", KindCapability, other, testNow, nil},
		{"kilo session", KindKiloSession, c.KiloSessionID, testNow, ErrRevoked},
		{"cloud agent session", KindCloudAgentSession, c.CloudAgentSessionID, testNow, ErrRevoked},
		{"container", KindOutboundContainer, c.OutboundContainerID, testNow, ErrRevoked},
		{"user", KindUser, c.UserID, testNow, ErrRevoked},
		{"user, revoked later", KindUser, c.UserID, testNow.Add(time.Hour), ErrRevoked},
		// An issuer up to capability.ClockSkew fast cannot slip a capability
		// past a subject revocation: issuedAt <= revokedAt + skew matches.
		{"user, issued just afterwards (a fast issuer)", KindUser, c.UserID, testNow.Add(-time.Millisecond), ErrRevoked},
		{"user, issued the skew afterwards", KindUser, c.UserID, testNow.Add(-capability.ClockSkew), ErrRevoked},
		{"user, issued beyond the skew afterwards", KindUser, c.UserID, testNow.Add(-capability.ClockSkew - time.Millisecond), nil},
		{"other user", KindUser, "someone-else", testNow, nil},
		{"value of another kind", KindUser, c.KiloSessionID, testNow, nil},
	})
}

func TestCheckUnavailable(t *testing.T) {
	tok, c := sealed(t, testNow)
	s := NewSet()
	s.SetUnavailable(true)
	if err := s.Check(subjectOf(tok, c)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Check on an unavailable set = %v; want ErrUnavailable", err)
	}
	s.SetUnavailable(false)
	if err := s.Check(subjectOf(tok, c)); err != nil {
		t.Fatalf("Check = %v; want nil", err)
	}
}

func TestNewEntry(t *testing.T) {
	tok, _ := sealed(t, testNow)
	// The id is the hex of the tag, the second part of kka1.<iv>:<tag>:<ct>.
	tag, err := base64.StdEncoding.DecodeString(strings.Split(tok, ":")[1])
	if err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(tag)
	e := mustEntry(t, KindCapability, tok, testNow)
	if e.Value != id || strings.Contains(fmt.Sprint(e), tok) || len(id) != 32 {
		t.Errorf("capability entry value = %q; want the id %q and never the capability", e.Value, id)
	}
	if got, want := e.ExpiresAt-e.RevokedAt, (4*time.Hour + time.Minute).Milliseconds(); got != want {
		t.Errorf("entry lifetime = %dms; want %dms", got, want)
	}
	for _, tc := range []struct {
		name         string
		kind         Kind
		value, cause string
	}{
		{"not a capability", KindCapability, "kka1.nope", ""},
		{"empty user", KindUser, "", ""},
		{"long user", KindUser, strings.Repeat("u", maxValueLen+1), ""},
		{"invalid utf-8", KindKiloSession, "\xff", ""},
		{"capability as user", KindUser, tok, ""},
		{"capability in reason", KindUser, "u", "see " + tok},
		{"unknown kind", Kind("email"), "x", ""},
	} {
		if _, err := NewEntry(tc.kind, tc.value, tc.cause, "", testNow); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewEntry(%s) = %v; want ErrInvalid", tc.name, err)
		} else if strings.Contains(err.Error(), tok) {
			t.Errorf("NewEntry(%s) error quotes the capability", tc.name)
		}
	}
}

func TestPrune(t *testing.T) {
	s := NewSet()
	tok, c := sealed(t, testNow)
	s.Add(mustEntry(t, KindUser, c.UserID, testNow), mustEntry(t, KindCapability, tok, testNow))
	if n := s.Prune(testNow.Add(EntryLifetime - time.Millisecond).UnixMilli()); n != 0 {
		t.Fatalf("Prune before expiry dropped %d", n)
	}
	if n := s.Prune(testNow.Add(EntryLifetime).UnixMilli()); n != 2 || s.Len() != 0 {
		t.Fatalf("Prune at expiry dropped %d, left %d; want 2, 0", n, s.Len())
	}
	if err := s.Check(subjectOf(tok, c)); err != nil {
		t.Fatalf("Check after prune = %v", err)
	}
}

func TestPage(t *testing.T) {
	s := NewSet()
	for i := range 25 {
		s.Add(mustEntry(t, KindUser, fmt.Sprintf("u%02d", i), testNow))
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		page, next := s.Page(cursor, 10)
		for _, e := range page {
			got = append(got, e.Value)
		}
		if next == "" {
			if pages != 2 {
				t.Errorf("pages = %d; want 3", pages+1)
			}
			break
		}
		var ok bool
		if cursor, ok = DecodeCursor(next); !ok {
			t.Fatalf("DecodeCursor(%q) failed", next)
		}
	}
	if len(got) != 25 || got[0] != "u00" || got[24] != "u24" {
		t.Errorf("paged values = %v", got)
	}
}

// TestCheckAllocs: the hot path allocates nothing.
func TestCheckAllocs(t *testing.T) {
	tok, c := sealed(t, testNow)
	s := fullSet(t, 1000)
	sub := subjectOf(tok, c)
	if n := testing.AllocsPerRun(100, func() { _ = s.Check(sub) }); n != 0 {
		t.Errorf("Check allocates %v times", n)
	}
}

// fullSet holds n entries spread over every kind.
func fullSet(t testing.TB, n int) *Set {
	s := NewSet()
	entries := make([]Entry, 0, n)
	for i := range n {
		k := Kinds[i%len(Kinds)]
		v := fmt.Sprintf("value-%d", i)
		if k == KindSubject {
			v = "userId=" + v
		}
		if k == KindCapability {
			v = fmt.Sprintf("%032x", i)
			entries = append(entries, Entry{Kind: k, Value: v, RevokedAt: testNow.UnixMilli(), ExpiresAt: testNow.Add(EntryLifetime).UnixMilli()})
			continue
		}
		entries = append(entries, mustEntry(t, k, v, testNow))
	}
	s.Add(entries...)
	return s
}

// BenchmarkCheck measures the revocation lookup of one decision with up to
// 1,000,000 live entries, spread over every kind: the budget is
// 100 ns.
func BenchmarkCheck(b *testing.B) {
	tok, c := sealed(b, testNow)
	sub := subjectOf(tok, c)
	for _, n := range []int{0, 1000, 1_000_000} {
		s := fullSet(b, n)
		runtime.GC() // the set's construction, not the lookup, made the garbage
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if s.Check(sub) != nil {
					b.Fatal("revoked")
				}
			}
		})
		b.Run(fmt.Sprintf("entries=%d/parallel", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if s.Check(sub) != nil {
						b.Error("revoked")
					}
				}
			})
		})
	}
}

// TestSetConcurrent: readers check while writers add, the table grows and
// Prune rebuilds it; a revoked subject, once added, is never missed (run
// with -race).
func TestSetConcurrent(t *testing.T) {
	s := NewSet()
	victim := mustEntry(t, KindUser, "victim", testNow.Add(2*time.Hour)) // outlives every Prune below
	s.Add(victim)
	sub := Subject{UserID: "victim", IssuedAt: testNow.UnixMilli()}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var missed atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if s.Check(sub) == nil {
					missed.Add(1)
				}
			}
		})
	}
	for i := range 20_000 {
		s.Add(mustEntry(t, Kinds[1+i%4], fmt.Sprintf("v-%d", i), testNow.Add(time.Duration(i%3)*time.Hour)))
		if i%5000 == 0 {
			s.Prune(testNow.Add(EntryLifetime).UnixMilli()) // drops the first third, never the victim
		}
	}
	close(stop)
	wg.Wait()
	if n := missed.Load(); n != 0 {
		t.Fatalf("a revoked subject was allowed %d times during growth and pruning", n)
	}
}

// TestEntryOutlivesWhatItMatches: a subject entry is kept until the last
// capability it can match (issued capability.ClockSkew after it, living
// capability.MaxLifetime) has expired.
func TestEntryOutlivesWhatItMatches(t *testing.T) {
	e := mustEntry(t, KindUser, "u-1", testNow)
	latestIssued := e.RevokedAt + int64(capability.ClockSkew/time.Millisecond)
	latestExpiry := latestIssued + int64(capability.MaxLifetime/time.Millisecond)
	if e.ExpiresAt < latestExpiry {
		t.Fatalf("entry expires at %d; a capability it matches is valid until %d", e.ExpiresAt, latestExpiry)
	}
	s := NewSet()
	s.Add(e)
	s.Prune(latestExpiry - 1)
	if err := s.Check(Subject{UserID: "u-1", IssuedAt: latestIssued}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("just before the last matched capability expires: Check = %v; want ErrRevoked", err)
	}
}

// TestPageIndex pages through a set built by every path that changes it
// (single adds, a bulk load, updates, a prune, a replace) and compares with
// the entries sorted afresh.
func TestPageIndex(t *testing.T) {
	s := NewSet()
	for i := range 50 {
		s.Add(mustEntry(t, KindUser, fmt.Sprintf("u%03d", 97*i%50), testNow))
	}
	var bulk []Entry
	for i := range 500 {
		bulk = append(bulk, mustEntry(t, KindKiloSession, fmt.Sprintf("s%04d", 7919*i%500), testNow.Add(time.Duration(i)*time.Second)))
	}
	s.Add(bulk...)
	s.Add(mustEntry(t, KindUser, "u007", testNow.Add(time.Minute))) // an update, not a new key
	s.Prune(testNow.Add(EntryLifetime + 100*time.Second).UnixMilli())
	check := func(when string) {
		t.Helper()
		want := s.Entries()
		slices.SortFunc(want, func(a, b Entry) int { return strings.Compare(a.key(), b.key()) })
		var got []Entry
		for cursor := ""; ; {
			page, next := s.Page(cursor, 37)
			got = append(got, page...)
			if next == "" {
				break
			}
			cursor, _ = DecodeCursor(next)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: paged %d entries, want %d in order", when, len(got), len(want))
		}
	}
	check("after adds and a prune")
	s.Replace(bulk[:100])
	check("after a replace")
}

// TestPageDoesNotSortTheSet: a page of a large set costs its own entries
// (one allocation for the page, one for the cursor), not a copy and sort of
// everything after the cursor.
func TestPageDoesNotSortTheSet(t *testing.T) {
	s := NewSet()
	var bulk []Entry
	for i := range 100_000 {
		bulk = append(bulk, mustEntry(t, KindUser, fmt.Sprintf("user-%06d", i), testNow))
	}
	s.Add(bulk...)
	if n := testing.AllocsPerRun(20, func() { s.Page("", 100) }); n > 3 {
		t.Fatalf("Page over 100,000 entries: %.0f allocations; want at most 3", n)
	}
}

// BenchmarkPage pages 100 entries at a time through a million.
func BenchmarkPage(b *testing.B) {
	s := NewSet()
	bulk := make([]Entry, 0, 1_000_000)
	for i := range cap(bulk) {
		bulk = append(bulk, mustEntry(b, KindUser, fmt.Sprintf("user-%07d", i), testNow))
	}
	s.Add(bulk...)
	cursor := ""
	b.ReportAllocs()
	for b.Loop() {
		_, next := s.Page(cursor, 100)
		cursor, _ = DecodeCursor(next)
	}
}
