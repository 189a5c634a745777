// Command extauthz is an Envoy external authorization server that swaps kka1
// capabilities for real upstream credentials.
//
// Subcommands: serve, issue, open, revoke, keygen, check-config, demo, version.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/extauthz/extauthz/internal/flagspec"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

type command struct {
	name    string
	summary string
	run     func(args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run the authorization server (gRPC ext_authz, HTTP, admin)", runServe},
		{"issue", "seal a capability from a subject JSON on stdin", runIssue},
		{"open", "open a capability from stdin and print its claims, tokens redacted", runOpen},
		{"revoke", "revoke a capability, session, container or user through a server's API", runRevoke},
		{"keygen", "print a fresh base64 AES-256 key", runKeygen},
		{"check-config", "validate serve flags and the key file, then exit", runCheckConfig},
		{"demo", "run the compose demo on this machine: real Envoy, extauthz, an echo upstream; no Docker", runDemo},
		{"version", "print the version", runVersion},
	}
}

// run runs the command args name. Help asked for (-h, --help, help) goes
// to stdout and exits 0; everything else it says about how it was called
// goes to stderr, one line where a line will do.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		args = append([]string{"version"}, args[1:]...)
	}
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stdout)
		return 0
	case "help": // help, or help COMMAND: that command's -h
		if len(args) == 1 {
			usage(stdout)
			return 0
		}
		args = []string{args[1], "--help"}
	}
	var names []string
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdin, stdout, stderr)
		}
		names = append(names, c.name)
	}
	msg := fmt.Sprintf("extauthz: unknown command %q", args[0])
	if best := flagspec.Suggest(args[0], names); best != "" {
		msg += fmt.Sprintf("; did you mean %s?", best)
	}
	fmt.Fprintf(stderr, "%s (extauthz --help lists the commands)\n", msg)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: extauthz <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'extauthz <command> --help' for the flags of a command.")
}

// parse parses the flags of command name (each declared once, with
// flagspec) from args and the environment. done says that the command ends
// here, with code: 0 after --help, whose usage text went to stdout; 2 after
// an error, said in one line on stderr.
func parse(name, synopsis string, flags []flagspec.Flag, args []string, getenv func(string) string, stdout, stderr io.Writer) (code int, done bool) {
	_, err := flagspec.Parse(name, synopsis, flags, args, getenv, stdout)
	if errors.Is(err, flagspec.ErrArgument) {
		err = fmt.Errorf("%w (input is read from stdin)", err)
	}
	return exitCode(name, err, stderr)
}

// exitCode is parse's answer for the error of flagspec.Parse: an error in
// the command line's form points to --help.
func exitCode(name string, err error, stderr io.Writer) (code int, done bool) {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0, true
	case errors.Is(err, flagspec.ErrUsage):
		fmt.Fprintf(stderr, "extauthz %s: %v (extauthz %s --help lists the flags)\n", name, err, name)
		return 2, true
	case err != nil:
		fmt.Fprintf(stderr, "extauthz %s: %v\n", name, err)
		return 2, true
	}
	return 0, false
}

func runVersion(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	synopsis := "extauthz version (or extauthz --version)\n\nPrints the version, the source revision and the Go version it was built with."
	if code, done := parse("version", synopsis, nil, args, os.Getenv, stdout, stderr); done {
		return code
	}
	fmt.Fprintln(stdout, versionLine(debug.ReadBuildInfo))
	return 0
}

// versionLine is "extauthz VERSION (REVISION TIME[, modified]) GO": the version
// set with -ldflags "-X main.version=…", else the module version `go
// install …@vX` records, else "dev"; the revision is the VCS commit a build
// in a checkout records.
func versionLine(info func() (*debug.BuildInfo, bool)) string {
	v, rev, when, modified, goVersion := version, "", "", false, runtime.Version()
	if bi, ok := info(); ok {
		if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
	}
	line := "extauthz " + v
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if when != "" {
			rev += " " + when
		}
		if modified {
			rev += ", modified"
		}
		line += " (" + rev + ")"
	}
	return line + " " + goVersion
}
