package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/extauthz/extauthz/policy"
)

// envName is the environment fallback of a flag: EXTAUTHZ_ plus the flag name
// in upper snake case (--key-file → EXTAUTHZ_KEY_FILE).
func envName(flagName string) string {
	return "EXTAUTHZ_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag of fs that has an environment fallback set; flags
// given on the command line, parsed afterwards, win. A bad value names the
// variable, never its value (it may be a path to a secret, not a secret, but
// the rule is simple).
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		name := envName(f.Name)
		if v := getenv(name); v != "" {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s (for --%s): %w%s", name, f.Name, e, valueHint(f))
			}
		}
	})
	return err
}

// valueHint says what a flag accepts, for a value the flag package refused
// with a bare "parse error".
func valueHint(f *flag.Flag) string {
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return "; want true or false (also 1, 0, t, f)"
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return ""
	}
	switch g.Get().(type) {
	case time.Duration:
		return "; want a duration with a unit, e.g. 500ms, 5s or 2m"
	case int, int64, uint, uint64:
		return "; want a whole number"
	}
	return ""
}

// usageWithEnv appends the environment fallbacks to a FlagSet's usage text.
func usageWithEnv(fs *flag.FlagSet, synopsis string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: %s\n\nflags (each also read from the environment variable shown):\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" && f.DefValue != "false" {
				def = fmt.Sprintf(" (default %q)", f.DefValue)
			}
			fmt.Fprintf(w, "  --%s  [%s]%s\n      %s\n", f.Name, envName(f.Name), def, f.Usage)
		})
	}
}

// devHTTPPolicy builds the route policy for a --dev-http-hosts value: the
// default plain-http hosts plus the comma-separated extras.
func devHTTPPolicy(list string) (*policy.Policy, []string, error) {
	var extra []string
	for h := range strings.SplitSeq(list, ",") {
		if h = strings.TrimSpace(h); h != "" {
			extra = append(extra, h)
		}
	}
	p, err := policy.New(extra...)
	if err != nil {
		return nil, nil, fmt.Errorf("--dev-http-hosts: %w", err)
	}
	return p, extra, nil
}
