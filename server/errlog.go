package server

import (
	"context"
	"fmt"
	"log"
	"regexp"
	"strings"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/extauthz/extauthz/authz"
)

// Errors that net/http and grpc-go report themselves (failed TLS handshakes,
// Accept errors, bogus HTTP/2 prefaces, transport errors) go through the
// same JSON logger as everything else: one log stream a machine can parse.
// Their text is the libraries', so it is redacted for capabilities and
// bearer values first: a bogus preface, for one, is quoted as it arrived.

var secretPattern = regexp.MustCompile(`kka1\.[^\s"\\]*|(?i:bearer)\s+[^\s"\\]+`)

// redact replaces anything that looks like a capability or a bearer value.
func redact(s string) string {
	return secretPattern.ReplaceAllString(s, "[redacted]")
}

// errorLog is an http.Server ErrorLog writing one JSON warning per message.
func errorLog(l zerolog.Logger, listener string) *log.Logger {
	return log.New(errorLogWriter{l.With().Str("component", "http").Str("listener", listener).Logger()}, "", 0)
}

type errorLogWriter struct{ log zerolog.Logger }

func (w errorLogWriter) Write(p []byte) (int, error) {
	w.log.Warn().Msg(redact(strings.TrimRight(string(p), "\n")))
	return len(p), nil
}

// grpcLogger is grpc-go's logger on zerolog. gRPC's info lines are chatty
// (connection state changes): they go to debug.
type grpcLogger struct{ log zerolog.Logger }

var _ grpclog.LoggerV2 = grpcLogger{}

// SetGRPCLogger installs l as grpc-go's logger; it must run before any gRPC
// server or client exists (grpclog's rule).
func SetGRPCLogger(l zerolog.Logger) {
	grpclog.SetLoggerV2(grpcLogger{l.With().Str("component", "grpc").Logger()})
}

func (g grpcLogger) emit(ev *zerolog.Event, msg string) {
	ev.Msg(redact(strings.TrimRight(msg, "\n")))
}

// info logs one of gRPC's info lines at debug, except a failed connection
// set-up (a TLS handshake refused, a bogus HTTP/2 preface): grpc-go calls it
// info, net/http logs its own at the error log, and an operator chasing an
// mTLS misconfiguration needs to see it, so it is a warning here too.
func (g grpcLogger) info(msg string) {
	if strings.Contains(msg, "failed to create ServerTransport") {
		g.emit(g.log.Warn(), msg)
		return
	}
	g.emit(g.log.Debug(), msg)
}

func (g grpcLogger) Info(args ...any)                 { g.info(fmt.Sprint(args...)) }
func (g grpcLogger) Infoln(args ...any)               { g.info(fmt.Sprintln(args...)) }
func (g grpcLogger) Infof(format string, args ...any) { g.info(fmt.Sprintf(format, args...)) }
func (g grpcLogger) Warning(args ...any)              { g.emit(g.log.Warn(), fmt.Sprint(args...)) }
func (g grpcLogger) Warningln(args ...any)            { g.emit(g.log.Warn(), fmt.Sprintln(args...)) }
func (g grpcLogger) Warningf(format string, args ...any) {
	g.emit(g.log.Warn(), fmt.Sprintf(format, args...))
}
func (g grpcLogger) Error(args ...any)   { g.emit(g.log.Error(), fmt.Sprint(args...)) }
func (g grpcLogger) Errorln(args ...any) { g.emit(g.log.Error(), fmt.Sprintln(args...)) }
func (g grpcLogger) Errorf(format string, args ...any) {
	g.emit(g.log.Error(), fmt.Sprintf(format, args...))
}
func (g grpcLogger) Fatal(args ...any)   { g.emit(g.log.Fatal(), fmt.Sprint(args...)) }
func (g grpcLogger) Fatalln(args ...any) { g.emit(g.log.Fatal(), fmt.Sprintln(args...)) }
func (g grpcLogger) Fatalf(format string, args ...any) {
	g.emit(g.log.Fatal(), fmt.Sprintf(format, args...))
}

// V reports whether verbose (level l) info lines are wanted: only level 0,
// and only when debug is on.
func (g grpcLogger) V(l int) bool { return l <= 0 && g.log.GetLevel() <= zerolog.DebugLevel }

// checkFailureLog logs the Check RPCs that end in a gRPC error instead of a
// decision (grpcMetrics counts them, by code). authz answers every request
// it can read with a decision; what remains is a request it never saw:
// larger than the receive limit (ResourceExhausted), undecodable, or
// cancelled. Envoy then applies failure_mode_allow: false in every shipped
// config, so each one is a deny (status_on_error's status) that the decision
// log would otherwise not show.
type checkFailureLog struct{ log zerolog.Logger }

// CheckMethod is the full name of Envoy's Check RPC.
const CheckMethod = "/" + authz.ServiceName + "/Check"

// record logs a Check that ended in err (not nil).
func (c checkFailureLog) record(ctx context.Context, end *stats.End) {
	st := status.Convert(end.Error)
	reason := "request_unreadable"
	switch st.Code() {
	case codes.ResourceExhausted:
		reason = "request_too_large"
	case codes.Canceled, codes.DeadlineExceeded:
		reason = "cancelled"
	}
	ev := c.log.Warn().Str("decision", "error").Str("reason", reason).Str("grpc_code", st.Code().String()).
		Str("error", redact(st.Message())).Dur("duration", end.EndTime.Sub(end.BeginTime))
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		ev = ev.Str("peer", p.Addr.String())
	}
	ev.Msg("check failed")
}
