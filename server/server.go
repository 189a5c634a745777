package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/extauthz/extauthz/authz"
	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/profiles"
	"github.com/extauthz/extauthz/revocation"
)

// Server is one extauthz server: the decision core and everything that
// serves it. New loads and checks everything it needs (the configuration
// check of `check-config`); Run serves until its context ends, then drains.
type Server struct {
	cfg     Config
	log     zerolog.Logger
	codec   *capability.Codec
	core    *authz.Authorizer
	metrics *authz.Metrics
	reg     *prometheus.Registry
	grpcM   *grpcMetrics
	httpH   http.Handler // the HTTP authorization endpoints, and the API if enabled; nil: no HTTP listener
	tls     *serverTLS   // nil: plain listeners
	secrets []secret     // the files reloaded on change
	ready   atomic.Bool
	health  *health.Server // set by Run

	revocations         revocation.Store
	storeKind, storeWhy string // revocationStore's choice

	profiles *reloadable[*profiles.Set] // nil without --profiles-file
}

// New builds a server from a configuration whose settings have passed
// their own rules (a Config as flagspec.Parse fills it from Config.Flags,
// defaults included): it checks the rules between them (Validate), loads
// the keys, the TLS files and the API token, and opens the revocation
// store. Nothing listens yet.
func New(cfg Config, log zerolog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	s.storeKind, s.storeWhy, _ = cfg.revocationStore()
	if err := s.checkSecretFiles(); err != nil {
		return nil, err
	}
	ring, err := s.initialKeys()
	if err != nil {
		return nil, err
	}
	s.codec = capability.NewCodec(ring, capability.WithCache(cfg.CapabilityCacheSize))
	if err := s.registerMetrics(); err != nil {
		return nil, err
	}
	if err := s.openRevocations(); err != nil {
		return nil, err
	}
	if s.core, err = authz.NewAuthorizer(authz.Config{Codec: s.codec, Policy: cfg.Policy, Logger: log, Metrics: s.metrics,
		Revocations: s.revocations.Set(), LogAllows: cfg.LogAllows}); err != nil {
		return nil, err
	}
	if err := s.openProfiles(); err != nil {
		return nil, err
	}
	if s.httpH, err = s.newHTTPHandler(); err != nil {
		return nil, err
	}
	if s.tls, err = newServerTLS(cfg.TLS); err != nil {
		return nil, err
	}
	if s.tls != nil {
		watch(s, s.tls.files, "TLS certificate reloaded", "TLS reload failed; keeping the current certificate")
	}
	if s.grpcM, err = newGRPCMetrics(s.reg, log); err != nil {
		return nil, err
	}
	return s, nil
}

// Codec is the server's capability codec: its key ring is the one in force.
func (s *Server) Codec() *capability.Codec { return s.codec }

// Authorizer is the decision core every listener calls.
func (s *Server) Authorizer() *authz.Authorizer { return s.core }

// HTTPHandler is what the HTTP listener serves, before Hooks.WrapHTTP; nil
// without --http-addr.
func (s *Server) HTTPHandler() http.Handler { return s.httpH }

// Summary says what the server would run with, for check-config: the keys
// by fingerprint, the caller identity, the capability header and the
// revocation store, never a secret.
func (s *Server) Summary() string {
	ring := s.codec.KeyRing()
	return fmt.Sprintf("%d key(s) %s, container id from %s, capability header %s, revocations %s, profiles %s",
		ring.Len(), strings.Join(ring.Fingerprints(), ","), s.cfg.Identity, s.cfg.CapabilityHeader, s.revocationSummary(), s.profileSummary())
}

// Hooks are what the caller adds to the servers Run builds: observability
// (spans, in cmd/extauthz). The zero value adds nothing.
type Hooks struct {
	GRPCOptions    []grpc.ServerOption             // more gRPC server options
	TracerProvider trace.TracerProvider            // nil: no spans; else a span per Check (authz)
	WrapHTTP       func(http.Handler) http.Handler // wraps the HTTP listener's handler
	ReadyFields    map[string]any                  // added to the "ready" log line
}

// RunOptions are what Run is given besides the configuration.
type RunOptions struct {
	Hooks
	// Reload makes every secret file be read again at once, changed or not
	// (SIGHUP); nil: only polling.
	Reload <-chan os.Signal
	// Stdout is where --dev prints its sample capability and requests.
	Stdout io.Writer
	// Ready, if set, is called once every listener serves, with the address
	// a client on this machine dials for each (by listener: grpc, http,
	// admin): for a caller that listens on port 0 (extauthz demo).
	Ready func(addrs map[string]string)
}

// Run listens, serves until ctx is done, then drains (drain.go) and closes
// the revocation store. It runs once per Server.
func (s *Server) Run(ctx context.Context, o RunOptions) error {
	g, err := s.newGRPC(o.Hooks)
	if err != nil {
		return err
	}
	lns, err := s.listenAll()
	if err != nil {
		return err
	}
	h := s.httpH
	if h != nil && o.WrapHTTP != nil {
		h = o.WrapHTTP(h)
	}
	errc := make(chan error, len(lns))
	httpServers := s.serve(lns, g, h, errc)
	s.ready.Store(true)
	s.updateHealth()
	s.log.Info().Strs("key_fingerprints", s.codec.KeyRing().Fingerprints()).Str("container_id_from", s.cfg.Identity.String()).
		Bool("dev", s.cfg.Dev).Fields(o.ReadyFields).Msg("ready")
	addrs := make(map[string]string, len(lns))
	for _, l := range lns {
		addrs[l.name] = dialable(l.ln.Addr())
	}
	if s.cfg.Dev && o.Stdout != nil {
		s.printDevHelp(o.Stdout, addrs)
	}
	if o.Ready != nil {
		o.Ready(addrs)
	}
	serveErr := s.loop(ctx, o.Reload, errc)
	s.drain(g, s.health, httpServers)
	if err := s.revocations.Close(); err != nil {
		s.log.Error().Err(err).Msg("closing the revocation store")
	}
	return serveErr
}

// newGRPC builds the gRPC server: Check, health (NOT_SERVING until ready),
// reflection if asked for, under the limits, with TLS if configured.
func (s *Server) newGRPC(h Hooks) (*grpc.Server, error) {
	c := &s.cfg
	srv, err := authz.NewGRPCServer(s.core, authz.GRPCOptions{Identity: c.Identity, CapabilityHeader: c.CapabilityHeader,
		UpstreamScheme: c.UpstreamScheme, TracerProvider: h.TracerProvider})
	if err != nil {
		return nil, err
	}
	// Stream workers: RPCs run on long-lived goroutines whose stacks have
	// already grown, instead of a fresh goroutine per RPC that grows its
	// stack during the decision (runtime.newstack was ~8-13 % of the live
	// server's CPU). grpc-go starts a fresh goroutine whenever every worker
	// is busy, so there are as many as the requests a proxy typically has in
	// flight, not one per CPU.
	opts := append(c.Limits.grpcServerOptions(), grpc.StatsHandler(s.grpcM), grpc.NumStreamWorkers(grpcStreamWorkers))
	opts = append(opts, h.GRPCOptions...)
	if s.tls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.tls.config(true))))
	}
	// Check is read straight from its encoding (authz.ServerOptions,
	// authz.Register: the one production path).
	g := grpc.NewServer(append(opts, authz.ServerOptions()...)...)
	authz.Register(g, srv)
	s.health = health.NewServer()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	s.health.SetServingStatus(authz.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(g, s.health)
	if c.GRPCReflection {
		reflection.Register(g)
	}
	return g, nil
}

// serve starts a server on each listener; each reports its end on errc. It
// returns the HTTP servers, for the drain.
func (s *Server) serve(lns []listener, g *grpc.Server, httpH http.Handler, errc chan<- error) []*http.Server {
	lim := &s.cfg.Limits
	var httpServers []*http.Server
	for _, l := range lns {
		switch l.name {
		case "grpc":
			go func() { errc <- g.Serve(l.ln) }()
		case "http":
			if s.tls != nil {
				l.ln = tls.NewListener(l.ln, s.tls.config(false))
			}
			srv := lim.httpServer(httpH, false, errorLog(s.log, l.name))
			httpServers = append(httpServers, srv)
			go func() { errc <- srv.Serve(l.ln) }()
		case "admin":
			srv := lim.httpServer(s.adminHandler(), true, errorLog(s.log, l.name))
			httpServers = append(httpServers, srv)
			go func() { errc <- srv.Serve(l.ln) }()
		}
		s.log.Info().Str("listener", l.name).Str("addr", l.ln.Addr().String()).Bool("tls", s.tls != nil && l.name != "admin").Msg("listening")
	}
	return httpServers
}

// loop runs until ctx is done or a listener fails: it reloads the secret
// files (every ReloadInterval, and at once on reload), prunes expired
// revocations and keeps gRPC health in line with readiness, which the
// revocation store can change (loaded, stale, fresh again).
func (s *Server) loop(ctx context.Context, reload <-chan os.Signal, errc <-chan error) error {
	var tick <-chan time.Time
	if len(s.secrets) > 0 && s.cfg.ReloadInterval > 0 {
		t := time.NewTicker(s.cfg.ReloadInterval)
		defer t.Stop()
		tick = t.C
	}
	prune := time.NewTicker(revocationPruneInterval)
	defer prune.Stop()
	healthTick := time.NewTicker(healthInterval)
	defer healthTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-reload:
			s.reloadSecrets(true, "sighup")
		case <-tick:
			s.reloadSecrets(false, "file_changed")
		case <-prune.C:
			s.pruneRevocations()
		case <-healthTick.C:
			s.updateHealth()
		case err := <-errc:
			if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
				return err
			}
		}
	}
}

// reloadSecrets reloads every secret file; force: even unchanged ones.
func (s *Server) reloadSecrets(force bool, why string) {
	for _, f := range s.secrets {
		f.reload(force, why)
	}
}
