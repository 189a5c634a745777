package revocation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/redis/go-redis/v9"
)

// Redis keys: a sorted set of JSON entries scored by expiry, and the channel
// that announces each new entry.
const (
	redisKey     = "extauthz:revocations"
	redisChannel = "extauthz:revocations"
)

// RedisOptions configure a RedisStore.
type RedisOptions struct {
	// URL is redis://[user:password@]host:port[/db] or rediss://… for TLS.
	URL string
	// Password, when set, is asked for the AUTH password each time a
	// connection is made, and replaces the URL's: a password read from a
	// mounted secret that changes applies from the next connection, while
	// established connections stay authenticated.
	Password func() string
	// RootCAs, when set, is asked for the CA pool that verifies a rediss://
	// server each time a connection is made (a CA bundle read from a
	// mounted secret that changes); nil: the system's pool.
	RootCAs func() *x509.CertPool
	// MaxStaleness is how long Check goes on deciding with the last known
	// set after losing Redis; then it fails closed. 0 means 60 s.
	MaxStaleness time.Duration
	// ResyncInterval is the period of the full resync that heals missed
	// messages. 0 means 30 s.
	ResyncInterval time.Duration
	// Heartbeat is how often the subscription is probed. 0 means 250 ms.
	Heartbeat time.Duration
	// Now is the wall clock, for expiry; nil means time.Now.
	Now func() time.Time
	// Monotonic is the clock staleness is measured with: the time elapsed
	// since a fixed origin, never stepped by NTP or an operator (a wall
	// clock stepped back would make the set look fresh forever). nil means
	// the process's monotonic clock.
	Monotonic func() time.Duration
	// OnError is told of each failure to reach Redis (for debug logs); may
	// be nil.
	OnError func(what string, err error)
	// OnReachable is told each change of reachability, once per change:
	// false with the failing operation and its error when Redis stops
	// answering, true when it answers again (and when it first answers).
	// May be nil.
	OnReachable func(reachable bool, what string, err error)
	// OnRepair is told when a full load found entries missing from Redis
	// that this replica holds (Redis flushed, or restarted without
	// persistence) and wrote them back: n entries. May be nil.
	OnRepair func(n int)
}

// RedisStore shares revocations between replicas through Redis. Every
// replica holds the full set in memory: Revoke writes the entry (a sorted
// set member scored by its expiry) and publishes it in one transaction;
// every replica adds what it hears on the channel, reloads the full set each
// time its subscription is (re)established and every ResyncInterval, and
// counts as fresh while its subscription answers. A replica that has not
// been fresh for MaxStaleness fails closed (Check returns ErrUnavailable)
// until it is again; it is not Ready before its first full load.
type RedisStore struct {
	set    *Set
	client *redis.Client
	opts   RedisOptions
	cancel context.CancelFunc
	wg     sync.WaitGroup

	loaded    atomic.Bool
	lastFresh atomic.Int64 // Monotonic() in nanoseconds, plus 1; 0: never
	subEpoch  atomic.Int64 // subscriptions established
	synced    atomic.Int64 // the epoch a full load completed for
	reachable atomic.Int32 // reachUnknown, reachUp or reachDown
	repairs   atomic.Int64 // entries written back to Redis
}

// Reachability states, for OnReachable.
const (
	reachUnknown = iota
	reachUp
	reachDown
)

// OpenRedisStore starts a store on Redis. It does not wait for Redis: a
// replica started while Redis is down runs, not Ready and failing closed,
// and loads the set once Redis answers. Errors name the setting, never the
// URL (it may hold a password).
func OpenRedisStore(opts RedisOptions) (*RedisStore, error) {
	ro, err := redis.ParseURL(opts.URL)
	if err != nil {
		return nil, errors.New("revocation store: not a redis:// or rediss:// URL")
	}
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = 2*time.Second, 5*time.Second, 5*time.Second
	if opts.Password != nil {
		user := ro.Username
		ro.CredentialsProvider = func() (string, string) { return user, opts.Password() }
	}
	if opts.RootCAs != nil {
		if ro.TLSConfig == nil {
			return nil, errors.New("revocation store: a CA bundle needs a rediss:// URL")
		}
		ro.Dialer = tlsDialer(ro.TLSConfig, ro.DialTimeout, opts.RootCAs)
	}
	if opts.MaxStaleness <= 0 {
		opts.MaxStaleness = 60 * time.Second
	}
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = 30 * time.Second
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 250 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Monotonic == nil {
		origin := time.Now()
		opts.Monotonic = func() time.Duration { return time.Since(origin) }
	}
	if opts.OnError == nil {
		opts.OnError = func(string, error) {}
	}
	if opts.OnReachable == nil {
		opts.OnReachable = func(bool, string, error) {}
	}
	if opts.OnRepair == nil {
		opts.OnRepair = func(int) {}
	}
	quietClient.Do(func() { redis.SetLogger(quietLogger{}) })
	ro.MaxRetries = 1
	s := &RedisStore{set: NewSet(), client: redis.NewClient(ro), opts: opts}
	s.set.SetUnavailable(true) // nothing is known yet: fail closed
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(3)
	go s.subscribe(ctx)
	go s.resyncLoop(ctx)
	go s.watch(ctx)
	return s, nil
}

// quietLogger silences go-redis's own log lines (a dial failure every
// heartbeat while Redis is down); the store reports through OnError.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

var quietClient sync.Once

// tlsDialer dials TLS with base, verifying the server against the pool
// rootCAs gives at that moment.
func tlsDialer(base *tls.Config, timeout time.Duration, rootCAs func() *x509.CertPool) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cfg := base.Clone()
		cfg.RootCAs = rootCAs()
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: cfg}
		return d.DialContext(ctx, network, addr)
	}
}

// Set implements Store.
func (s *RedisStore) Set() *Set { return s.set }

// Ready reports whether the full set has been loaded at least once and the
// store is not failing closed.
func (s *RedisStore) Ready() bool { return s.loaded.Load() && !s.stale() }

// Staleness is how long ago the set was last known to be complete, on the
// monotonic clock. Never loaded, or a clock that ran backwards, is the
// largest staleness: fail closed.
func (s *RedisStore) Staleness() time.Duration {
	last := s.lastFresh.Load()
	if last == 0 {
		return time.Duration(math.MaxInt64)
	}
	d := s.opts.Monotonic() - time.Duration(last-1)
	if d < 0 {
		return time.Duration(math.MaxInt64)
	}
	return d
}

// Repairs is how many entries this replica wrote back to Redis after
// finding them missing there.
func (s *RedisStore) Repairs() int64 { return s.repairs.Load() }

// failed reports a failure to reach Redis: to OnError every time, to
// OnReachable on the change to unreachable only.
func (s *RedisStore) failed(what string, err error) {
	s.opts.OnError(what, err)
	if s.reachable.Swap(reachDown) != reachDown {
		s.opts.OnReachable(false, what, err)
	}
}

// answered records that Redis answered; OnReachable hears of the change.
func (s *RedisStore) answered() {
	if s.reachable.Swap(reachUp) != reachUp {
		s.opts.OnReachable(true, "", nil)
	}
}

// MaxStaleness is the staleness beyond which Check fails closed.
func (s *RedisStore) MaxStaleness() time.Duration { return s.opts.MaxStaleness }

func (s *RedisStore) stale() bool { return s.Staleness() > s.opts.MaxStaleness }

// Revoke implements Store: the entry is in Redis (and announced) before it
// returns, and in this replica's set.
func (s *RedisStore) Revoke(e Entry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, redisKey, redis.Z{Score: float64(e.ExpiresAt), Member: string(data)})
		p.ZRemRangeByScore(ctx, redisKey, "-inf", strconv.FormatInt(s.opts.Now().UnixMilli(), 10))
		p.Publish(ctx, redisChannel, string(data))
		return nil
	})
	if err != nil {
		return fmt.Errorf("revocation store: %w", err)
	}
	s.set.Add(e)
	return nil
}

// fresh records that the set is complete now, if a full load has completed
// for the current subscription.
func (s *RedisStore) fresh() {
	s.answered()
	if s.synced.Load() == s.subEpoch.Load() && s.loaded.Load() {
		s.lastFresh.Store(int64(s.opts.Monotonic()) + 1)
		s.set.SetUnavailable(false)
	}
}

// subscribe receives the channel, probing it every Heartbeat; go-redis
// reconnects and resubscribes after an error, and each (re)subscription
// starts a full load, since messages may have been missed meanwhile.
func (s *RedisStore) subscribe(ctx context.Context) {
	defer s.wg.Done()
	ps := s.client.Subscribe(ctx, redisChannel)
	defer ps.Close()
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, s.opts.Heartbeat)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				if err := ps.Ping(ctx); err != nil {
					s.failed("ping", err)
				}
				continue
			}
			s.failed("subscription", err)
			select { // go-redis reconnects on the next receive
			case <-ctx.Done():
			case <-time.After(s.opts.Heartbeat):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			epoch := s.subEpoch.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.load(ctx, epoch)
			}()
		case *redis.Message:
			var e Entry
			if json.Unmarshal([]byte(m.Payload), &e) == nil {
				s.set.Add(e)
			}
			s.fresh()
		case *redis.Pong:
			s.fresh()
		}
	}
}

// load reads the full set and merges it in (revocations are only ever
// added; expiry prunes), retrying until it succeeds or a newer subscription
// takes over.
func (s *RedisStore) load(ctx context.Context, epoch int64) {
	for ctx.Err() == nil && s.subEpoch.Load() == epoch {
		if err := s.resync(ctx); err != nil {
			s.failed("full load", err)
			select {
			case <-ctx.Done():
			case <-time.After(s.opts.Heartbeat):
			}
			continue
		}
		s.loaded.Store(true)
		if s.subEpoch.Load() == epoch {
			s.synced.Store(epoch)
			s.fresh()
		}
		return
	}
}

// resync merges every live entry in Redis into the set and prunes. When
// Redis holds fewer live entries than this replica (it was flushed, or
// restarted without persistence), the ones it lacks are written back first,
// so that a replica started later does not allow what was revoked.
func (s *RedisStore) resync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	now := s.opts.Now().UnixMilli()
	members, err := s.client.ZRangeByScore(ctx, redisKey, &redis.ZRangeBy{Min: "(" + strconv.FormatInt(now, 10), Max: "+inf"}).Result()
	if err != nil {
		return err
	}
	s.set.Prune(now)
	if s.set.Len() > len(members) {
		if err := s.writeBack(ctx, members); err != nil {
			return err
		}
	}
	entries := make([]Entry, 0, len(members))
	for _, m := range members {
		var e Entry
		if json.Unmarshal([]byte(m), &e) == nil {
			entries = append(entries, e)
		}
	}
	s.set.Add(entries...)
	s.set.Prune(now)
	return nil
}

// writeBack adds to Redis every live entry of the set that members (what
// Redis holds) lacks, in one transaction, and reports how many.
func (s *RedisStore) writeBack(ctx context.Context, members []string) error {
	have := make(map[string]struct{}, len(members))
	for _, m := range members {
		have[m] = struct{}{}
	}
	var missing []redis.Z
	for _, e := range s.set.Entries() {
		data, err := json.Marshal(e)
		if err != nil {
			continue
		}
		if _, ok := have[string(data)]; !ok {
			missing = append(missing, redis.Z{Score: float64(e.ExpiresAt), Member: string(data)})
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := s.client.ZAdd(ctx, redisKey, missing...).Err(); err != nil {
		return err
	}
	s.repairs.Add(int64(len(missing)))
	s.opts.OnRepair(len(missing))
	return nil
}

// resyncLoop heals missed messages every ResyncInterval.
func (s *RedisStore) resyncLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.ResyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.resync(ctx); err != nil {
				s.failed("resync", err)
			}
		}
	}
}

// watch makes Check fail closed while the set is staler than MaxStaleness
// (or was never loaded), and decide again once it is fresh.
func (s *RedisStore) watch(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.Heartbeat / 2)
	defer t.Stop()
	for {
		s.set.SetUnavailable(!s.loaded.Load() || s.stale())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close implements Store.
func (s *RedisStore) Close() error {
	s.cancel()
	err := s.client.Close()
	s.wg.Wait()
	return err
}
