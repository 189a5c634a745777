package server

import (
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/extauthz/extauthz/authz"
	"github.com/extauthz/extauthz/capability"
)

// adminHandler serves the admin listener: /healthz (the process is alive),
// /readyz (isReady, with the revocation store's state) and /metrics.
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !s.isReady() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready\n"+s.revocationDetails())
			return
		}
		io.WriteString(w, "ready\n"+s.revocationDetails())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	return mux
}

// isReady is what /readyz, gRPC health and the extauthz_ready gauge report:
// started, not draining, a key ring loaded, and a revocation set that can be
// trusted (loaded, not staler than --revocation-max-staleness).
func (s *Server) isReady() bool {
	return s.ready.Load() && s.codec.KeyRing() != nil && s.revocationsReady()
}

// healthInterval is how often gRPC health is brought in line with isReady.
const healthInterval = 250 * time.Millisecond

// updateHealth sets gRPC health from isReady. The drain sets NOT_SERVING
// itself after clearing ready, so this never undoes it.
func (s *Server) updateHealth() {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if s.isReady() {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(authz.ServiceName, st)
}

// registerMetrics registers the decision metrics, the capability cache's,
// readiness, and the Go and process collectors.
func (s *Server) registerMetrics() error {
	s.reg.MustRegister(cacheCollectors(s.codec)...)
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "extauthz", Name: "ready",
			Help: "1 while /readyz says ready (keys loaded, not draining), else 0.",
		}, func() float64 {
			if s.isReady() {
				return 1
			}
			return 0
		}))
	var err error
	s.metrics, err = authz.NewMetrics(s.reg)
	return err
}

// cacheCollectors export the capability cache's counters as
// extauthz_capability_cache_{hits,misses,evictions}_total and its size as
// extauthz_capability_cache_entries.
func cacheCollectors(c *capability.Codec) []prometheus.Collector {
	counter := func(name, help string, v func(capability.CacheStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "extauthz", Subsystem: "capability_cache", Name: name, Help: help},
			func() float64 { return float64(v(c.CacheStats())) })
	}
	return []prometheus.Collector{
		counter("hits_total", "Capabilities served from the cache of opened capabilities (time window still checked).",
			func(s capability.CacheStats) uint64 { return s.Hits }),
		counter("misses_total", "Capabilities not in the cache, decrypted and decoded.",
			func(s capability.CacheStats) uint64 { return s.Misses }),
		counter("evictions_total", "Cache entries dropped, oldest first, to stay within --capability-cache-size.",
			func(s capability.CacheStats) uint64 { return s.Evictions }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "extauthz", Subsystem: "capability_cache", Name: "entries",
			Help: "Opened capabilities held in the cache (emptied on key reload)."},
			func() float64 { return float64(c.CacheStats().Entries) }),
	}
}
