package main

import (
	"errors"
	"fmt"
	"os"
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

// chooseRevocationStore applies the grammar of --revocation-store and
// --revocation-file and sets revocationKind. Nothing is silently
// non-durable: with the API on (--api-token-file) a store must be named,
// --revocation-store=memory included; --dev implies memory, being ephemeral
// anyway. Without the API no revocation can be made through this process,
// and memory (empty) is the default. An error never repeats the value: it
// may be a URL with a password.
func (o *serveOptions) chooseRevocationStore() error {
	s := o.revocationStore
	scheme, _, _ := strings.Cut(s, "://")
	isRedis := strings.Contains(s, "://") && (strings.EqualFold(scheme, "redis") || strings.EqualFold(scheme, "rediss"))
	switch {
	case s != "" && s != storeMemory && !isRedis:
		return fmt.Errorf("--revocation-store (or %s): want memory, redis://[user:password@]host:port[/db] or rediss://…", envName("revocation-store"))
	case s != "" && o.revocationFile != "":
		return errors.New("--revocation-store and --revocation-file exclude each other: Redis keeps the shared set, a file one replica's, memory one process's")
	case !isRedis && (o.revocationStorePasswordFile != "" || o.revocationStoreCAFile != ""):
		return errors.New("--revocation-store-password-file and --revocation-store-ca-file need a redis:// or rediss:// --revocation-store")
	}
	o.revocationWhy = ""
	switch {
	case isRedis:
		o.revocationKind = storeRedis
	case o.revocationFile != "":
		o.revocationKind = storeFile
	case s == storeMemory:
		o.revocationKind, o.revocationWhy = storeMemory, "--revocation-store=memory"
	case o.dev:
		o.revocationKind, o.revocationWhy = storeMemory, "implied by --dev"
	case o.apiTokenFile != "":
		return errNoRevocationStore
	default:
		o.revocationKind, o.revocationWhy = storeMemory, "the API is off: none can be made here"
	}
	return nil
}

// revocationSummary names the store chosen for check-config: never the
// Redis URL, which may hold a password.
func (o *serveOptions) revocationSummary() string {
	switch o.revocationKind {
	case storeMemory:
		return "in memory (not durable, not shared; " + o.revocationWhy + ")"
	case storeFile:
		return "in file " + o.revocationFile
	}
	return "in Redis (shared)"
}

// freshnessReporter is a store that can go stale (Redis).
type freshnessReporter interface {
	Ready() bool
	Staleness() time.Duration
	MaxStaleness() time.Duration
}

// openRevocations opens the revocation store chosen by
// chooseRevocationStore and exports its size and staleness. A file is
// loaded before the server listens; Redis is loaded in the background, and
// the server is not ready until it is. Memory is said at warn whenever
// revocations can be made (the API on) or it was named.
func (a *app) openRevocations() error {
	o := a.opts
	switch o.revocationKind {
	case storeRedis:
		password := ""
		if o.revocationStorePasswordFile != "" {
			data, err := os.ReadFile(o.revocationStorePasswordFile)
			if err != nil {
				return fmt.Errorf("--revocation-store-password-file: %w", err)
			}
			password = strings.TrimSpace(string(data))
		}
		rs, err := revocation.OpenRedisStore(revocation.RedisOptions{
			URL: o.revocationStore, Password: password, CAFile: o.revocationStoreCAFile,
			MaxStaleness: o.revocationMaxStaleness, ResyncInterval: o.revocationResyncInterval,
			OnError: func(what string, err error) {
				a.log.Debug().Str("operation", what).Err(err).Msg("revocation store error")
			},
			// One line per change of state, when it happens.
			OnReachable: func(up bool, what string, err error) {
				if up {
					a.log.Info().Msg("revocation store reachable")
					return
				}
				a.log.Warn().Str("operation", what).Err(err).Msg("revocation store unreachable; deciding with the last known revocations until --revocation-max-staleness")
			},
			OnRepair: func(n int) {
				a.log.Warn().Int("entries", n).Msg("revocation store had lost entries this replica holds (flushed, or restarted without persistence); wrote them back")
			},
		})
		if err != nil {
			return fmt.Errorf("--revocation-store: %w", err)
		}
		a.revocations = rs
	case storeFile:
		fs, err := revocation.OpenFileStore(o.revocationFile, nil)
		if err != nil {
			return err
		}
		a.revocations = fs
	default:
		a.revocations = revocation.NewMemoryStore()
		if o.revocationStore == storeMemory || o.apiTokenFile != "" {
			a.log.Warn().Str("revocation_store", storeMemory).Str("chosen_by", o.revocationWhy).
				Msg("revocations are kept in this process's memory, neither durable nor shared: a restart forgets them and other replicas never see them; " +
					"use --revocation-file (one replica) or --revocation-store=redis://… (many) for a kill switch that holds")
		}
	}
	set := a.revocations.Set()
	collectors := []prometheus.Collector{prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "extauthz", Name: "revocations",
		Help: "Live revocation entries held in memory.",
	}, func() float64 { return float64(set.Len()) })}
	if rs, ok := a.revocations.(*revocation.RedisStore); ok {
		collectors = append(collectors, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "extauthz", Name: "revocation_store_repairs_total",
			Help: "Revocation entries this replica wrote back to the shared store after finding them missing there (Redis flushed, or restarted without persistence).",
		}, func() float64 { return float64(rs.Repairs()) }))
	}
	// Every store exports its staleness, so that the dashboard and the
	// alerts see the series whatever the store: a memory or file store is
	// always complete (0).
	staleness := func() float64 { return 0 }
	if fr, ok := a.revocations.(freshnessReporter); ok {
		staleness = func() float64 { return min(fr.Staleness().Seconds(), 1e9) }
	}
	collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "extauthz", Name: "revocation_staleness_seconds",
		Help: "Seconds since the revocation set was last known complete (the shared store answered; 0 for a memory or file store); past --revocation-max-staleness every capability is denied.",
	}, staleness))
	for _, c := range collectors {
		if err := a.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// revocationsReady reports whether the revocation set can be trusted: always
// for memory and file (loaded before listening); for Redis, loaded and not
// staler than --revocation-max-staleness.
func (a *app) revocationsReady() bool {
	fr, ok := a.revocations.(freshnessReporter)
	if !ok {
		return true
	}
	return fr.Ready()
}

// revocationDetails is the revocation line of /readyz.
func (a *app) revocationDetails() string {
	n := a.revocations.Set().Len()
	if a.opts.revocationKind == storeMemory {
		return fmt.Sprintf("revocations: %d entries, in memory: not durable, not shared (%s)\n", n, a.opts.revocationWhy)
	}
	fr, ok := a.revocations.(freshnessReporter)
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
func (a *app) pruneRevocations() {
	if fs, ok := a.revocations.(*revocation.FileStore); ok {
		if err := fs.Compact(); err != nil {
			a.log.Error().Err(err).Msg("revocation file compaction failed; will retry")
		}
		return
	}
	a.revocations.Set().Prune(time.Now().UnixMilli())
}
