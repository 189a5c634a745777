package server

import (
	"log"
	"net"
	"net/http"
	"syscall"
	"time"

	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Limits bound what one client can hold on each listener: connections,
// streams per connection, and how long an idle or slow connection lives.
// Without them a flood of idle connections on one listener takes the file
// descriptors every other listener (and key reloads) need.
type Limits struct {
	MaxConns, AdminMaxConns int
	MaxStreams              uint
	ReadHeaderTimeout       time.Duration
	IdleTimeout             time.Duration
	GRPCMaxConnIdle         time.Duration
	GRPCMaxConnAge          time.Duration // 0: never
	GRPCMaxConnAgeGrace     time.Duration
	GRPCKeepaliveMinTime    time.Duration
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

// grpcServerOptions are the gRPC server's stream, keepalive and handshake
// limits.
func (l *Limits) grpcServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(grpcMaxRecvMsgSize),
		grpc.MaxConcurrentStreams(uint32(l.MaxStreams)),
		grpc.ConnectionTimeout(l.ReadHeaderTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             l.GRPCKeepaliveMinTime,
			PermitWithoutStream: true, // an idle proxy connection may ping, just not too often
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     l.GRPCMaxConnIdle,
			MaxConnectionAge:      l.GRPCMaxConnAge, // 0: never, in grpc-go
			MaxConnectionAgeGrace: l.GRPCMaxConnAgeGrace,
			Time:                  grpcKeepaliveTime, // ping an idle peer to find dead ones
			Timeout:               grpcKeepaliveWait,
		}),
	}
}

// httpServer is an http.Server for the HTTP authorization listener
// (admin false) or the admin listener, with every timeout set, errors
// logged through errLog.
func (l *Limits) httpServer(h http.Handler, admin bool, errLog *log.Logger) *http.Server {
	s := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ErrorLog:          errLog,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: int(l.MaxStreams)},
	}
	if admin {
		s.MaxHeaderBytes = adminMaxHeaderBytes
	}
	return s
}

// limit caps the connections a listener holds open: Accept waits while the
// cap is reached, so further clients queue in the kernel's accept backlog
// without taking one of the process's file descriptors.
func (l *Limits) limit(name string, ln net.Listener) net.Listener {
	if name == "admin" {
		return netutil.LimitListener(ln, l.AdminMaxConns)
	}
	return netutil.LimitListener(ln, l.MaxConns)
}

// fdBudget reports whether the caps of the given listeners, plus a reserve,
// fit the process's file-descriptor limit, with the numbers for a message.
func (l *Limits) fdBudget(names []string) (need, have uint64, ok bool) {
	need = fdReserve
	for _, n := range names {
		if n == "admin" {
			need += uint64(l.AdminMaxConns)
		} else {
			need += uint64(l.MaxConns)
		}
	}
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return need, 0, true // unknown: nothing to warn about
	}
	return need, r.Cur, need <= r.Cur
}
