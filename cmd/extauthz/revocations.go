package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/extauthz/extauthz/revocation"
)

// revocationPruneInterval is how often expired revocations are dropped.
const revocationPruneInterval = time.Minute

// freshnessReporter is a store that can go stale (Redis).
type freshnessReporter interface {
	Ready() bool
	Staleness() time.Duration
	MaxStaleness() time.Duration
}

// openRevocations opens the revocation store that serve's flags name
// (--revocation-store, --revocation-file, else memory only) and exports its
// size and staleness. A file is loaded before the server listens; Redis is
// loaded in the background, and the server is not ready until it is.
func (a *app) openRevocations() error {
	o := a.opts
	switch {
	case o.revocationStore != "":
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
	case o.revocationFile != "":
		fs, err := revocation.OpenFileStore(o.revocationFile, nil)
		if err != nil {
			return err
		}
		a.revocations = fs
	default:
		a.revocations = revocation.NewMemoryStore()
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
