package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/extauthz/extauthz/authz"
	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/policy"
	"github.com/extauthz/extauthz/revocation"
)

// app is one running server: the decision core and everything that serves it.
type app struct {
	opts    *serveOptions
	log     zerolog.Logger
	getenv  func(string) string
	codec   *capability.Codec
	policy  *policy.Policy
	core    *authz.Authorizer
	metrics *authz.Metrics
	reg     *prometheus.Registry
	grpc    *grpc.Server
	httpH   http.Handler // the HTTP authorization endpoints, and the API if enabled
	tls     *serverTLS   // nil: plain listeners
	health  *health.Server
	ready   atomic.Bool
	keys    *reloadable[*capability.KeyRing] // nil: no key file to reload
	tracing *tracingSetup                    // nil: --tracing off
	// revocations is the revocation store (memory, or --revocation-file).
	revocations revocation.Store
}

func newApp(o *serveOptions, getenv func(string) string, log zerolog.Logger) (*app, error) {
	a := &app{opts: o, log: log, getenv: getenv, policy: o.policy}
	if err := a.checkSecretFiles(); err != nil {
		return nil, err
	}
	var err error
	ring, err := a.initialKeys()
	if err != nil {
		return nil, err
	}
	a.codec = newCodec(ring, a.policy, nil, capability.WithCache(o.capabilityCacheSize))
	a.reg = prometheus.NewRegistry()
	a.reg.MustRegister(cacheCollectors(a.codec)...)
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "extauthz", Name: "ready",
			Help: "1 while /readyz says ready (keys loaded, not draining), else 0.",
		}, func() float64 {
			if a.isReady() {
				return 1
			}
			return 0
		}))
	if a.metrics, err = authz.NewMetrics(a.reg); err != nil {
		return nil, err
	}
	if err := a.openRevocations(); err != nil {
		return nil, err
	}
	if a.core, err = authz.NewAuthorizer(authz.Config{Codec: a.codec, Policy: a.policy, Logger: log, Metrics: a.metrics,
		Revocations: a.revocations.Set(), LogAllows: o.allowLog}); err != nil {
		return nil, err
	}
	grpcOptions := authz.GRPCOptions{Identity: o.identity, CapabilityHeader: o.capHdr, UpstreamScheme: o.upstreamScheme}
	if o.tracing {
		if a.tracing, err = newTracingSetup(context.Background(), getenv, log); err != nil {
			return nil, err
		}
		grpcOptions.TracerProvider = a.tracing.tp
	}
	srv, err := authz.NewGRPCServer(a.core, grpcOptions)
	if err != nil {
		return nil, err
	}
	if a.httpH, err = a.newHTTPHandler(); err != nil {
		return nil, err
	}
	if a.tracing != nil && a.httpH != nil {
		a.httpH = authz.TraceHTTP(a.httpH, a.tracing.tp)
	}
	if a.tls, err = newServerTLS(o.tlsCertFile, o.tlsKeyFile, o.tlsClientCAFile, o.tlsClientIdentities); err != nil {
		return nil, err
	}
	gm, err := newGRPCMetrics(a.reg, log)
	if err != nil {
		return nil, err
	}
	// Stream workers: RPCs run on long-lived goroutines whose stacks have
	// already grown, instead of a fresh goroutine per RPC that grows its
	// stack during the decision (runtime.newstack was ~8-13 % of the live
	// server's CPU). grpc-go starts a fresh goroutine whenever every worker
	// is busy, so there are as many as the requests a proxy typically has in
	// flight, not one per CPU.
	grpcOpts := append(o.limits.grpcServerOptions(), grpc.StatsHandler(gm),
		grpc.NumStreamWorkers(grpcStreamWorkers))
	if a.tls != nil {
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(a.tls.config(true))))
	}
	a.grpc = grpc.NewServer(append(grpcOpts, authz.ServerOptions()...)...)
	authz.Register(a.grpc, srv)
	a.health = health.NewServer()
	a.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	a.health.SetServingStatus(authz.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(a.grpc, a.health)
	if o.grpcReflection {
		reflection.Register(a.grpc)
	}
	return a, nil
}

// initialKeys loads the key ring at start-up. Without one the server refuses
// to start, unless --dev asks for an ephemeral development key.
func (a *app) initialKeys() (*capability.KeyRing, error) {
	if a.opts.keyFile == "" && a.getenv("EXTAUTHZ_KEYS") == "" {
		if !a.opts.dev {
			return nil, errors.New("no key configured: pass --key-file (or set EXTAUTHZ_KEY_FILE or EXTAUTHZ_KEYS), or use --dev for an ephemeral development key")
		}
		return devKeyRing()
	}
	if a.opts.keyFile != "" {
		var err error
		if a.keys, err = openKeyFile(a.opts.keyFile); err != nil {
			return nil, err
		}
		return a.keys.current(), nil
	}
	return loadKeyRing("", a.getenv)
}

// reloadKeys re-reads the key file. force reloads even when the content is
// unchanged (SIGHUP). A bad file keeps the old ring.
func (a *app) reloadKeys(force bool, why string) {
	if a.keys == nil {
		return
	}
	ring, changed, err := a.keys.reload(force)
	switch {
	case err != nil:
		a.metrics.KeyReload(false)
		a.log.Error().Str("trigger", why).Err(err).Msg("key reload failed; keeping the current keys")
	case changed:
		a.codec.SetKeyRing(ring)
		a.metrics.KeyReload(true)
		a.log.Info().Str("trigger", why).Strs("key_fingerprints", ring.Fingerprints()).Msg("keys reloaded")
	}
}

// reloadTLS re-reads the TLS files; a bad set keeps the current one.
func (a *app) reloadTLS(force bool, why string) {
	if a.tls == nil {
		return
	}
	_, swapped, err := a.tls.files.reload(force)
	switch {
	case err != nil:
		a.log.Error().Str("trigger", why).Err(err).Msg("TLS reload failed; keeping the current certificate")
	case swapped:
		a.log.Info().Str("trigger", why).Msg("TLS certificate reloaded")
	}
}

// listen listens on a TCP host:port, or on a Unix-domain socket given as
// unix:PATH (a sidecar proxy can then reach the server while nothing on the
// network can). A stale socket file from an earlier run is replaced; the
// socket is readable and writable by owner and group only.
func listen(addr string) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return net.Listen("tcp", addr)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

type listener struct {
	name string
	ln   net.Listener
}

// run serves until ctx is cancelled, then drains.
func (a *app) run(ctx context.Context, hup <-chan os.Signal, stdout io.Writer) error {
	defer a.shutdownTracing()
	lns, err := a.listenAll()
	if err != nil {
		return err
	}
	errc := make(chan error, len(lns))
	httpServers := a.serve(lns, errc)
	a.ready.Store(true)
	a.updateHealth()
	a.log.Info().Strs("key_fingerprints", a.codec.KeyRing().Fingerprints()).
		Str("container_id_from", a.opts.identity.String()).Bool("dev", a.opts.dev).Bool("tracing", a.tracing != nil).Msg("ready")
	if a.opts.dev {
		a.printDevHelp(stdout, lns)
	}

	var tick <-chan time.Time
	if (a.opts.keyFile != "" || a.tls != nil) && a.opts.keyReloadInterval > 0 {
		t := time.NewTicker(a.opts.keyReloadInterval)
		defer t.Stop()
		tick = t.C
	}
	prune := time.NewTicker(revocationPruneInterval)
	defer prune.Stop()
	// gRPC health follows readiness, which the revocation store can change
	// (loaded, stale, fresh again).
	healthTick := time.NewTicker(healthInterval)
	defer healthTick.Stop()
	var serveErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			a.reloadKeys(true, "sighup")
			a.reloadTLS(true, "sighup")
		case <-tick:
			a.reloadKeys(false, "file_changed")
			a.reloadTLS(false, "file_changed")
		case <-prune.C:
			a.pruneRevocations()
		case <-healthTick.C:
			a.updateHealth()
		case err := <-errc:
			if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
				serveErr = err
				break loop
			}
		}
	}
	a.drain(httpServers)
	if err := a.revocations.Close(); err != nil {
		a.log.Error().Err(err).Msg("closing the revocation store")
	}
	return serveErr
}

// listenAll opens every configured listener, each under its connection
// cap, or none.
func (a *app) listenAll() ([]listener, error) {
	o := a.opts
	var lns []listener
	for _, l := range []struct{ name, addr string }{{"grpc", o.grpcAddr}, {"http", o.httpAddr}, {"admin", o.adminAddr}} {
		if l.addr == "" {
			continue
		}
		ln, err := listen(l.addr)
		if err != nil {
			for _, l := range lns {
				l.ln.Close()
			}
			return nil, fmt.Errorf("listen %s on %s: %w", l.name, l.addr, err)
		}
		lns = append(lns, listener{l.name, o.limits.limit(l.name, ln)})
	}
	names := make([]string, len(lns))
	for i, l := range lns {
		names[i] = l.name
	}
	if need, have, ok := o.limits.fdBudget(names); !ok {
		a.log.Warn().Uint64("need", need).Uint64("fd_limit", have).
			Msg("the connection caps exceed the file-descriptor limit: raise ulimit -n or lower --max-connections, or a flood can starve the other listeners")
	}
	a.warnOpenGRPC(lns)
	return lns, nil
}

// warnOpenGRPC says once, at start, when the gRPC listener takes plain
// connections from the network: an allowed Check answers with a real
// credential, so any client that reaches the port with a capability and the
// container id it is bound to gets one. The default :9191 is the container
// convention; what protects it is the network (the chart's NetworkPolicy, a
// pod reachable only by the proxy), or mTLS.
func (a *app) warnOpenGRPC(lns []listener) {
	if a.opts.tlsClientCAFile != "" {
		return
	}
	for _, l := range lns {
		if tcp, ok := l.ln.Addr().(*net.TCPAddr); ok && l.name == "grpc" && !tcp.IP.IsLoopback() {
			a.log.Warn().Str("addr", tcp.String()).
				Msg("the gRPC listener takes plain connections on a non-loopback address without mTLS: any client that reaches it with a capability and its container id gets the real credential; only the network protects it (a NetworkPolicy, a pod only the proxy reaches). Bind to 127.0.0.1 or unix:PATH, or set --tls-client-ca-file")
		}
	}
}

// serve starts a server on each listener; each reports its end on errc. It
// returns the HTTP servers, for the drain.
func (a *app) serve(lns []listener, errc chan<- error) []*http.Server {
	o := a.opts
	var httpServers []*http.Server
	for _, l := range lns {
		switch l.name {
		case "grpc":
			go func() { errc <- a.grpc.Serve(l.ln) }()
		case "http":
			if a.tls != nil {
				l.ln = tls.NewListener(l.ln, a.tls.config(false))
			}
			srv := o.limits.httpServer(a.httpH, false, errorLog(a.log, l.name))
			httpServers = append(httpServers, srv)
			go func() { errc <- srv.Serve(l.ln) }()
		case "admin":
			srv := o.limits.httpServer(a.adminHandler(), true, errorLog(a.log, l.name))
			httpServers = append(httpServers, srv)
			go func() { errc <- srv.Serve(l.ln) }()
		}
		a.log.Info().Str("listener", l.name).Str("addr", l.ln.Addr().String()).Bool("tls", a.tls != nil && l.name != "admin").Msg("listening")
	}
	return httpServers
}

func (a *app) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !a.isReady() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready\n"+a.revocationDetails())
			return
		}
		io.WriteString(w, "ready\n"+a.revocationDetails())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	return mux
}

// isReady is what /readyz, gRPC health and the extauthz_ready gauge report:
// started, not draining, a key ring loaded, and a revocation set that can be
// trusted (loaded, not staler than --revocation-max-staleness).
func (a *app) isReady() bool {
	return a.ready.Load() && a.codec.KeyRing() != nil && a.revocationsReady()
}

// healthInterval is how often gRPC health is brought in line with isReady.
const healthInterval = 250 * time.Millisecond

// updateHealth sets gRPC health from isReady. The drain sets NOT_SERVING
// itself after clearing ready, so this never undoes it.
func (a *app) updateHealth() {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if a.isReady() {
		st = healthpb.HealthCheckResponse_SERVING
	}
	a.health.SetServingStatus("", st)
	a.health.SetServingStatus(authz.ServiceName, st)
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
