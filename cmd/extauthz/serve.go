package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/authz"
	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/flagspec"
	"github.com/extauthz/extauthz/server"
)

// serveOptions is the configuration of `extauthz serve` and `check-config`:
// the server's (declared in server.Config.Flags), and the two settings of
// what main builds around it, the root logger and tracing.
type serveOptions struct {
	srv     server.Config
	level   zerolog.Level
	tracing bool
	origins flagspec.Origins // the settings taken from the environment, for errors

	// Copies of server settings, under the names the tracing code
	// (tracing.go and its tests, rewritten on another branch) reads.
	identity              authz.IdentitySource
	httpContainerIDHeader string
	shutdownTimeout       time.Duration
}

func (o *serveOptions) flags() []flagspec.Flag {
	return append(o.srv.Flags(),
		flagspec.Parsed(&o.level, "log-level", "info", "log level: debug, info, warn, error", func(s string) (zerolog.Level, error) {
			l, err := zerolog.ParseLevel(s)
			if err != nil || s == "" {
				return l, fmt.Errorf("want debug, info, warn or error, got %q", s)
			}
			return l, nil
		}),
		flagspec.Var(&o.tracing, "tracing", false, "export an OpenTelemetry span per decision over OTLP, configured by the standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL grpc or http/protobuf, OTEL_TRACES_SAMPLER, …)"),
	)
}

// parseServeFlags parses the flags of serve or check-config (name), then
// checks the rules between them; --help writes the usage to help. An error
// that names a flag set in the environment names its variable.
func parseServeFlags(name string, args []string, getenv func(string) string, help io.Writer) (*serveOptions, error) {
	o := &serveOptions{}
	var err error
	if o.origins, err = flagspec.Parse(name, "extauthz "+name+" [flags]", o.flags(), args, getenv, help); err != nil {
		return nil, err
	}
	o.identity, o.httpContainerIDHeader, o.shutdownTimeout = o.srv.Identity, o.srv.HTTPIdentityHeader, o.srv.ShutdownTimeout
	return o, o.origins.Explain(o.srv.Validate())
}

// checkMethod is Check's full method name, for the tracing code.
const checkMethod = server.CheckMethod

// app is a server with the tracing main adds to it.
type app struct {
	opts    *serveOptions
	log     zerolog.Logger
	srv     *server.Server
	codec   *capability.Codec
	core    *authz.Authorizer
	httpH   http.Handler  // the HTTP listener's handler, before tracing
	tracing *tracingSetup // nil: --tracing off
}

func newApp(o *serveOptions, getenv func(string) string, log zerolog.Logger) (*app, error) {
	srv, err := server.New(o.srv, log)
	if err != nil {
		return nil, o.origins.Explain(err)
	}
	a := &app{opts: o, log: log, srv: srv, codec: srv.Codec(), core: srv.Authorizer(), httpH: srv.HTTPHandler()}
	if o.tracing {
		if a.tracing, err = newTracingSetup(context.Background(), getenv, log); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// hooks install the tracer, with --tracing: authz makes a span per Check
// and, through otelhttp, per HTTP decision; its decision observer annotates
// them.
func (a *app) hooks() server.Hooks {
	h := server.Hooks{ReadyFields: map[string]any{"tracing": a.tracing != nil}}
	if a.tracing == nil {
		return h
	}
	h.TracerProvider = a.tracing.tp
	h.WrapHTTP = func(next http.Handler) http.Handler { return authz.TraceHTTP(next, a.tracing.tp) }
	return h
}

func runServe(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	o, err := parseServeFlags("serve", args, os.Getenv, stdout)
	if code, done := exitCode("serve", err, stderr); done {
		return code
	}
	logw := server.NewLogBuffer(stderr, server.LogFlushInterval)
	defer logw.Close() // every line logged before exit is written
	log := zerolog.New(logw).Level(o.level).With().Timestamp().Logger()
	server.SetGRPCLogger(log)
	a, err := newApp(o, os.Getenv, log)
	if err != nil {
		logw.Flush()
		fmt.Fprintf(stderr, "extauthz serve: %v\n", err)
		return 1
	}
	ctx, stop := stopSignals(func(sig os.Signal) {
		log.Warn().Str("signal", sig.String()).Msg("second signal during the drain: exiting now, without waiting for in-flight requests")
		logw.Flush()
		os.Exit(signalExitCode(sig))
	})
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	err = a.srv.Run(ctx, server.RunOptions{Hooks: a.hooks(), Reload: hup, Stdout: stdout})
	a.shutdownTracing()
	if err != nil {
		log.Error().Err(o.origins.Explain(err)).Msg("server stopped with an error")
		return 1
	}
	return 0
}

// runCheckConfig checks what serve would check before it listens, through
// the same code (server.New): errors exit 1 or 2, and the warnings serve
// would log (a secret file other users may read) are written to stderr.
func runCheckConfig(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	o, err := parseServeFlags("check-config", args, os.Getenv, stdout)
	if code, done := exitCode("check-config", err, stderr); done {
		return code
	}
	warnings := zerolog.New(zerolog.ConsoleWriter{Out: stderr, NoColor: true,
		PartsOrder: []string{zerolog.LevelFieldName, zerolog.MessageFieldName}}).Level(zerolog.WarnLevel)
	a, err := newApp(o, os.Getenv, warnings)
	if err != nil {
		fmt.Fprintf(stderr, "extauthz check-config: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "configuration OK: %s\n", a.srv.Summary())
	return 0
}
