// Package flagspec declares a command's flags once each. A Flag binds one
// field of a typed configuration to its name, default, help text,
// environment variable and rules; Parse registers every Flag on a
// flag.FlagSet, applies the environment fallbacks, parses the command line,
// and checks each final value against its rules.
//
// Every error names the flag and its environment variable, and an error
// about a value that came from the environment names the variable first;
// Parse returns the Origins of the values, so that an error found later (a
// rule between flags, a file that will not load, an address that will not
// bind) can do the same. A rule's message may quote the value; Parse never
// does, so a value that may hold a secret (a URL with a password) is safe in
// an error as long as its rules do not repeat it.
//
// Parse writes nothing but the usage text asked for with -h (to the writer
// it is given: standard output); an error in how the command line is
// written (ErrUsage) is one line, with the flag meant when one is close.
package flagspec

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// EnvPrefix starts every environment fallback.
const EnvPrefix = "EXTAUTHZ_"

// EnvName is a flag's environment fallback: EnvPrefix plus the flag name in
// upper snake case (--key-file → EXTAUTHZ_KEY_FILE).
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// ErrArgument is the refusal of an argument that is not a flag: commands
// take none.
var ErrArgument = errors.New("unexpected argument")

// Flag is one declared setting. Build it with Var, Parsed or Env.
type Flag struct {
	name, env, help string
	register        func(*flag.FlagSet)
	check           func() error // the rules, on the final value
	envOnly         *string      // Env: the field, set from the environment alone

	when      *bool // DefaultWhen: the condition
	whenValue string
}

// Kind is what Var binds: the kinds the flag package parses.
type Kind interface {
	string | bool | int | uint | time.Duration
}

// Rule checks a value; its error says what is wanted (and may quote the
// value when it is never secret).
type Rule[T any] func(T) error

// Var declares a flag that sets *p, default def, checked by rules.
func Var[T Kind](p *T, name string, def T, help string, rules ...Rule[T]) Flag {
	return Flag{name: name, env: EnvName(name), help: help,
		register: func(fs *flag.FlagSet) {
			switch p := any(p).(type) {
			case *string:
				fs.StringVar(p, name, any(def).(string), help)
			case *bool:
				fs.BoolVar(p, name, any(def).(bool), help)
			case *int:
				fs.IntVar(p, name, any(def).(int), help)
			case *uint:
				fs.UintVar(p, name, any(def).(uint), help)
			case *time.Duration:
				fs.DurationVar(p, name, any(def).(time.Duration), help)
			}
		},
		check: func() error {
			for _, r := range rules {
				if err := r(*p); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// Parsed declares a text flag, default def, whose final text parse turns
// into *p: the parser is the flag's rule.
func Parsed[T any](p *T, name, def, help string, parse func(string) (T, error)) Flag {
	text := new(string)
	return Flag{name: name, env: EnvName(name), help: help,
		register: func(fs *flag.FlagSet) { fs.StringVar(text, name, def, help) },
		check: func() (err error) {
			*p, err = parse(*text)
			return err
		},
	}
}

// List declares a flag that may be given several times: each value is
// appended to *p, in order, and checked by rules. It has no environment
// fallback (one variable does not hold a list of arbitrary values).
func List(p *[]string, name, help string, rules ...Rule[string]) Flag {
	return Flag{name: name, help: help + " (repeatable)",
		register: func(fs *flag.FlagSet) {
			fs.Func(name, help, func(s string) error {
				*p = append(*p, s)
				return nil
			})
		},
		check: func() error {
			for _, v := range *p {
				for _, r := range rules {
					if err := r(v); err != nil {
						return err
					}
				}
			}
			return nil
		},
	}
}

// Env declares a setting read from the environment variable env only, never
// from the command line (a secret such as a key list).
func Env(p *string, env, help string) Flag {
	return Flag{env: env, help: help, envOnly: p}
}

// NoEnv drops the flag's environment fallback.
func (f Flag) NoEnv() Flag {
	f.env = ""
	return f
}

// DefaultWhen makes value the flag's default when *cond is true once
// parsing is done (a development mode's own defaults): set on the command
// line or in the environment, the flag keeps what it was given.
func (f Flag) DefaultWhen(cond *bool, value string) Flag {
	f.when, f.whenValue = cond, value
	return f
}

// Parse parses args, and the environment through getenv, into flags, for
// the command whose usage text starts with synopsis. With -h (or --help) it
// writes the usage to help and returns flag.ErrHelp; it writes nothing
// else. It returns where each value came from the environment.
func Parse(name, synopsis string, flags []Flag, args []string, getenv func(string) string, help io.Writer) (Origins, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, one line each
	fs.Usage = func() {}
	for _, f := range flags {
		if f.register != nil {
			f.register(fs)
		}
	}
	fromEnv := Origins{}
	for _, f := range flags {
		v := ""
		if f.env != "" {
			v = getenv(f.env)
		}
		switch {
		case v == "":
		case f.envOnly != nil:
			*f.envOnly = v
		default:
			// Not fs.Set: the command line, parsed next, must see the flag
			// as not given, and wins over the environment.
			fl := fs.Lookup(f.name)
			if err := fl.Value.Set(v); err != nil {
				return nil, fmt.Errorf("%s (for --%s): %w%s", f.env, f.name, err, valueHint(fl))
			}
			fromEnv[f.name] = f.env
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(help)
			usage(fs, synopsis, flags)
			return nil, err
		}
		return nil, commandLineError(err, fs, flags)
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("%w %q", ErrArgument, fs.Arg(0))}
	}
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) {
		given[fl.Name] = true
		delete(fromEnv, fl.Name) // the command line wins
	})
	for _, f := range flags {
		if f.when != nil && *f.when && !given[f.name] && fromEnv[f.name] == "" {
			if err := fs.Lookup(f.name).Value.Set(f.whenValue); err != nil {
				return nil, fmt.Errorf("--%s: default %q: %w", f.name, f.whenValue, err)
			}
		}
	}
	for _, f := range flags {
		if f.check == nil {
			continue
		}
		if err := f.check(); err != nil {
			return nil, fmt.Errorf("%s: %w", f.source(fromEnv[f.name] != ""), err)
		}
	}
	return fromEnv, nil
}

// source names the flag for an error: its variable first when the value
// came from there.
func (f Flag) source(fromEnv bool) string {
	switch {
	case fromEnv:
		return fmt.Sprintf("%s (for %s)", f.env, f.flagName())
	case f.env == "":
		return f.flagName()
	}
	return fmt.Sprintf("%s (or %s)", f.flagName(), f.env)
}

// flagName is the flag as written: -o, --key-file.
func (f Flag) flagName() string {
	if len(f.name) == 1 {
		return "-" + f.name
	}
	return "--" + f.name
}

// usage writes the synopsis, the flags (sorted by name, as the flag package
// visits them) with their variables and defaults, and the settings read
// from the environment only.
func usage(fs *flag.FlagSet, synopsis string, flags []Flag) {
	w := fs.Output()
	fmt.Fprintf(w, "usage: %s\n", synopsis)
	byName := map[string]Flag{}
	anyEnv := false
	var envOnly []Flag
	for _, f := range flags {
		if f.envOnly != nil {
			envOnly = append(envOnly, f)
			continue
		}
		byName[f.name] = f
		anyEnv = anyEnv || f.env != ""
	}
	switch {
	case len(byName) == 0:
	case anyEnv:
		fmt.Fprintln(w, "\nflags (each also read from the environment variable shown):")
	default:
		fmt.Fprintln(w, "\nflags:")
	}
	fs.VisitAll(func(fl *flag.Flag) {
		f := byName[fl.Name]
		line := "  " + f.flagName()
		if f.env != "" {
			line += "  [" + f.env + "]"
		}
		if fl.DefValue != "" && fl.DefValue != "false" {
			line += fmt.Sprintf(" (default %q)", fl.DefValue)
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, f.help)
	})
	if len(envOnly) > 0 {
		fmt.Fprintln(w, "\nread from the environment only:")
		for _, f := range envOnly {
			fmt.Fprintf(w, "  %s\n      %s\n", f.env, f.help)
		}
	}
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
