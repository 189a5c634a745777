package server

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/extauthz/extauthz/revocation"
)

// revocationPruneInterval is how often expired revocations are dropped.
const revocationPruneInterval = time.Minute

// The revocation stores serve can keep revocations in.
const (
	storeMemory = "memory" // this process only: lost on restart, unseen by other replicas
	storeFile   = "file"   // --revocation-file: one replica's, durable
	storeRedis  = "redis"  // redis:// or rediss://: shared by every replica
)

// revocationStoreUsage is the help text of --revocation-store: its grammar.
const revocationStoreUsage = "where revocations are kept: memory (this process only: lost on restart, unseen by other replicas), " +
	"or redis://[user:password@]host:port[/db] or rediss://… (TLS), shared by every replica; excludes --revocation-file. " +
	"With --api-token-file one of the two is required (--dev implies memory); without the API nothing can be revoked here and memory is the default"

// errNoRevocationStore is the refusal of the API without a store named.
var errNoRevocationStore = errors.New("--api-token-file turns on the revocation API, so say where revocations are kept: " +
	"--revocation-file PATH (one replica; survives restarts), " +
	"--revocation-store=redis://host:port or rediss://… (shared by every replica; survives restarts as Redis persists), " +
	"or --revocation-store=memory (this process only: lost on restart, unseen by other replicas) " +
	"(or EXTAUTHZ_REVOCATION_FILE, EXTAUTHZ_REVOCATION_STORE)")

// checkRevocationStore is the grammar of --revocation-store. The error
// never repeats the value: it may be a URL with a password.
func checkRevocationStore(s string) error {
	if s != "" && s != storeMemory && !isRedisURL(s) {
		return errors.New("want memory, redis://[user:password@]host:port[/db] or rediss://…")
	}
	return nil
}

func isRedisURL(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	return ok && (strings.EqualFold(scheme, "redis") || strings.EqualFold(scheme, "rediss"))
}

// revocationStore applies the rules between --revocation-store,
// --revocation-file and the API, and says which store is used (storeMemory,
// storeFile, storeRedis) and, for memory, why. Nothing is silently
// non-durable: with the API on (--api-token-file) a store must be named,
// --revocation-store=memory included; --dev implies memory, being ephemeral
// anyway. Without the API no revocation can be made through this process,
// and memory (empty) is the default.
func (c *Config) revocationStore() (kind, why string, err error) {
	r := &c.Revocations
	switch {
	case r.Store != "" && r.File != "":
		return "", "", errors.New("--revocation-store and --revocation-file exclude each other: Redis keeps the shared set, a file one replica's, memory one process's")
	case !isRedisURL(r.Store) && (r.PasswordFile != "" || r.CAFile != ""):
		return "", "", errors.New("--revocation-store-password-file and --revocation-store-ca-file need a redis:// or rediss:// --revocation-store")
	case isRedisURL(r.Store):
		return storeRedis, "", nil
	case r.File != "":
		return storeFile, "", nil
	case r.Store == storeMemory:
		return storeMemory, "--revocation-store=memory", nil
	case c.Dev:
		return storeMemory, "implied by --dev", nil
	case c.APITokenFile != "":
		return "", "", errNoRevocationStore
	}
	return storeMemory, "the API is off: none can be made here", nil
}

// revocationSummary names the store chosen, for check-config: never the
// Redis URL, which may hold a password.
func (s *Server) revocationSummary() string {
	switch s.storeKind {
	case storeMemory:
		return "in memory (not durable, not shared; " + s.storeWhy + ")"
	case storeFile:
		return "in file " + s.cfg.Revocations.File
	}
	return "in Redis (shared)"
}

// freshnessReporter is a store that can go stale (Redis).
type freshnessReporter interface {
	Ready() bool
	Staleness() time.Duration
	MaxStaleness() time.Duration
}

// openRevocations opens the store revocationStore chose and exports its
// size and staleness. A file is loaded before the server listens; Redis is
// loaded in the background, and the server is not ready until it is.
// Memory is said at warn whenever revocations can be made (the API on) or
// it was named.
func (s *Server) openRevocations() error {
	c := &s.cfg
	switch s.storeKind {
	case storeRedis:
		rs, err := s.openRedis()
		if err != nil {
			return err
		}
		s.revocations = rs
	case storeFile:
		fs, err := revocation.OpenFileStore(c.Revocations.File, nil)
		if err != nil {
			return err
		}
		s.revocations = fs
	default:
		s.revocations = revocation.NewMemoryStore()
		if c.Revocations.Store == storeMemory || c.APITokenFile != "" {
			s.log.Warn().Str("revocation_store", storeMemory).Str("chosen_by", s.storeWhy).
				Msg("revocations are kept in this process's memory, neither durable nor shared: a restart forgets them and other replicas never see them; " +
					"use --revocation-file (one replica) or --revocation-store=redis://… (many) for a kill switch that holds")
		}
	}
	return s.revocationMetrics()
}

// openRedis opens the Redis store, with its password and CA bundle read
// from files that are reloaded: each new connection uses their last good
// content.
func (s *Server) openRedis() (*revocation.RedisStore, error) {
	r := &s.cfg.Revocations
	opts := revocation.RedisOptions{URL: r.Store, MaxStaleness: r.MaxStaleness, ResyncInterval: r.Resync,
		OnError: func(what string, err error) {
			s.log.Debug().Str("operation", what).Err(err).Msg("revocation store error")
		},
		// One line per change of state, when it happens.
		OnReachable: func(up bool, what string, err error) {
			if up {
				s.log.Info().Msg("revocation store reachable")
				return
			}
			s.log.Warn().Str("operation", what).Err(err).Msg("revocation store unreachable; deciding with the last known revocations until --revocation-max-staleness")
		},
		OnRepair: func(n int) {
			s.log.Warn().Int("entries", n).Msg("revocation store had lost entries this replica holds (flushed, or restarted without persistence); wrote them back")
		},
	}
	password, err := loadSecretText("--revocation-store-password-file", r.PasswordFile)
	if err != nil {
		return nil, err
	}
	if password != nil {
		opts.Password = watch(s, password, "revocation store password reloaded", "revocation store password reload failed; keeping the current password").current
	}
	ca, err := loadCAFile("--revocation-store-ca-file", r.CAFile)
	if err != nil {
		return nil, err
	}
	if ca != nil {
		opts.RootCAs = watch(s, ca, "revocation store CA bundle reloaded", "revocation store CA bundle reload failed; keeping the current bundle").current
	}
	rs, err := revocation.OpenRedisStore(opts)
	if err != nil {
		return nil, fmt.Errorf("--revocation-store: %w", err)
	}
	return rs, nil
}

// revocationMetrics exports the store's size, staleness and repairs.
func (s *Server) revocationMetrics() error {
	set := s.revocations.Set()
	collectors := []prometheus.Collector{prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "extauthz", Name: "revocations",
		Help: "Live revocation entries held in memory.",
	}, func() float64 { return float64(set.Len()) })}
	if rs, ok := s.revocations.(*revocation.RedisStore); ok {
		collectors = append(collectors, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "extauthz", Name: "revocation_store_repairs_total",
			Help: "Revocation entries this replica wrote back to the shared store after finding them missing there (Redis flushed, or restarted without persistence).",
		}, func() float64 { return float64(rs.Repairs()) }))
	}
	// Every store exports its staleness, so that the dashboard and the
	// alerts see the series whatever the store: a memory or file store is
	// always complete (0).
	staleness := func() float64 { return 0 }
	if fr, ok := s.revocations.(freshnessReporter); ok {
		staleness = func() float64 { return min(fr.Staleness().Seconds(), 1e9) }
	}
	collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "extauthz", Name: "revocation_staleness_seconds",
		Help: "Seconds since the revocation set was last known complete (the shared store answered; 0 for a memory or file store); past --revocation-max-staleness every capability is denied.",
	}, staleness))
	for _, c := range collectors {
		if err := s.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// revocationsReady reports whether the revocation set can be trusted: always
// for memory and file (loaded before listening); for Redis, loaded and not
// staler than --revocation-max-staleness.
func (s *Server) revocationsReady() bool {
	fr, ok := s.revocations.(freshnessReporter)
	return !ok || fr.Ready()
}

// revocationDetails is the revocation line of /readyz.
func (s *Server) revocationDetails() string {
	n := s.revocations.Set().Len()
	if s.storeKind == storeMemory {
		return fmt.Sprintf("revocations: %d entries, in memory: not durable, not shared (%s)\n", n, s.storeWhy)
	}
	fr, ok := s.revocations.(freshnessReporter)
	if !ok {
		return fmt.Sprintf("revocations: %d entries\n", n)
	}
	stale := "never loaded"
	if d := fr.Staleness(); d < time.Duration(1<<62) {
		stale = d.Round(time.Millisecond).String()
	}
	return fmt.Sprintf("revocations: %d entries, staleness %s (max %s), ready %v\n", n, stale, fr.MaxStaleness(), fr.Ready())
}

// pruneRevocations drops expired revocations from memory and from the file.
func (s *Server) pruneRevocations() {
	if fs, ok := s.revocations.(*revocation.FileStore); ok {
		if err := fs.Compact(); err != nil {
			s.log.Error().Err(err).Msg("revocation file compaction failed; will retry")
		}
		return
	}
	s.revocations.Set().Prune(time.Now().UnixMilli())
}
