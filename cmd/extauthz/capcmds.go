package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/authz"
	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/flagspec"
	"github.com/extauthz/extauthz/policy"
	"github.com/extauthz/extauthz/server"
)

// maxSubjectLen bounds the subject JSON that issue reads.
const maxSubjectLen = 1 << 20

// capEnv is what the capability subcommands take from the process, injected
// so that tests control it.
type capEnv struct {
	getenv func(string) string
	now    func() time.Time
}

func osCapEnv() capEnv { return capEnv{getenv: os.Getenv, now: time.Now} }

const keygenSynopsis = `extauthz keygen [-o FILE]

Prints (or writes to FILE) a fresh random AES-256 key in standard base64, the format
of a key file line and of EXTAUTHZ_KEYS. To rotate, put the new key on the first line
of the key file and keep the old one below it until its capabilities have expired
(4h at most).`

// runKeygen implements `extauthz keygen`: print a fresh base64 AES-256 key.
func runKeygen(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	var out string
	flags := []flagspec.Flag{flagspec.Var(&out, "o", "", "write the key to this new file, readable by its owner only (0600); an existing file is never overwritten").NoEnv()}
	if code, done := parse("keygen", keygenSynopsis, flags, args, os.Getenv, stdout, stderr); done {
		return code
	}
	if out == "" {
		fmt.Fprint(stdout, capability.KeyLine(capability.NewKey()))
		fmt.Fprintln(stderr, "extauthz keygen: the key went to standard output; it is a secret: keep the file it lands in readable by its owner only (chmod 600), or use -o FILE")
		return 0
	}
	if err := capability.WriteNewKeyFile(out); err != nil {
		fmt.Fprintf(stderr, "extauthz keygen: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "extauthz keygen: wrote a new key to %s (mode 0600)\n", out)
	return 0
}

// runIssue implements `extauthz issue`: seal a capability for the subject
// JSON on stdin.
func runIssue(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return issueCmd(args, stdin, stdout, stderr, osCapEnv())
}

// runOpen implements `extauthz open`: open the capability on stdin and print
// its claims with the tokens redacted.
func runOpen(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return openCmd(args, stdin, stdout, stderr, osCapEnv())
}

const issueSynopsis = `extauthz issue [--key-file FILE] [--ttl DURATION] [--dev-http-hosts H,…] < subject.json
       extauthz issue --profile NAME --profiles-file PATH --container ID
                      --credential SLOT=@FILE … [--var NAME=VALUE …] [--subject NAME=VALUE …]
                      [--key-file FILE] [--ttl DURATION] [--dev-http-hosts H,…]

Reads a subject on stdin, for example
  {"userId":"u1","cloudAgentSessionId":"c1","kiloSessionId":"k1",
   "outboundContainerId":"oc1","userToken":"…","providerToken":"…",
   "targets":{"backendBaseUrl":"https://…","providerBaseUrl":"https://…",
              "sessionIngestBaseUrl":"https://…"}}
(providerToken is optional: omit it, never null or "") and prints a kka1
capability sealed with the first key. Without --key-file the keys come from
EXTAUTHZ_KEYS.

With --profile, prints instead a profile capability (eac1.,
docs/profile-capability.md) for the route profile NAME of the profiles file,
bound to the container ID. It carries a credential for each slot the
profile's routes use and a value for each variable they bind (exactly those),
and the subject ids given (for audit and revocation). A credential is read
from a file (SLOT=@FILE) or from stdin (SLOT=@-, one slot at most), white
space around it trimmed: never from the command line, where ps shows it.
--ttl defaults to 4h, or to the profile's maxLifetime when shorter.`

// keyFlags declare where issue and open take their keys from: a key file,
// else EXTAUTHZ_KEYS.
func keyFlags(keyFile, keys *string, use string) []flagspec.Flag {
	return []flagspec.Flag{
		flagspec.Var(keyFile, "key-file", "", "key file: one base64 AES-256 key per line, "+use+"; else EXTAUTHZ_KEYS"),
		flagspec.Env(keys, "EXTAUTHZ_KEYS", "comma-separated base64 AES-256 keys, when no --key-file is given"),
	}
}

// issueOptions are the flags of `extauthz issue`.
type issueOptions struct {
	keyFile, keys string
	ttl           time.Duration // 0: the default
	pol           *policy.Policy
	// The profile capability's flags.
	profile, profilesFile, container string
	credentials, vars, subject       []string
}

func (o *issueOptions) flags() []flagspec.Flag {
	return append(keyFlags(&o.keyFile, &o.keys, "the first seals"),
		flagspec.Parsed(&o.ttl, "ttl", "", "lifetime of the capability, at most 4h; default 4h, with --profile the profile's maxLifetime when shorter", parseTTL),
		flagspec.Parsed(&o.pol, "dev-http-hosts", "", "comma-separated extra hosts whose targets may use plain http (development only; serve needs the same list)", server.ParsePolicy),
		flagspec.Var(&o.profile, "profile", "", "issue a profile capability for the route profile of this name"),
		flagspec.Var(&o.profilesFile, "profiles-file", "", "with --profile: the route profiles (a YAML file or a directory of them), as serve reads them"),
		flagspec.Var(&o.container, "container", "", "with --profile: the outboundContainerId the capability is bound to"),
		flagspec.List(&o.credentials, "credential", "with --profile: SLOT=@FILE, or SLOT=@- for stdin, the secret of a credential slot", fromFileOrStdin),
		flagspec.List(&o.vars, "var", "with --profile: NAME=VALUE, a variable of the profile's routes", namedValue),
		flagspec.List(&o.subject, "subject", "with --profile: NAME=VALUE, a subject id (user, session, tenant…)", namedValue))
}

// parseTTL reads --ttl: a lifetime capability.CheckLifetime accepts, or
// nothing (0, the default).
func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("want a duration with a unit, e.g. 30m or 2h")
	}
	return d, capability.CheckLifetime(d)
}

func issueCmd(args []string, stdin io.Reader, stdout, stderr io.Writer, env capEnv) int {
	o := &issueOptions{}
	if code, done := parse("issue", issueSynopsis, o.flags(), args, env.getenv, stdout, stderr); done {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "extauthz issue: "+format+"\n", a...)
		return code
	}
	if o.profile == "" && (o.container != "" || len(o.credentials)+len(o.vars)+len(o.subject) > 0) {
		return fail(2, "--container, --credential, --var and --subject go with --profile")
	}
	ring, err := server.LoadKeyRing(o.keyFile, o.keys)
	if err != nil {
		return fail(1, "%v", err)
	}
	codec := capability.NewCodec(ring, capability.WithClock(env.now))
	core, err := authz.NewAuthorizer(authz.Config{Codec: codec, Policy: o.pol, Logger: zerolog.Nop()})
	if err != nil {
		return fail(1, "%v", err)
	}
	var tok string
	if o.profile != "" {
		tok, err = o.issueProfile(core, stdin)
	} else {
		tok, err = issueKKA1(core, stdin, cmp.Or(o.ttl, capability.DefaultLifetime))
	}
	if err != nil {
		code := 1
		if errors.Is(err, errUsage) {
			code = 2
		}
		return fail(code, "%v", err)
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

// issueKKA1 seals a kka1 capability for the subject JSON on stdin.
func issueKKA1(core *authz.Authorizer, stdin io.Reader, ttl time.Duration) (string, error) {
	data, err := io.ReadAll(io.LimitReader(stdin, maxSubjectLen+1))
	if err != nil {
		return "", fmt.Errorf("reading the subject from stdin: %w", err)
	}
	if len(data) > maxSubjectLen {
		return "", fmt.Errorf("subject on stdin is larger than %d bytes", maxSubjectLen)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return "", errors.New("no subject JSON on stdin (run 'extauthz issue -h' for its shape)")
	}
	tok, err := core.Issue(data, ttl)
	if _, malformed := errors.AsType[*capability.SubjectError](err); malformed {
		return "", fmt.Errorf("subject JSON on stdin: %w", err) // never quotes a value
	}
	return tok, err
}

const openSynopsis = `extauthz open [--key-file FILE] < capability

Opens the kka1 capability on stdin and prints its claims as JSON with
userToken and providerToken redacted, or the reason it does not open
(invalid_capability, expired_capability) with exit status 1. A profile
capability (eac1.) prints its claims with every credential redacted.`

func openCmd(args []string, stdin io.Reader, stdout, stderr io.Writer, env capEnv) int {
	var keyFile, keys string
	if code, done := parse("open", openSynopsis, keyFlags(&keyFile, &keys, "all are tried"), args, env.getenv, stdout, stderr); done {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "extauthz open: "+format+"\n", a...)
		return 1
	}
	ring, err := server.LoadKeyRing(keyFile, keys)
	if err != nil {
		return fail("%v", err)
	}
	// Read a little more than the limit so that Open, not a silent
	// truncation, rejects an oversized capability.
	data, err := io.ReadAll(io.LimitReader(stdin, 2*capability.MaxTokenLen))
	if err != nil {
		return fail("reading the capability from stdin: %v", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fail("no capability on stdin (pipe one in: extauthz open < capability.txt)")
	}
	codec := capability.NewCodec(ring, capability.WithClock(env.now))
	var view any
	if capability.KindOf(string(data)) == capability.KindProfile {
		claims, err := codec.OpenProfile(string(data))
		if err != nil {
			return fail("%v", err)
		}
		view = redactedProfileClaims(claims)
	} else {
		claims, err := codec.Open(string(data))
		if err != nil {
			return fail("%v", err)
		}
		view = claims // Claims.MarshalJSON redacts the tokens
	}
	out, err := json.Marshal(view, jsontext.WithIndent("  "))
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(stdout, "%s\n", out)
	return 0
}

// profileView is how open shows a profile capability's claims: the
// wire's member names, each credential replaced by "[redacted]".
type profileView struct {
	Version             int               `json:"version"`
	Profile             string            `json:"profile"`
	OutboundContainerID string            `json:"outboundContainerId"`
	Subject             map[string]string `json:"subject"`
	Vars                map[string]string `json:"vars"`
	Credentials         map[string]string `json:"credentials"`
	IssuedAt            int64             `json:"issuedAt"`
	ExpiresAt           int64             `json:"expiresAt"`
}

func redactedProfileClaims(c capability.ProfileClaims) profileView {
	v := profileView{Version: c.Version, Profile: c.Profile, OutboundContainerID: c.OutboundContainerID,
		Subject: c.Subject, Vars: c.Vars, Credentials: map[string]string{}, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}
	for slot := range c.Credentials {
		v.Credentials[slot] = "[redacted]"
	}
	return v
}
