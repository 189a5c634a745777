package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/authz"
	"github.com/extauthz/extauthz/policy"
)

// serveOptions are the flags of `extauthz serve` (and `check-config`).
type serveOptions struct {
	grpcAddr, httpAddr, adminAddr string
	keyFile                       string
	capabilityHeader              string
	containerIDFrom               string
	httpContainerIDHeader         string
	upstreamScheme                string
	devHTTPHosts                  string
	apiTokenFile                  string
	revocationFile                string
	revocationStore               string
	revocationStorePasswordFile   string
	revocationStoreCAFile         string
	revocationMaxStaleness        time.Duration
	revocationResyncInterval      time.Duration
	tlsCertFile, tlsKeyFile       string
	tlsClientCAFile               string
	tlsClientIdentities           string
	logLevel                      string
	logAllows                     string
	dev, grpcReflection           bool
	strictPerms                   bool
	tracing                       bool
	keyReloadInterval             time.Duration
	shutdownTimeout               time.Duration
	drainDelay                    time.Duration
	capabilityCacheSize           int
	limits                        limitOptions

	// derived by validate
	identity authz.IdentitySource
	capHdr   string
	extra    []string
	policy   *policy.Policy
	level    zerolog.Level
	allowLog authz.LogAllows
	// revocationKind is the revocation store chosen (storeMemory,
	// storeFile, storeRedis); revocationWhy says how memory was chosen.
	revocationKind, revocationWhy string
}

// The capability cache's default and upper bound: each entry is at most
// capability.MaxCachedTokenLen of claims plus about 200 bytes of overhead.
const (
	defaultCapabilityCacheSize = 10000
	maxCapabilityCacheSize     = 1000000
)

func parseServeFlags(name string, args []string, getenv func(string) string, stderr io.Writer) (*serveOptions, error) {
	o := &serveOptions{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.grpcAddr, "grpc-addr", ":9191", "gRPC ext_authz listen address: host:port (port 0 picks a free port) or unix:PATH")
	fs.StringVar(&o.httpAddr, "http-addr", "", "HTTP listen address (host:port or unix:PATH) for the HTTP authorization endpoints and the capability API; off unless set")
	fs.StringVar(&o.adminAddr, "admin-addr", ":9090", "admin listen address for /healthz, /readyz, /metrics; empty disables")
	fs.StringVar(&o.keyFile, "key-file", "", "key file: one base64 AES-256 key per line, the first seals; else EXTAUTHZ_KEYS")
	fs.StringVar(&o.capabilityHeader, "capability-header", authz.DefaultCapabilityHeader, "dedicated request header that may carry the capability")
	fs.StringVar(&o.containerIDFrom, "container-id-from", authz.DefaultIdentitySpec, "caller identity for gRPC checks: context-extension:KEY | principal:REGEX | header:NAME")
	fs.StringVar(&o.httpContainerIDHeader, "http-container-id-header", "", "with --http-addr: the header carrying the caller identity in the HTTP authorization mode, which the proxy must set and strip from clients (e.g. x-outbound-container-id); unset, only the capability API is served")
	fs.StringVar(&o.upstreamScheme, "upstream-scheme", "", "upstream scheme when the proxy originates TLS (https); overridden by the upstream_scheme context extension")
	fs.StringVar(&o.devHTTPHosts, "dev-http-hosts", "", "comma-separated extra hosts allowed over plain http (development only)")
	fs.StringVar(&o.apiTokenFile, "api-token-file", "", "file holding the bearer token that guards the issue/redeem API; unset disables the API")
	fs.StringVar(&o.revocationFile, "revocation-file", "", "file that keeps one replica's revocations across restarts (appended and fsynced before a revocation is acknowledged); excludes --revocation-store")
	fs.StringVar(&o.revocationStore, "revocation-store", "", revocationStoreUsage)
	fs.StringVar(&o.revocationStorePasswordFile, "revocation-store-password-file", "", "with a redis:// or rediss:// --revocation-store: file holding the Redis AUTH password (replaces one in the URL)")
	fs.StringVar(&o.revocationStoreCAFile, "revocation-store-ca-file", "", "with a rediss:// --revocation-store: PEM CA bundle that verifies the server")
	fs.DurationVar(&o.revocationMaxStaleness, "revocation-max-staleness", 60*time.Second, "with --revocation-store: how long to go on deciding with the last known revocations after losing Redis; then deny with revocation_unavailable (503)")
	fs.DurationVar(&o.revocationResyncInterval, "revocation-resync-interval", 30*time.Second, "with --revocation-store: period of the full reload that heals missed announcements")
	fs.StringVar(&o.tlsCertFile, "tls-cert-file", "", "PEM certificate (chain) for TLS on the gRPC and HTTP listeners; reloaded like the key file")
	fs.StringVar(&o.tlsKeyFile, "tls-key-file", "", "PEM private key for --tls-cert-file")
	fs.StringVar(&o.tlsClientCAFile, "tls-client-ca-file", "", "PEM CA bundle: require and verify client certificates (mTLS) on the gRPC and HTTP listeners; needs --tls-client-identities")
	fs.StringVar(&o.tlsClientIdentities, "tls-client-identities", "", "with --tls-client-ca-file: the client certificates allowed, comma-separated uri:NAME or dns:NAME (exact) or uri:~REGEX, dns:~REGEX (whole name)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.logAllows, "log-allows", "all", "which allowed decisions get an info line: all (the audit trail of every credential use), sampled (1 in 100, counted: the first allow and every 100th after it, each line with \"sample\":100), or none; every deny is logged whatever this says")
	fs.BoolVar(&o.dev, "dev", false, "development mode: ephemeral key, loopback addresses, revocations in memory (implies --revocation-store=memory unless a store is named), prints a sample capability and request")
	fs.BoolVar(&o.grpcReflection, "grpc-reflection", false, "enable gRPC server reflection")
	fs.BoolVar(&o.tracing, "tracing", false, "export an OpenTelemetry span per decision over OTLP, configured by the standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL grpc or http/protobuf, OTEL_TRACES_SAMPLER, …)")
	fs.BoolVar(&o.strictPerms, "strict-perms", false, "refuse to start when a key, token or TLS key file is readable by group or others (else a warning)")
	fs.DurationVar(&o.keyReloadInterval, "key-reload-interval", 5*time.Second, "how often to check the key file (and TLS files) for changes (0 disables; SIGHUP always reloads)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 15*time.Second, "after the drain delay, how long to let in-flight requests finish before cutting them off")
	fs.DurationVar(&o.drainDelay, "drain-delay", defaultDrainDelay, "on SIGTERM, report NOT_SERVING but keep serving this long, so that health checkers move traffic away first (0 with --dev)")
	fs.IntVar(&o.capabilityCacheSize, "capability-cache-size", defaultCapabilityCacheSize, "opened capabilities kept in memory (keyed by the exact capability, expiry checked on every use, emptied on key reload) so that a repeated capability is not decrypted again; 0 disables")
	o.limits.register(fs)
	usageWithEnv(fs, "extauthz "+name+" [flags]")
	if err := applyEnv(fs, getenv); err != nil {
		return nil, err
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.dev && (o.keyFile != "" || getenv("EXTAUTHZ_KEYS") != "") {
		return nil, errors.New("--dev makes an ephemeral key and prints a capability sealed with it: it cannot be combined with --key-file or EXTAUTHZ_KEYS (that would print a capability sealed with a real key)")
	}
	if o.dev {
		// Loopback unless an address was set explicitly: a development key
		// should not be reachable from the network.
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		// The HTTP mode is on in development, with the usual header.
		if !set["http-addr"] && getenv(envName("http-addr")) == "" {
			o.httpAddr = ":8181"
		}
		if !set["http-container-id-header"] && getenv(envName("http-container-id-header")) == "" {
			o.httpContainerIDHeader = authz.DefaultHTTPIdentityHeader
		}
		for flagName, addr := range map[string]*string{"grpc-addr": &o.grpcAddr, "http-addr": &o.httpAddr, "admin-addr": &o.adminAddr} {
			if !set[flagName] && getenv(envName(flagName)) == "" && strings.HasPrefix(*addr, ":") {
				*addr = "127.0.0.1" + *addr
			}
		}
		o.grpcReflection = true
		if !set["drain-delay"] && getenv(envName("drain-delay")) == "" {
			o.drainDelay = 0 // no proxy to drain from: stop at once on Ctrl-C
		}
	}
	return o, o.validate()
}

func (o *serveOptions) validate() error {
	var err error
	if o.identity, err = authz.ParseIdentitySource(o.containerIDFrom); err != nil {
		return fmt.Errorf("--container-id-from: %w", err)
	}
	if o.capHdr, err = authz.CanonicalCapabilityHeader(o.capabilityHeader); err != nil {
		return fmt.Errorf("--capability-header: %w", err)
	}
	if err := authz.CheckUpstreamScheme(o.upstreamScheme); err != nil {
		return fmt.Errorf("--upstream-scheme: %w", err)
	}
	if o.policy, o.extra, err = devHTTPPolicy(o.devHTTPHosts); err != nil {
		return err
	}
	if o.level, err = zerolog.ParseLevel(o.logLevel); err != nil || o.logLevel == "" {
		return fmt.Errorf("--log-level (or %s): want debug, info, warn or error, got %q", envName("log-level"), o.logLevel)
	}
	if o.allowLog, err = authz.ParseLogAllows(o.logAllows); err != nil {
		return fmt.Errorf("--log-allows (or %s): %w", envName("log-allows"), err)
	}
	if o.grpcAddr == "" {
		return errors.New("--grpc-addr: must not be empty")
	}
	if err := o.chooseRevocationStore(); err != nil {
		return err
	}
	if err := checkListenAddrs(map[string]string{"grpc-addr": o.grpcAddr, "http-addr": o.httpAddr, "admin-addr": o.adminAddr}); err != nil {
		return err
	}
	for _, d := range []struct {
		flag     string
		v        time.Duration
		positive bool
	}{{"key-reload-interval", o.keyReloadInterval, false}, {"drain-delay", o.drainDelay, false}, {"shutdown-timeout", o.shutdownTimeout, true},
		{"revocation-max-staleness", o.revocationMaxStaleness, true}, {"revocation-resync-interval", o.revocationResyncInterval, true}} {
		switch {
		case d.positive && d.v <= 0:
			return fmt.Errorf("--%s (or %s) must be more than 0, got %v", d.flag, envName(d.flag), d.v)
		case d.v < 0:
			return fmt.Errorf("--%s (or %s) must not be negative, got %v (0 turns it off)", d.flag, envName(d.flag), d.v)
		}
	}
	if o.capabilityCacheSize < 0 || o.capabilityCacheSize > maxCapabilityCacheSize {
		return fmt.Errorf("--capability-cache-size (or %s): want 0 to %d, got %d", envName("capability-cache-size"), maxCapabilityCacheSize, o.capabilityCacheSize)
	}
	return o.limits.validate()
}

func runServe(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	o, err := parseServeFlags("serve", args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "extauthz serve: %v\n", err)
		return 2
	}
	logw := newLogBuffer(stderr, logFlushInterval)
	defer logw.Close() // every line logged before exit is written
	log := zerolog.New(logw).Level(o.level).With().Timestamp().Logger()
	setGRPCLogger(log)
	a, err := newApp(o, os.Getenv, log)
	if err != nil {
		logw.Flush()
		fmt.Fprintf(stderr, "extauthz serve: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := a.run(ctx, hup, stdout); err != nil {
		log.Error().Err(err).Msg("server stopped with an error")
		return 1
	}
	return 0
}

func runCheckConfig(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	o, err := parseServeFlags("check-config", args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "extauthz check-config: %v\n", err)
		return 2
	}
	a, err := newApp(o, os.Getenv, zerolog.Nop())
	if err != nil {
		fmt.Fprintf(stderr, "extauthz check-config: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "configuration OK: %d key(s) %s, container id from %s, capability header %s, revocations %s\n",
		a.codec.KeyRing().Len(), strings.Join(a.codec.KeyRing().Fingerprints(), ","), o.identity, o.capHdr, o.revocationSummary())
	return 0
}
