package flagspec

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// config is a command's typed configuration, with one declaration per field.
type config struct {
	addr    string
	n       int
	streams uint
	wait    time.Duration
	dev     bool
	level   int // parsed from a name
	keys    string
	out     string
}

func (c *config) flags() []Flag {
	return []Flag{
		Var(&c.addr, "addr", ":9191", "listen address", NotEmpty).DefaultWhen(&c.dev, "127.0.0.1:9191"),
		Var(&c.n, "max-n", 4, "most of them", Positive[int]),
		Var(&c.streams, "streams", 8, "streams", Between[uint](1, 16)),
		Var(&c.wait, "wait", 5*time.Second, "how long", NonNegative[time.Duration]).DefaultWhen(&c.dev, "0s"),
		Var(&c.dev, "dev", false, "development mode"),
		Parsed(&c.level, "level", "info", "debug or info", func(s string) (int, error) {
			switch s {
			case "debug":
				return 0, nil
			case "info":
				return 1, nil
			}
			return 0, fmt.Errorf("want debug or info, got %q", s)
		}),
		Env(&c.keys, "EXTAUTHZ_KEYS", "comma-separated keys"),
		Var(&c.out, "o", "", "output file").NoEnv(),
	}
}

func parse(args []string, env map[string]string) (*config, error) {
	c := &config{}
	_, err := Parse("cmd", "cmd [flags]", c.flags(), args, func(k string) string { return env[k] }, io.Discard)
	return c, err
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want config
	}{
		{"defaults", nil, nil, config{addr: ":9191", n: 4, streams: 8, wait: 5 * time.Second, level: 1}},
		{"command line", []string{"--addr", "h:1", "--max-n=7", "--wait", "1m", "--level", "debug", "-o", "f"}, nil,
			config{addr: "h:1", n: 7, streams: 8, wait: time.Minute, level: 0, out: "f"}},
		{"environment", nil, map[string]string{"EXTAUTHZ_ADDR": "e:2", "EXTAUTHZ_MAX_N": "9", "EXTAUTHZ_LEVEL": "debug", "EXTAUTHZ_KEYS": "k1,k2"},
			config{addr: "e:2", n: 9, streams: 8, wait: 5 * time.Second, level: 0, keys: "k1,k2"}},
		{"command line wins", []string{"--max-n", "2"}, map[string]string{"EXTAUTHZ_MAX_N": "9"},
			config{addr: ":9191", n: 2, streams: 8, wait: 5 * time.Second, level: 1}},
		{"no fallback for -o", nil, map[string]string{"EXTAUTHZ_O": "x"}, config{addr: ":9191", n: 4, streams: 8, wait: 5 * time.Second, level: 1}},
		{"defaults when", []string{"--dev"}, nil, config{addr: "127.0.0.1:9191", n: 4, streams: 8, level: 1, dev: true}},
		{"defaults when, given", []string{"--dev", "--addr", ":1"}, map[string]string{"EXTAUTHZ_WAIT": "2s"},
			config{addr: ":1", n: 4, streams: 8, wait: 2 * time.Second, level: 1, dev: true}},
		{"defaults when, from the environment", nil, map[string]string{"EXTAUTHZ_DEV": "true"},
			config{addr: "127.0.0.1:9191", n: 4, streams: 8, level: 1, dev: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parse(tc.args, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if *got != tc.want {
				t.Errorf("Parse(%q, %v) = %+v; want %+v", tc.args, tc.env, *got, tc.want)
			}
		})
	}
}

// TestParseErrors: every error names the flag and its variable; one from
// the environment names the variable first.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"rule", []string{"--max-n", "0"}, nil, "--max-n (or EXTAUTHZ_MAX_N): must be more than 0, got 0"},
		{"rule from the environment", nil, map[string]string{"EXTAUTHZ_MAX_N": "-1"}, "EXTAUTHZ_MAX_N (for --max-n): must be more than 0, got -1"},
		{"command line over a bad environment value", []string{"--max-n", "0"}, map[string]string{"EXTAUTHZ_MAX_N": "3"}, "--max-n (or EXTAUTHZ_MAX_N): must be more than 0"},
		{"between", []string{"--streams", "17"}, nil, "--streams (or EXTAUTHZ_STREAMS): want 1 to 16, got 17"},
		{"non-negative", []string{"--wait", "-1s"}, nil, "--wait (or EXTAUTHZ_WAIT): must not be negative, got -1s (0 turns it off)"},
		{"not empty", []string{"--addr", ""}, nil, "--addr (or EXTAUTHZ_ADDR): must not be empty"},
		{"parser", nil, map[string]string{"EXTAUTHZ_LEVEL": "loud"}, `EXTAUTHZ_LEVEL (for --level): want debug or info, got "loud"`},
		{"bool in the environment", nil, map[string]string{"EXTAUTHZ_DEV": "yes"}, "EXTAUTHZ_DEV (for --dev): parse error; want true or false (also 1, 0, t, f)"},
		{"duration in the environment", nil, map[string]string{"EXTAUTHZ_WAIT": "5"}, "EXTAUTHZ_WAIT (for --wait): parse error; want a duration with a unit"},
		{"number in the environment", nil, map[string]string{"EXTAUTHZ_MAX_N": "many"}, "EXTAUTHZ_MAX_N (for --max-n): parse error; want a whole number"},
		{"unknown flag", []string{"--nope"}, nil, "unknown flag --nope"},
		{"unknown flag, a typo", []string{"--max_n", "3"}, nil, "unknown flag --max_n; did you mean --max-n?"},
		{"unknown flag, a letter left out", []string{"-strams=3"}, nil, "unknown flag --strams; did you mean --streams?"},
		{"env-only is no flag", []string{"--keys", "k"}, nil, "unknown flag --keys; it is read from the environment only: set EXTAUTHZ_KEYS"},
		{"no value", []string{"--addr"}, nil, "--addr needs a value"},
		{"bad number on the command line", []string{"--max-n", "many"}, nil, `invalid value "many" for flag --max-n: parse error; want a whole number`},
		{"bad bool on the command line", []string{"--dev=yes"}, nil, `invalid boolean value "yes" for --dev: parse error; want true or false`},
		{"stray argument", []string{"x"}, nil, `unexpected argument "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.args, tc.env)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Parse(%q, %v) = %v; want %q", tc.args, tc.env, err, tc.want)
			}
		})
	}
	c := &config{}
	flags := append(c.flags(), Var(&c.out, "p", "", "no fallback", NotEmpty).NoEnv())
	if _, err := Parse("cmd", "cmd", flags, nil, func(string) string { return "" }, io.Discard); err == nil || err.Error() != "-p: must not be empty" {
		t.Errorf("a rule on a flag without fallback: %v; want -p: must not be empty", err)
	}
}

// TestUsage: -h writes the synopsis, every flag sorted by name with its
// variable and default, and the settings read from the environment only.
func TestUsage(t *testing.T) {
	var b strings.Builder
	c := &config{}
	_, err := Parse("cmd", "cmd [flags]\n\nDoes things.", c.flags(), []string{"-h"}, func(string) string { return "" }, &b)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h = %v; want flag.ErrHelp", err)
	}
	want := `usage: cmd [flags]

Does things.

flags (each also read from the environment variable shown):
  --addr  [EXTAUTHZ_ADDR] (default ":9191")
      listen address
  --dev  [EXTAUTHZ_DEV]
      development mode
  --level  [EXTAUTHZ_LEVEL] (default "info")
      debug or info
  --max-n  [EXTAUTHZ_MAX_N] (default "4")
      most of them
  -o
      output file
  --streams  [EXTAUTHZ_STREAMS] (default "8")
      streams
  --wait  [EXTAUTHZ_WAIT] (default "5s")
      how long

read from the environment only:
  EXTAUTHZ_KEYS
      comma-separated keys
`
	if b.String() != want {
		t.Errorf("usage =\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if _, err := Parse("v", "v\n\nPrints.", nil, []string{"-h"}, func(string) string { return "" }, &b); !errors.Is(err, flag.ErrHelp) || b.String() != "usage: v\n\nPrints.\n" {
		t.Errorf("usage without flags = %q, %v", b.String(), err)
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{"key-file": "EXTAUTHZ_KEY_FILE", "dev": "EXTAUTHZ_DEV", "grpc-max-connection-age-grace": "EXTAUTHZ_GRPC_MAX_CONNECTION_AGE_GRACE"} {
		if got := EnvName(in); got != want {
			t.Errorf("EnvName(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestCommandLineErrors: an error in the command line's form is ErrUsage,
// a rule's refusal is not, and Parse writes nothing for either: the usage
// text is for -h alone.
func TestCommandLineErrors(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		usage bool
	}{
		{[]string{"--nope"}, true},
		{[]string{"--addr"}, true},
		{[]string{"--max-n", "x"}, true},
		{[]string{"extra"}, true},
		{[]string{"--max-n", "0"}, false},
	} {
		var out strings.Builder
		c := &config{}
		_, err := Parse("cmd", "cmd [flags]", c.flags(), tc.args, func(string) string { return "" }, &out)
		if err == nil || errors.Is(err, ErrUsage) != tc.usage {
			t.Errorf("Parse(%q) = %v; want an error, ErrUsage %v", tc.args, err, tc.usage)
		}
		if out.Len() != 0 {
			t.Errorf("Parse(%q) wrote %q; want nothing", tc.args, out.String())
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q) = %q; want one line", tc.args, err)
		}
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"grpc-addr", "http-addr", "admin-addr", "key-file", "dev", "o", "serve", "issue", "open"}
	for _, tc := range []struct{ in, want string }{
		{"grpc-adr", "grpc-addr"},
		{"keyfile", "key-file"},
		{"key_file", "key-file"},
		{"sreve", "serve"},
		{"isue", "issue"},
		{"dev", "dev"},
		{"nope", ""},
		{"x", ""},
		{"tls", ""},
		{"completely-different", ""},
	} {
		if got := Suggest(tc.in, names); got != tc.want {
			t.Errorf("Suggest(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

// TestOrigins: Parse says which values came from the environment (not
// those the command line overrode), and Explain puts their variables in
// front of a later error that names their flags, and only those.
func TestOrigins(t *testing.T) {
	c := &config{}
	env := map[string]string{"EXTAUTHZ_ADDR": "e:2", "EXTAUTHZ_MAX_N": "9", "EXTAUTHZ_WAIT": "1s"}
	o, err := Parse("cmd", "cmd", c.flags(), []string{"--wait", "2s"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(o) != 2 || o["addr"] != "EXTAUTHZ_ADDR" || o["max-n"] != "EXTAUTHZ_MAX_N" {
		t.Fatalf("Origins = %v; want addr and max-n from the environment", o)
	}
	for _, tc := range []struct{ err, want string }{
		{"--addr e:2 and --admin e:2 are the same", "EXTAUTHZ_ADDR (for --addr): --addr e:2 and --admin e:2 are the same"},
		{"--max-n and --addr clash; --max-n again", "EXTAUTHZ_MAX_N (for --max-n), EXTAUTHZ_ADDR (for --addr): --max-n and --addr clash; --max-n again"},
		{"--wait is too short", "--wait is too short"},
		{"--addr-file is missing", "--addr-file is missing"},
		{"EXTAUTHZ_ADDR (for --addr): already named", "EXTAUTHZ_ADDR (for --addr): already named"},
		{"no flag at all", "no flag at all"},
	} {
		if got := o.Explain(errors.New(tc.err)).Error(); got != tc.want {
			t.Errorf("Explain(%q) = %q; want %q", tc.err, got, tc.want)
		}
	}
	inner := errors.New("--addr: bind: address in use")
	if err := o.Explain(inner); !errors.Is(err, inner) {
		t.Errorf("Explain does not wrap: %v", err)
	}
	if Origins(nil).Explain(nil) != nil {
		t.Error("Explain(nil) is not nil")
	}
}

func TestList(t *testing.T) {
	var got []string
	noComma := func(s string) error {
		if strings.Contains(s, ",") {
			return errors.New("no commas")
		}
		return nil
	}
	flags := []Flag{List(&got, "var", "a variable", noComma)}
	getenv := func(k string) string { return map[string]string{"EXTAUTHZ_VAR": "env"}[k] }
	if _, err := Parse("cmd", "cmd", flags, []string{"--var", "a=1", "--var=b=2", "--var", ""}, getenv, io.Discard); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != "a=1|b=2|" {
		t.Errorf("List = %q; want each value in order, none from the environment", got)
	}
	got = nil
	if _, err := Parse("cmd", "cmd", flags, []string{"--var", "a", "--var", "b,c"}, getenv, io.Discard); err == nil || err.Error() != "--var: no commas" {
		t.Errorf("a value the rule refuses: %v; want --var: no commas", err)
	}
	var usage strings.Builder
	got = nil
	_, _ = Parse("cmd", "cmd", flags, []string{"-h"}, getenv, &usage)
	if !strings.Contains(usage.String(), "--var\n      a variable (repeatable)") || strings.Contains(usage.String(), "EXTAUTHZ_VAR") {
		t.Errorf("usage:\n%s", usage.String())
	}
}
