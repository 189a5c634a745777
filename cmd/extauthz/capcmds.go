package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/authz"
	"github.com/extauthz/extauthz/capability"
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

// runKeygen implements `extauthz keygen`: print a fresh base64 AES-256 key.
func runKeygen(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "write the key to this new file, readable by its owner only (0600); an existing file is never overwritten")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: extauthz keygen [-o FILE]\n\nPrints (or writes to FILE) a fresh random AES-256 key in standard base64, the format\nof a key file line and of EXTAUTHZ_KEYS. To rotate, put the new key on the first line\nof the key file and keep the old one below it until its capabilities have expired\n(4h at most).\n\nflags:")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	key := make([]byte, capability.KeySize)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (it aborts instead).
	line := base64.StdEncoding.EncodeToString(key) + "\n"
	if *out == "" {
		fmt.Fprint(stdout, line)
		fmt.Fprintln(stderr, "extauthz keygen: the key went to standard output; it is a secret: keep the file it lands in readable by its owner only (chmod 600), or use -o FILE")
		return 0
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		fmt.Fprintf(stderr, "extauthz keygen: %v (an existing key file is never overwritten: add the new key to it by hand)\n", err)
		return 1
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		fmt.Fprintf(stderr, "extauthz keygen: %v\n", err)
		return 1
	}
	if err := f.Close(); err != nil {
		fmt.Fprintf(stderr, "extauthz keygen: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "extauthz keygen: wrote a new key to %s (mode 0600)\n", *out)
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

Reads a subject on stdin, for example
  {"userId":"u1","cloudAgentSessionId":"c1","kiloSessionId":"k1",
   "outboundContainerId":"oc1","userToken":"…","providerToken":"…",
   "targets":{"backendBaseUrl":"https://…","providerBaseUrl":"https://…",
              "sessionIngestBaseUrl":"https://…"}}
(providerToken is optional: omit it, never null or "") and prints a kka1
capability sealed with the first key. Without --key-file the keys come from
EXTAUTHZ_KEYS.`

func issueCmd(args []string, stdin io.Reader, stdout, stderr io.Writer, env capEnv) int {
	fs := flag.NewFlagSet("issue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("key-file", "", "key file: one base64 AES-256 key per line, the first seals; else EXTAUTHZ_KEYS")
	ttl := fs.Duration("ttl", capability.DefaultLifetime, "lifetime of the capability, at most 4h")
	devHosts := fs.String("dev-http-hosts", "", "comma-separated extra hosts whose targets may use plain http (development only; serve needs the same list)")
	usageWithEnv(fs, issueSynopsis)
	if err := applyEnv(fs, env.getenv); err != nil {
		fmt.Fprintf(stderr, "extauthz issue: %v\n", err)
		return 2
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if err := capability.CheckLifetime(*ttl); err != nil {
		fmt.Fprintf(stderr, "extauthz issue: --ttl %v: %v\n", *ttl, err)
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "extauthz issue: "+format+"\n", a...)
		return 1
	}
	pol, _, err := devHTTPPolicy(*devHosts)
	if err != nil {
		fmt.Fprintf(stderr, "extauthz issue: %v\n", err)
		return 2
	}
	ring, err := loadKeyRing(*keyFile, env.getenv)
	if err != nil {
		return fail("%v", err)
	}
	data, err := io.ReadAll(io.LimitReader(stdin, maxSubjectLen+1))
	if err != nil {
		return fail("reading the subject from stdin: %v", err)
	}
	if len(data) > maxSubjectLen {
		return fail("subject on stdin is larger than %d bytes", maxSubjectLen)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fail("no subject JSON on stdin (run 'extauthz issue -h' for its shape)")
	}
	core, err := authz.NewAuthorizer(authz.Config{Codec: newCodec(ring, env.now), Policy: pol, Logger: zerolog.Nop()})
	if err != nil {
		return fail("%v", err)
	}
	tok, err := core.Issue(data, *ttl)
	if _, malformed := errors.AsType[*capability.SubjectError](err); malformed {
		return fail("subject JSON on stdin: %v", err) // never quotes a value
	}
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

func openCmd(args []string, stdin io.Reader, stdout, stderr io.Writer, env capEnv) int {
	fs := flag.NewFlagSet("open", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("key-file", "", "key file: one base64 AES-256 key per line, all are tried; else EXTAUTHZ_KEYS")
	usageWithEnv(fs, "extauthz open [--key-file FILE] < capability\n\nOpens the kka1 capability on stdin and prints its claims as JSON with\nuserToken and providerToken redacted, or the reason it does not open\n(invalid_capability, expired_capability) with exit status 1.")
	if err := applyEnv(fs, env.getenv); err != nil {
		fmt.Fprintf(stderr, "extauthz open: %v\n", err)
		return 2
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	ring, err := loadKeyRing(*keyFile, env.getenv)
	if err != nil {
		fmt.Fprintf(stderr, "extauthz open: %v\n", err)
		return 1
	}
	// Read a little more than the limit so that Open, not a silent
	// truncation, rejects an oversized capability.
	data, err := io.ReadAll(io.LimitReader(stdin, 2*capability.MaxTokenLen))
	if err != nil {
		fmt.Fprintf(stderr, "extauthz open: reading the capability from stdin: %v\n", err)
		return 1
	}
	if len(bytes.TrimSpace(data)) == 0 {
		fmt.Fprintln(stderr, "extauthz open: no capability on stdin (pipe one in: extauthz open < capability.txt)")
		return 1
	}
	claims, err := newCodec(ring, env.now).Open(string(data))
	if err != nil {
		fmt.Fprintf(stderr, "extauthz open: %v\n", err)
		return 1
	}
	out, err := json.Marshal(claims, jsontext.WithIndent("  ")) // Claims.MarshalJSON redacts the tokens
	if err != nil {
		fmt.Fprintf(stderr, "extauthz open: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", out)
	return 0
}

// parseFlags parses args and reports whether the command is done, with
// which exit status: 0 for -h, 2 for a usage error.
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		return 2, true // the flag package has printed the error and the usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "extauthz %s: unexpected argument %q (input is read from stdin)\n", fs.Name(), fs.Arg(0))
		return 2, true
	}
	return 0, false
}

// newCodec is the codec every subcommand uses: the clock now (nil: the
// system clock). Issuing goes through authz.Authorizer, which checks the
// targets against its policy.
func newCodec(ring *capability.KeyRing, now func() time.Time, extra ...capability.Option) *capability.Codec {
	if now == nil {
		now = time.Now
	}
	opts := append([]capability.Option{capability.WithClock(now)}, extra...)
	return capability.NewCodec(ring, opts...)
}
