package revocation

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/internal/testutil/testprog"
)

func openRedis(t testing.TB, url string, maxStale time.Duration) *RedisStore {
	t.Helper()
	s, err := OpenRedisStore(RedisOptions{URL: url, MaxStaleness: maxStale, ResyncInterval: time.Second, Heartbeat: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// replicas are three stores on one Redis, as three extauthz replicas hold.
func replicas(t testing.TB, r *testprog.Redis, maxStale time.Duration) []*RedisStore {
	t.Helper()
	rs := []*RedisStore{openRedis(t, r.URL(), maxStale), openRedis(t, r.URL(), maxStale), openRedis(t, r.URL(), maxStale)}
	for i, s := range rs {
		waitFor(t, fmt.Sprintf("replica %d ready", i), 10*time.Second, s.Ready)
	}
	return rs
}

// propagation revokes n users through replica 0 and measures, for each,
// the time from the call until all three replicas deny.
func propagation(t testing.TB, rs []*RedisStore, n int) (p50, p99, worst time.Duration) {
	t.Helper()
	times := make([]time.Duration, 0, n)
	for i := range n {
		user := fmt.Sprintf("prop-%d-%d", time.Now().UnixNano(), i)
		sub := Subject{UserID: user, IssuedAt: time.Now().UnixMilli() - 1000}
		e := mustEntry(t, KindUser, user, time.Now())
		start := time.Now()
		if err := rs[0].Revoke(e); err != nil {
			t.Fatal(err)
		}
		for _, s := range rs {
			for !errors.Is(s.Set().Check(sub), ErrRevoked) {
				if time.Since(start) > 10*time.Second {
					t.Fatalf("revocation %d not seen by a replica after 10 s", i)
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	return times[n/2], times[(n*99)/100], times[n-1]
}

// TestRedisPropagation: a revocation made through one replica is enforced
// by all three; p50/p99 over EXTAUTHZ_PROPAGATION_N revocations (200 by
// default; BENCHMARKS.md records a 1,000 run).
func TestRedisPropagation(t *testing.T) {
	n := 200
	if v, err := strconv.Atoi(os.Getenv("EXTAUTHZ_PROPAGATION_N")); err == nil && v > 0 {
		n = v
	}
	r := testprog.StartRedis(t)
	rs := replicas(t, r, time.Minute)
	p50, p99, worst := propagation(t, rs, n)
	t.Logf("propagation to 3 replicas over %d revocations: p50 %v, p99 %v, max %v", n, p50, p99, worst)
	if p99 > time.Second { // the target is 100 ms; a loaded CI machine gets slack
		t.Errorf("p99 propagation %v; want well under 1 s (target 100 ms)", p99)
	}
}

// TestRedisKilledAndRestarted: with Redis killed under load no revoked
// capability is ever allowed; replicas go on deciding with the last set,
// fail closed after the maximum staleness, and recover, without a restart,
// once Redis is back: a revocation made after the restart reaches all three.
func TestRedisKilledAndRestarted(t *testing.T) {
	r := testprog.StartRedis(t)
	const maxStale = 500 * time.Millisecond
	rs := replicas(t, r, maxStale)
	revoked := Subject{UserID: "victim", IssuedAt: time.Now().UnixMilli() - 1000}
	if err := rs[0].Revoke(mustEntry(t, KindUser, "victim", time.Now())); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first revocation everywhere", 5*time.Second, func() bool {
		for _, s := range rs {
			if !errors.Is(s.Set().Check(revoked), ErrRevoked) {
				return false
			}
		}
		return true
	})

	// Load: every replica checks the revoked subject and an innocent one
	// without pause; a nil answer for the revoked one is a failure.
	var allowedRevoked, unavailable atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			innocent := Subject{UserID: "innocent", IssuedAt: time.Now().UnixMilli()}
			for {
				select {
				case <-stop:
					return
				default:
				}
				if s.Set().Check(revoked) == nil {
					allowedRevoked.Add(1)
				}
				if errors.Is(s.Set().Check(innocent), ErrUnavailable) {
					unavailable.Add(1)
				}
			}
		}()
	}

	r.Kill()
	if err := rs[1].Revoke(mustEntry(t, KindUser, "during-outage", time.Now())); err == nil {
		t.Errorf("Revoke with Redis down succeeded; want an error (nothing is durable)")
	}
	waitFor(t, "fail closed after the maximum staleness", 10*time.Second, func() bool {
		for _, s := range rs {
			if s.Ready() || s.Staleness() <= maxStale {
				return false
			}
		}
		return unavailable.Load() > 0
	})
	r.Start(t)
	waitFor(t, "recovery without restart", 20*time.Second, func() bool {
		for _, s := range rs {
			if !s.Ready() || s.Set().Check(Subject{UserID: "innocent", IssuedAt: time.Now().UnixMilli()}) != nil {
				return false
			}
		}
		return true
	})
	after := mustEntry(t, KindUser, "after-restart", time.Now())
	if err := rs[2].Revoke(after); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a revocation after the restart everywhere", 5*time.Second, func() bool {
		for _, s := range rs {
			if !errors.Is(s.Set().Check(Subject{UserID: "after-restart", IssuedAt: after.RevokedAt}), ErrRevoked) {
				return false
			}
		}
		return true
	})
	close(stop)
	wg.Wait()
	if n := allowedRevoked.Load(); n != 0 {
		t.Fatalf("a revoked capability was allowed %d times", n)
	}
}

// TestRedisDownNotReady: a replica started while Redis is down is not
// ready and fails closed; it loads the set and becomes ready once Redis
// starts, without a restart.
func TestRedisDownNotReady(t *testing.T) {
	r := testprog.StartRedis(t)
	seed := openRedis(t, r.URL(), time.Minute)
	waitFor(t, "seed ready", 10*time.Second, seed.Ready)
	if err := seed.Revoke(mustEntry(t, KindUser, "old", time.Now())); err != nil {
		t.Fatal(err)
	}
	seed.Close()
	r.Kill()

	s := openRedis(t, r.URL(), time.Minute)
	time.Sleep(300 * time.Millisecond) // several heartbeats: it must stay not ready
	sub := Subject{UserID: "someone", IssuedAt: time.Now().UnixMilli()}
	if s.Ready() || !errors.Is(s.Set().Check(sub), ErrUnavailable) {
		t.Fatalf("with Redis down: Ready %v, Check %v; want not ready, ErrUnavailable", s.Ready(), s.Set().Check(sub))
	}
	r.Start(t) // the append-only file brings "old" back
	waitFor(t, "ready once Redis is up", 20*time.Second, s.Ready)
	old := Subject{UserID: "old", IssuedAt: time.Now().UnixMilli() - 60_000}
	waitFor(t, "the entry written before the outage enforced", 5*time.Second, func() bool {
		return errors.Is(s.Set().Check(old), ErrRevoked)
	})
}

// BenchmarkRedisPropagation reports the p50/p99 time until three replicas
// deny a revocation made through one, over b.N revocations.
func BenchmarkRedisPropagation(b *testing.B) {
	r := testprog.StartRedis(b)
	rs := replicas(b, r, time.Minute)
	b.ResetTimer()
	p50, p99, _ := propagation(b, rs, max(b.N, 2))
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
}

// TestRedisStalenessIgnoresWallClock: with Redis down and the wall clock
// stepped back an hour, the set still goes stale after MaxStaleness and
// Check fails closed (staleness is measured on the monotonic clock).
func TestRedisStalenessIgnoresWallClock(t *testing.T) {
	r := testprog.StartRedis(t)
	var offset atomic.Int64
	s, err := OpenRedisStore(RedisOptions{
		URL: r.URL(), MaxStaleness: 300 * time.Millisecond, ResyncInterval: time.Second, Heartbeat: 50 * time.Millisecond,
		Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	waitFor(t, "ready", 10*time.Second, s.Ready)
	r.Kill()
	offset.Store(int64(-time.Hour))
	sub := Subject{UserID: "someone", IssuedAt: time.Now().Add(-time.Hour).UnixMilli()}
	waitFor(t, "fail closed with the wall clock stepped back", 10*time.Second, func() bool {
		return !s.Ready() && errors.Is(s.Set().Check(sub), ErrUnavailable)
	})
}

// TestRedisStalenessClockBackwards: a monotonic reading below the last
// fresh one (a broken clock) counts as stale, never as fresh.
func TestRedisStalenessClockBackwards(t *testing.T) {
	var now atomic.Int64
	s := &RedisStore{opts: RedisOptions{MaxStaleness: time.Minute, Monotonic: func() time.Duration { return time.Duration(now.Load()) }}}
	now.Store(int64(10 * time.Second))
	s.lastFresh.Store(int64(10*time.Second) + 1)
	if d := s.Staleness(); d != 0 || s.stale() {
		t.Fatalf("just fresh: Staleness %v, stale %v; want 0, false", d, s.stale())
	}
	now.Store(int64(5 * time.Second))
	if !s.stale() {
		t.Fatalf("clock ran backwards: Staleness %v, not stale; want stale", s.Staleness())
	}
}

// TestRedisFlushWrittenBack: after FLUSHALL, the running replicas write
// their live entries back, so that a replica started afterwards denies
// what was revoked; the repair is counted.
func TestRedisFlushWrittenBack(t *testing.T) {
	r := testprog.StartRedis(t)
	rs := replicas(t, r, time.Minute)[:2]
	var repaired atomic.Int64
	e := mustEntry(t, KindUser, "victim", time.Now())
	if err := rs[0].Revoke(e); err != nil {
		t.Fatal(err)
	}
	revoked := Subject{UserID: "victim", IssuedAt: e.RevokedAt - 1000}
	waitFor(t, "the revocation everywhere", 5*time.Second, func() bool {
		return errors.Is(rs[1].Set().Check(revoked), ErrRevoked)
	})
	ro, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(ro)
	defer c.Close()
	if err := c.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a replica writes the lost entry back", 10*time.Second, func() bool {
		return rs[0].Repairs()+rs[1].Repairs() > 0
	})
	late, err := OpenRedisStore(RedisOptions{URL: r.URL(), MaxStaleness: time.Minute, ResyncInterval: time.Second, Heartbeat: 50 * time.Millisecond,
		OnRepair: func(n int) { repaired.Add(int64(n)) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { late.Close() })
	waitFor(t, "the late replica ready", 10*time.Second, late.Ready)
	if err := late.Set().Check(revoked); !errors.Is(err, ErrRevoked) {
		t.Fatalf("a replica started after FLUSHALL: Check = %v; want ErrRevoked", err)
	}
	if repaired.Load() != 0 {
		t.Errorf("the late replica repaired %d entries; it had none to write back", repaired.Load())
	}
}

// TestRedisReachabilityOncePerChange: OnReachable hears one "down" for a
// whole outage and one "up" when Redis is back, not one per heartbeat.
func TestRedisReachabilityOncePerChange(t *testing.T) {
	r := testprog.StartRedis(t)
	var mu sync.Mutex
	var changes []bool
	s, err := OpenRedisStore(RedisOptions{URL: r.URL(), MaxStaleness: 200 * time.Millisecond, ResyncInterval: time.Second, Heartbeat: 50 * time.Millisecond,
		OnReachable: func(up bool, _ string, _ error) { mu.Lock(); changes = append(changes, up); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	waitFor(t, "ready", 10*time.Second, s.Ready)
	r.Kill()
	time.Sleep(time.Second) // twenty heartbeats, past the maximum staleness
	r.Start(t)
	waitFor(t, "ready again", 20*time.Second, s.Ready)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(changes, []bool{true, false, true}) {
		t.Fatalf("reachability changes = %v; want [true false true] (up, down once, up once)", changes)
	}
}
