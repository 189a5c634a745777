package server

import (
	"context"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
)

// defaultDrainDelay outlasts the health checking of the shipped Envoy
// configs: a check every 2 s, unhealthy after 2 failures, so Envoy stops
// sending checks here within 4 s of SIGTERM (plus the check's own round
// trip). 15 s also covers a proxy that checks every 5 s, a common setting,
// with a margin for a loaded proxy and a late timer. A proxy that
// health-checks less often needs a longer delay: interval ×
// unhealthy_threshold plus a margin.
const defaultDrainDelay = 15 * time.Second

// drain stops the server the way Envoy and gRPC expect:
//
//  1. gRPC health (every service) turns NOT_SERVING and /readyz 503, while
//     every listener keeps accepting and answering, so that health checkers
//     see the change and take this instance out of rotation;
//  2. after --drain-delay, the listeners close, gRPC clients get GOAWAY,
//     HTTP servers close idle connections, and in-flight requests finish;
//  3. whatever is still running after --shutdown-timeout is cut off.
//
// Checks that arrive during the delay are decided as usual: refusing them
// would turn every request a proxy has not yet moved elsewhere into an
// error (a deny behind a fail-closed proxy).
func (s *Server) drain(g *grpc.Server, health *health.Server, httpServers []*http.Server) {
	start := time.Now()
	s.log.Info().Str("drain_delay", s.cfg.DrainDelay.String()).Str("shutdown_timeout", s.cfg.ShutdownTimeout.String()).Msg("draining")
	s.ready.Store(false)
	health.Shutdown() // NOT_SERVING for every service, Watch streams told
	// HTTP keep-alives stay on: SetKeepAlivesEnabled(false) would close idle
	// connections now, while proxies still send here at full rate and may
	// be writing a request into one of them.
	time.Sleep(s.cfg.DrainDelay)

	s.log.Info().Str("after", time.Since(start).Round(time.Millisecond).String()).Msg("closing listeners")
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		g.GracefulStop()
		close(done)
	}()
	var wg sync.WaitGroup
	for _, h := range httpServers {
		wg.Go(func() {
			if err := h.Shutdown(ctx); err != nil {
				h.Close()
			}
		})
	}
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn().Msg("shutdown timeout: closing remaining gRPC streams")
		g.Stop()
		<-done
	}
	wg.Wait()
	s.log.Info().Str("after", time.Since(start).Round(time.Millisecond).String()).Msg("stopped")
}
