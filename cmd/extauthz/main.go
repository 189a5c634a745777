// Command extauthz is an Envoy external authorization server that swaps kka1
// capabilities for real upstream credentials.
//
// Subcommands: serve, issue, open, keygen, check-config, version.
package main

import (
	"fmt"
	"io"
	"os"
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
		{"keygen", "print a fresh base64 AES-256 key", runKeygen},
		{"check-config", "validate serve flags and the key file, then exit", runCheckConfig},
		{"version", "print the version", runVersion},
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdin, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "extauthz: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: extauthz <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'extauthz <command> -h' for the flags of a command.")
}

func runVersion(_ []string, _ io.Reader, stdout, _ io.Writer) int {
	fmt.Fprintf(stdout, "extauthz %s\n", version)
	return 0
}
