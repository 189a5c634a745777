package main

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
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
		var failing atomic.Bool
		rs, err := revocation.OpenRedisStore(revocation.RedisOptions{
			URL: o.revocationStore, Password: password, CAFile: o.revocationStoreCAFile,
			MaxStaleness: o.revocationMaxStaleness, ResyncInterval: o.revocationResyncInterval,
			OnError: func(what string, err error) {
				// One warning per outage, the details at debug.
				if !failing.Swap(true) {
					a.log.Warn().Str("operation", what).Err(err).Msg("revocation store unreachable; deciding with the last known revocations until --revocation-max-staleness")
				}
				a.log.Debug().Str("operation", what).Err(err).Msg("revocation store error")
			},
		})
		if err != nil {
			return fmt.Errorf("--revocation-store: %w", err)
		}
		a.revocations = rs
		a.revocationRecovered = func() {
			if failing.Swap(false) {
				a.log.Info().Msg("revocation store reachable again")
			}
		}
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
	if fr, ok := a.revocations.(freshnessReporter); ok {
		collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "extauthz", Name: "revocation_staleness_seconds",
			Help: "Seconds since the revocation set was last known complete (the shared store answered); past --revocation-max-staleness every capability is denied.",
		}, func() float64 { return min(fr.Staleness().Seconds(), 1e9) }))
	}
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
	ready := fr.Ready()
	if ready && a.revocationRecovered != nil {
		a.revocationRecovered()
	}
	return ready
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
