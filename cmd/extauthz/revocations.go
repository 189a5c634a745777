package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/extauthz/extauthz/revocation"
)

// revocationPruneInterval is how often expired revocations are dropped.
const revocationPruneInterval = time.Minute

// openRevocations opens the revocation store that serve's flags name
// (--revocation-file, else memory only) and exports its size. It runs
// before the server is ready: what is durable is loaded first.
func (a *app) openRevocations() error {
	if a.opts.revocationFile == "" {
		a.revocations = revocation.NewMemoryStore()
	} else {
		fs, err := revocation.OpenFileStore(a.opts.revocationFile, nil)
		if err != nil {
			return err
		}
		a.revocations = fs
	}
	set := a.revocations.Set()
	return a.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "extauthz", Name: "revocations",
		Help: "Live revocation entries held in memory.",
	}, func() float64 { return float64(set.Len()) }))
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
