package server

import (
	"errors"
	"strings"
	"time"

	"github.com/extauthz/extauthz/authz"
	"github.com/extauthz/extauthz/internal/flagspec"
	"github.com/extauthz/extauthz/policy"
)

// Config is what a Server runs with: the settings of `extauthz serve` (and
// `check-config`), one field per flag. Flags declares each of them once;
// Validate checks the rules between them.
type Config struct {
	GRPCAddr, HTTPAddr, AdminAddr string // host:port or unix:PATH; "" turns HTTP and admin off

	KeyFile string // one base64 key per line, the first seals; reloaded
	Keys    string // EXTAUTHZ_KEYS: comma-separated keys, when no key file
	Dev     bool   // an ephemeral key, loopback addresses, a sample capability printed

	Identity           authz.IdentitySource // the gRPC caller's identity
	CapabilityHeader   string               // canonical
	HTTPIdentityHeader string               // "": the HTTP authorization endpoints are off
	UpstreamScheme     string
	Policy             *policy.Policy
	APITokenFile       string          // "": the capability API is off; reloaded
	LogAllows          authz.LogAllows // which allows get a decision line; every deny does
	ProfilesFile       string          // route profiles (docs/profiles.md): a file or a directory; "": none; reloaded
	GRPCReflection     bool
	StrictPerms        bool

	ReloadInterval      time.Duration // how often secret files are polled; 0: only on a reload signal
	ShutdownTimeout     time.Duration
	DrainDelay          time.Duration
	CapabilityCacheSize int

	TLS         TLSConfig
	Revocations RevocationConfig
	Limits      Limits
}

// TLSConfig is TLS, optionally mutual, on the gRPC and HTTP listeners.
type TLSConfig struct {
	CertFile, KeyFile, ClientCAFile string // reloaded
	ClientIdentities                ClientIdentities
}

// RevocationConfig says where revocations are kept.
type RevocationConfig struct {
	File                 string // a FileStore
	Store                string // memory, or a redis:// or rediss:// URL
	PasswordFile, CAFile string // for Redis; reloaded
	MaxStaleness, Resync time.Duration
}

// The capability cache's default and upper bound: each entry is at most
// capability.MaxCachedTokenLen of claims plus about 200 bytes of overhead.
const (
	defaultCapabilityCacheSize = 10000
	maxCapabilityCacheSize     = 1000000
)

// Flags declares every setting of c once: its flag, default, help text,
// environment variable (flagspec.EnvName) and rules. A default that --dev
// changes is declared with it: loopback listeners, so that a development
// key is not reachable from the network, and the HTTP mode on.
func (c *Config) Flags() []flagspec.Flag {
	type d = time.Duration
	l := &c.Limits
	return []flagspec.Flag{
		flagspec.Var(&c.GRPCAddr, "grpc-addr", ":9191", "gRPC ext_authz listen address: host:port (port 0 picks a free port) or unix:PATH", flagspec.NotEmpty, checkListenAddr).DefaultWhen(&c.Dev, "127.0.0.1:9191"),
		flagspec.Var(&c.HTTPAddr, "http-addr", "", "HTTP listen address (host:port or unix:PATH) for the HTTP authorization endpoints and the capability API; off unless set", checkListenAddr).DefaultWhen(&c.Dev, "127.0.0.1:8181"),
		flagspec.Var(&c.AdminAddr, "admin-addr", ":9090", "admin listen address for /healthz, /readyz, /metrics; empty disables", checkListenAddr).DefaultWhen(&c.Dev, "127.0.0.1:9090"),
		flagspec.Var(&c.KeyFile, "key-file", "", "key file: one base64 AES-256 key per line, the first seals; else EXTAUTHZ_KEYS"),
		flagspec.Env(&c.Keys, "EXTAUTHZ_KEYS", "comma-separated base64 AES-256 keys, the first seals, when no --key-file is given (development)"),
		flagspec.Parsed(&c.CapabilityHeader, "capability-header", authz.DefaultCapabilityHeader, "dedicated request header that may carry the capability", authz.CanonicalCapabilityHeader),
		flagspec.Parsed(&c.Identity, "container-id-from", authz.DefaultIdentitySpec, "caller identity for gRPC checks: context-extension:KEY | principal:REGEX | header:NAME", authz.ParseIdentitySource),
		flagspec.Var(&c.HTTPIdentityHeader, "http-container-id-header", "", "with --http-addr: the header carrying the caller identity in the HTTP authorization mode, which the proxy must set and strip from clients (e.g. x-outbound-container-id); unset, only the capability API is served").DefaultWhen(&c.Dev, authz.DefaultHTTPIdentityHeader),
		flagspec.Var(&c.UpstreamScheme, "upstream-scheme", "", "upstream scheme when the proxy originates TLS (https); overridden by the upstream_scheme context extension", authz.CheckUpstreamScheme),
		flagspec.Parsed(&c.Policy, "dev-http-hosts", "", "comma-separated extra hosts allowed over plain http (development only)", ParsePolicy),
		flagspec.Parsed(&c.LogAllows, "log-allows", "all", "which allowed decisions get an info line: all (the audit trail of every credential use), sampled (1 in 100, counted: the first allow and every 100th after it, each line with \"sample\":100), or none; every deny is logged whatever this says", authz.ParseLogAllows),
		flagspec.Var(&c.ProfilesFile, "profiles-file", "", "route profiles (docs/profiles.md): a YAML file, or a directory of them (a ConfigMap mount); unset, only kka1 capabilities; reloaded like the key file, a bad edit keeping the last good profiles"),
		flagspec.Var(&c.APITokenFile, "api-token-file", "", "file holding the bearer token that guards the issue/redeem API; unset disables the API; reloaded like the key file"),
		flagspec.Var(&c.Revocations.File, "revocation-file", "", "file that keeps one replica's revocations across restarts (appended and fsynced before a revocation is acknowledged); excludes --revocation-store"),
		flagspec.Var(&c.Revocations.Store, "revocation-store", "", revocationStoreUsage, checkRevocationStore),
		flagspec.Var(&c.Revocations.PasswordFile, "revocation-store-password-file", "", "with a redis:// or rediss:// --revocation-store: file holding the Redis AUTH password (replaces one in the URL); reloaded like the key file, used from the next connection"),
		flagspec.Var(&c.Revocations.CAFile, "revocation-store-ca-file", "", "with a rediss:// --revocation-store: PEM CA bundle that verifies the server; reloaded like the key file, used from the next connection"),
		flagspec.Var(&c.Revocations.MaxStaleness, "revocation-max-staleness", 60*time.Second, "with --revocation-store: how long to go on deciding with the last known revocations after losing Redis; then deny with revocation_unavailable (503)", flagspec.Positive[d]),
		flagspec.Var(&c.Revocations.Resync, "revocation-resync-interval", 30*time.Second, "with --revocation-store: period of the full reload that heals missed announcements", flagspec.Positive[d]),
		flagspec.Var(&c.TLS.CertFile, "tls-cert-file", "", "PEM certificate (chain) for TLS on the gRPC and HTTP listeners; reloaded like the key file"),
		flagspec.Var(&c.TLS.KeyFile, "tls-key-file", "", "PEM private key for --tls-cert-file"),
		flagspec.Var(&c.TLS.ClientCAFile, "tls-client-ca-file", "", "PEM CA bundle: require and verify client certificates (mTLS) on the gRPC and HTTP listeners; needs --tls-client-identities"),
		flagspec.Parsed(&c.TLS.ClientIdentities, "tls-client-identities", "", "with --tls-client-ca-file: the client certificates allowed, comma-separated uri:NAME or dns:NAME (exact) or uri:~REGEX, dns:~REGEX (whole name)", ParseClientIdentities),
		flagspec.Var(&c.Dev, "dev", false, "development mode: ephemeral key, loopback addresses, revocations in memory (implies --revocation-store=memory unless a store is named), prints a sample capability and request"),
		flagspec.Var(&c.GRPCReflection, "grpc-reflection", false, "enable gRPC server reflection").DefaultWhen(&c.Dev, "true"),
		flagspec.Var(&c.StrictPerms, "strict-perms", false, "refuse to start when the key file, API token file or TLS key file is open to other users (any \"other\" permission bit; group access is allowed; else a warning)"),
		flagspec.Var(&c.ReloadInterval, "key-reload-interval", 5*time.Second, "how often to check the key file (and the TLS, API token and Redis password and CA files) for changes (0 disables; SIGHUP always reloads)", flagspec.NonNegative[d]),
		flagspec.Var(&c.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "after the drain delay, how long to let in-flight requests finish before cutting them off", flagspec.Positive[d]),
		flagspec.Var(&c.DrainDelay, "drain-delay", defaultDrainDelay, "on SIGTERM, report NOT_SERVING but keep serving this long, so that health checkers move traffic away first (0 with --dev)", flagspec.NonNegative[d]).DefaultWhen(&c.Dev, "0s"),
		flagspec.Var(&c.CapabilityCacheSize, "capability-cache-size", defaultCapabilityCacheSize, "opened capabilities kept in memory (keyed by the exact capability, expiry checked on every use, emptied on key reload) so that a repeated capability is not decrypted again; kka1 and profile capabilities have a cache of this size each; 0 disables", flagspec.Between(0, maxCapabilityCacheSize)),
		flagspec.Var(&l.MaxConns, "max-connections", 4096, "most open connections on the gRPC listener, and on the HTTP listener (each); more wait in the kernel's accept queue", flagspec.Positive[int]),
		flagspec.Var(&l.AdminMaxConns, "admin-max-connections", 1024, "most open connections on the admin listener (probes and scrapers; the headroom absorbs a burst without blocking probes)", flagspec.Positive[int]),
		flagspec.Var(&l.MaxStreams, "max-concurrent-streams", 256, "most concurrent streams (requests) per HTTP/2 connection, gRPC and HTTP", flagspec.Between[uint](1, 1<<20)),
		flagspec.Var(&l.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "a new connection must finish its TLS and HTTP/2 handshake (gRPC) or send its request headers (HTTP, admin) within this", flagspec.Positive[d]),
		flagspec.Var(&l.IdleTimeout, "idle-timeout", 2*time.Minute, "close an HTTP or admin keep-alive connection idle this long", flagspec.Positive[d]),
		flagspec.Var(&l.GRPCMaxConnIdle, "grpc-max-connection-idle", 5*time.Minute, "close (GOAWAY) a gRPC connection without an RPC for this long", flagspec.Positive[d]),
		flagspec.Var(&l.GRPCMaxConnAge, "grpc-max-connection-age", 30*time.Minute, "close (GOAWAY) a gRPC connection this old, so that proxies rebalance; 0 disables", flagspec.NonNegative[d]),
		flagspec.Var(&l.GRPCMaxConnAgeGrace, "grpc-max-connection-age-grace", 10*time.Second, "after --grpc-max-connection-age, let in-flight RPCs finish for this long", flagspec.Positive[d]),
		flagspec.Var(&l.GRPCKeepaliveMinTime, "grpc-keepalive-min-time", 10*time.Second, "close a gRPC connection whose client pings more often than this", flagspec.Positive[d]),
	}
}

// Validate checks the rules between settings, after each has passed its
// own: --dev never seals with a real key, one revocation store is named
// the way the API needs, and no two listeners share an address.
func (c *Config) Validate() error {
	if c.Dev && (c.KeyFile != "" || c.Keys != "") {
		return errors.New("--dev makes an ephemeral key and prints a capability sealed with it: it cannot be combined with --key-file or EXTAUTHZ_KEYS (that would print a capability sealed with a real key)")
	}
	if _, _, err := c.revocationStore(); err != nil {
		return err
	}
	return checkListenAddrs(map[string]string{"grpc-addr": c.GRPCAddr, "http-addr": c.HTTPAddr, "admin-addr": c.AdminAddr})
}

// ParsePolicy builds the route policy for a --dev-http-hosts value: the
// default plain-http hosts plus the comma-separated extras.
func ParsePolicy(list string) (*policy.Policy, error) {
	var extra []string
	for h := range strings.SplitSeq(list, ",") {
		if h = strings.TrimSpace(h); h != "" {
			extra = append(extra, h)
		}
	}
	return policy.New(extra...)
}
