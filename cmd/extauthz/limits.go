package main

import (
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"syscall"
	"time"

	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// limitOptions bound what one client can hold on each listener: connections,
// streams per connection, and how long an idle or slow connection lives.
// Without them a flood of idle connections on one listener takes the file
// descriptors every other listener (and key reloads) need.
type limitOptions struct {
	maxConns, adminMaxConns int
	maxStreams              uint
	readHeaderTimeout       time.Duration
	idleTimeout             time.Duration
	grpcMaxConnIdle         time.Duration
	grpcMaxConnAge          time.Duration
	grpcMaxConnAgeGrace     time.Duration
	grpcKeepaliveMinTime    time.Duration
}

// Fixed limits: generous for what the listeners carry (an ext_authz request
// is a few KiB, an API body at most 64 KiB), so not worth a flag.
const (
	grpcStreamWorkers   = 64      // goroutines that serve RPCs; idle ones cost a few KiB each
	grpcMaxRecvMsgSize  = 4 << 20 // grpc-go's default, stated: a larger Check fails (see errlog.go)
	grpcKeepaliveTime   = time.Minute
	grpcKeepaliveWait   = 20 * time.Second
	httpReadTimeout     = 30 * time.Second
	httpWriteTimeout    = 30 * time.Second
	httpMaxHeaderBytes  = 256 << 10 // a 64 KiB capability plus the request's own headers
	adminMaxHeaderBytes = 64 << 10
	// fdReserve is what the process needs besides its listeners' connections:
	// the key and TLS files, the listeners themselves, the runtime.
	fdReserve = 64
)

func (l *limitOptions) register(fs *flag.FlagSet) {
	fs.IntVar(&l.maxConns, "max-connections", 4096, "most open connections on the gRPC listener, and on the HTTP listener (each); more wait in the kernel's accept queue")
	fs.IntVar(&l.adminMaxConns, "admin-max-connections", 1024, "most open connections on the admin listener (probes and scrapers; the headroom absorbs a burst without blocking probes)")
	fs.UintVar(&l.maxStreams, "max-concurrent-streams", 256, "most concurrent streams (requests) per HTTP/2 connection, gRPC and HTTP")
	fs.DurationVar(&l.readHeaderTimeout, "read-header-timeout", 10*time.Second, "a new connection must finish its TLS and HTTP/2 handshake (gRPC) or send its request headers (HTTP, admin) within this")
	fs.DurationVar(&l.idleTimeout, "idle-timeout", 2*time.Minute, "close an HTTP or admin keep-alive connection idle this long")
	fs.DurationVar(&l.grpcMaxConnIdle, "grpc-max-connection-idle", 5*time.Minute, "close (GOAWAY) a gRPC connection without an RPC for this long")
	fs.DurationVar(&l.grpcMaxConnAge, "grpc-max-connection-age", 30*time.Minute, "close (GOAWAY) a gRPC connection this old, so that proxies rebalance; 0 disables")
	fs.DurationVar(&l.grpcMaxConnAgeGrace, "grpc-max-connection-age-grace", 10*time.Second, "after --grpc-max-connection-age, let in-flight RPCs finish for this long")
	fs.DurationVar(&l.grpcKeepaliveMinTime, "grpc-keepalive-min-time", 10*time.Second, "close a gRPC connection whose client pings more often than this")
}

func (l *limitOptions) validate() error {
	switch {
	case l.maxConns <= 0 || l.adminMaxConns <= 0:
		return errors.New("--max-connections and --admin-max-connections must be > 0")
	case l.maxStreams == 0 || l.maxStreams > 1<<20:
		return errors.New("--max-concurrent-streams must be between 1 and 1048576")
	case l.readHeaderTimeout <= 0 || l.idleTimeout <= 0 || l.grpcMaxConnIdle <= 0 || l.grpcMaxConnAgeGrace <= 0 || l.grpcKeepaliveMinTime <= 0:
		return errors.New("--read-header-timeout, --idle-timeout, --grpc-max-connection-idle, --grpc-max-connection-age-grace and --grpc-keepalive-min-time must be > 0")
	case l.grpcMaxConnAge < 0:
		return errors.New("--grpc-max-connection-age must be >= 0")
	}
	return nil
}

// grpcServerOptions are the gRPC server's stream, keepalive and handshake
// limits.
func (l *limitOptions) grpcServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(grpcMaxRecvMsgSize),
		grpc.MaxConcurrentStreams(uint32(l.maxStreams)),
		grpc.ConnectionTimeout(l.readHeaderTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             l.grpcKeepaliveMinTime,
			PermitWithoutStream: true, // an idle proxy connection may ping, just not too often
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     l.grpcMaxConnIdle,
			MaxConnectionAge:      l.grpcMaxConnAge, // 0: never, in grpc-go
			MaxConnectionAgeGrace: l.grpcMaxConnAgeGrace,
			Time:                  grpcKeepaliveTime, // ping an idle peer to find dead ones
			Timeout:               grpcKeepaliveWait,
		}),
	}
}

// httpServer is an http.Server for the HTTP authorization listener
// (admin false) or the admin listener, with every timeout set, errors
// logged through errLog.
func (l *limitOptions) httpServer(h http.Handler, admin bool, errLog *log.Logger) *http.Server {
	s := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.readHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       l.idleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ErrorLog:          errLog,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: int(l.maxStreams)},
	}
	if admin {
		s.MaxHeaderBytes = adminMaxHeaderBytes
	}
	return s
}

// limit caps the connections a listener holds open: Accept waits while the
// cap is reached, so further clients queue in the kernel's accept backlog
// without taking one of the process's file descriptors.
func (l *limitOptions) limit(name string, ln net.Listener) net.Listener {
	if name == "admin" {
		return netutil.LimitListener(ln, l.adminMaxConns)
	}
	return netutil.LimitListener(ln, l.maxConns)
}

// fdBudget reports whether the caps of the given listeners, plus a reserve,
// fit the process's file-descriptor limit, with the numbers for a message.
func (l *limitOptions) fdBudget(names []string) (need, have uint64, ok bool) {
	need = fdReserve
	for _, n := range names {
		if n == "admin" {
			need += uint64(l.adminMaxConns)
		} else {
			need += uint64(l.maxConns)
		}
	}
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return need, 0, true // unknown: nothing to warn about
	}
	return need, r.Cur, need <= r.Cur
}
