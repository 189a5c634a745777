package flagspec

import (
	"errors"
	"flag"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// ErrUsage marks an error in how the command line is written (an unknown
// flag, a flag without its value, an argument where none is taken), as
// opposed to a value a flag's rules refuse: the caller points to --help.
var ErrUsage = errors.New("usage error")

// usageError is an error of the command line's form: errors.Is finds both
// ErrUsage and what it wraps.
type usageError struct{ err error }

func (e usageError) Error() string   { return e.err.Error() }
func (e usageError) Unwrap() []error { return []error{e.err, ErrUsage} }

// The flag package's errors about the form of a command line, whose flag
// name commandLineError reads to write its own message.
const (
	flagUndefined = "flag provided but not defined: -"
	flagNoValue   = "flag needs an argument: -"
)

// commandLineError turns an error of fs.Parse into one line that names the
// flag as written (--name) and, for an unknown flag, the one meant when a
// declared flag is close to it, or the variable of a setting read from the
// environment only.
func commandLineError(err error, fs *flag.FlagSet, flags []Flag) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, flagUndefined); ok {
		msg = "unknown flag " + dashes(name)
		if hint := suggest(name, fs, flags); hint != "" {
			msg += "; " + hint
		}
	} else if name, ok := strings.CutPrefix(msg, flagNoValue); ok {
		msg = dashes(name) + " needs a value"
	} else if fl := invalidValueFlag(msg, fs); fl != nil {
		msg = strings.Replace(msg, "-"+fl.Name+":", dashes(fl.Name)+":", 1) + valueHint(fl)
	}
	return usageError{errors.New(msg)}
}

// invalidValueFlag is the flag an "invalid value … for flag -NAME: …" or
// "invalid boolean value … for -NAME: …" error is about, or nil.
func invalidValueFlag(msg string, fs *flag.FlagSet) *flag.Flag {
	m := invalidValue.FindStringSubmatch(msg)
	if m == nil {
		return nil
	}
	return fs.Lookup(m[1])
}

var invalidValue = regexp.MustCompile(`^invalid (?:boolean )?value ".*" for (?:flag )?-([A-Za-z0-9-]+): `)

// dashes writes a flag name the way the usage text does: -o, --key-file.
func dashes(name string) string {
	name = strings.TrimLeft(name, "-")
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// suggest says which flag an unknown one probably meant: the closest by
// edit distance, if close enough to be a typo; else, when the name is a
// setting read from the environment only, that variable.
func suggest(name string, fs *flag.FlagSet, flags []Flag) string {
	name = strings.TrimLeft(name, "-")
	var names []string
	fs.VisitAll(func(fl *flag.Flag) { names = append(names, fl.Name) })
	if best := Suggest(name, names); best != "" {
		return "did you mean " + dashes(best) + "?"
	}
	for _, f := range flags {
		if f.envOnly != nil && f.env == EnvName(name) {
			return "it is read from the environment only: set " + f.env
		}
	}
	return ""
}

// editDistance is the number of single-letter edits (insert, delete,
// replace, or swap two neighbours: the optimal string alignment distance)
// that turn a into b, in bytes: flag and command names are ASCII.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// Suggest is the closest of names to name by edit distance when it is
// close enough to be a typo (a third of its letters, up to 3, and fewer
// than all of them), else "": the flag or subcommand meant. Of two as
// close, the first sorted wins.
func Suggest(name string, names []string) string {
	limit := max(1, min(len(name)/3, 3))
	best, bestDist := "", limit+1
	for _, n := range slices.Sorted(slices.Values(names)) {
		if d := editDistance(name, n); d < bestDist && d < len(name) {
			best, bestDist = n, d
		}
	}
	return best
}

// Origins says which flags took their value from the environment: flag
// name → variable. The command line wins over the environment, so a flag
// given there is not in it.
type Origins map[string]string

// flagMention finds the flags an error message names.
var flagMention = regexp.MustCompile(`(?:^|[^A-Za-z0-9-])--([a-z0-9][a-z0-9-]*)`)

// Explain makes an error found after Parse name the environment variables
// behind the flags it mentions: "EXTAUTHZ_GRPC_ADDR (for --grpc-addr): …",
// as Parse's own errors do. An error that mentions none of them, or nil, is
// returned as it is.
func (o Origins) Explain(err error) error {
	if err == nil || len(o) == 0 {
		return err
	}
	msg := err.Error()
	var vars []string
	for _, m := range flagMention.FindAllStringSubmatch(msg, -1) {
		env := o[m[1]]
		if env == "" || strings.HasPrefix(msg, env+" ") {
			continue
		}
		if v := fmt.Sprintf("%s (for --%s)", env, m[1]); !slices.Contains(vars, v) {
			vars = append(vars, v)
		}
	}
	if len(vars) == 0 {
		return err
	}
	return fmt.Errorf("%s: %w", strings.Join(vars, ", "), err)
}
