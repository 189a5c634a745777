package profiles

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/extauthz/extauthz/policy"
)

// MaxFileSize bounds a profiles file.
const MaxFileSize = 1 << 20

// Set is a loaded profiles file: the profiles by name. It is immutable and
// safe for concurrent use.
type Set struct {
	byName map[string]*policy.Profile
	names  []string
}

// Profile returns the profile called name.
func (s *Set) Profile(name string) (*policy.Profile, bool) {
	if s == nil {
		return nil, false
	}
	p, ok := s.byName[name]
	return p, ok
}

// Names lists the profiles in the file's order.
func (s *Set) Names() []string {
	if s == nil {
		return nil
	}
	return slices.Clone(s.names)
}

// Load reads and compiles the profiles at path with policy p (nil: the
// default): a file, or a directory whose *.yaml and *.yml files (not hidden,
// in name order) are read as one, as a Kubernetes ConfigMap is mounted.
// Profile names are unique across the files. Every error names the file,
// and where it can the line and the field.
func Load(path string, p *policy.Policy) (*Set, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("profiles file %s: %w", path, err)
	}
	if !fi.IsDir() {
		return loadFile(path, p)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("profiles directory %s: %w", path, err)
	}
	all := &Set{byName: map[string]*policy.Profile{}}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || e.IsDir() || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			continue // ..data and the like: a ConfigMap's own entries
		}
		s, err := loadFile(filepath.Join(path, name), p)
		if err != nil {
			return nil, err
		}
		for _, n := range s.names {
			if _, dup := all.byName[n]; dup {
				return nil, fmt.Errorf("profiles file %s: profile %q is also declared in another file of %s", filepath.Join(path, name), n, path)
			}
			all.byName[n] = s.byName[n]
			all.names = append(all.names, n)
		}
	}
	if len(all.names) == 0 {
		return nil, fmt.Errorf("profiles directory %s: no *.yaml file", path)
	}
	return all, nil
}

func loadFile(path string, p *policy.Policy) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("profiles file %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("profiles file %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("profiles file %s: larger than %d bytes", path, MaxFileSize)
	}
	return Parse(path, data, p)
}

// Parse compiles a profiles file's content; name is what errors call it.
func Parse(name string, data []byte, p *policy.Policy) (*Set, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("profiles file %s: %s", name, yamlMessage(err))
	}
	var doc fileDoc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("profiles file %s: empty; want profiles: [...]", name)
		}
		return nil, fmt.Errorf("profiles file %s: %s", name, yamlMessage(err))
	}
	if len(doc.Profiles) == 0 {
		return nil, fmt.Errorf("profiles file %s: no profile; want profiles: [...]", name)
	}
	s := &Set{byName: map[string]*policy.Profile{}}
	for i, pd := range doc.Profiles {
		at := func(field string, err error) error {
			path := fmt.Sprintf("profiles[%d]", i)
			if field != "" {
				path += "." + field
			}
			return fmt.Errorf("profiles file %s, line %d, %s: %w", name, lineOf(&root, path), path, err)
		}
		spec, err := pd.spec()
		if err != nil {
			var fe *policy.ProfileError
			if errors.As(err, &fe) {
				return nil, at(fe.Field, fe.Err)
			}
			return nil, at("", err)
		}
		pr, err := p.CompileProfile(spec)
		if err != nil {
			var fe *policy.ProfileError
			if errors.As(err, &fe) {
				return nil, at(fe.Field, fe.Err)
			}
			return nil, at("", err)
		}
		if _, dup := s.byName[pr.Name()]; dup {
			return nil, at("name", fmt.Errorf("profile %q is declared twice", pr.Name()))
		}
		s.byName[pr.Name()] = pr
		s.names = append(s.names, pr.Name())
	}
	return s, nil
}

// yamlMessage drops the library's "yaml: " prefix and folds a multi-line
// type error into one line.
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	return strings.Join(strings.Fields(msg), " ")
}

// The file's shape. Decoded strictly: an unknown key is an error.
type fileDoc struct {
	Profiles []profileDoc `yaml:"profiles"`
}

type profileDoc struct {
	Name        string      `yaml:"name"`
	Accept      []acceptDoc `yaml:"accept"`
	MaxLifetime string      `yaml:"maxLifetime"`
	Routes      []routeDoc  `yaml:"routes"`
}

type routeDoc struct {
	Class      string    `yaml:"class"`
	Origin     originDoc `yaml:"origin"`
	Paths      []string  `yaml:"paths"`
	Methods    []string  `yaml:"methods"`
	Credential string    `yaml:"credential"`
	Inject     injectDoc `yaml:"inject"`
	Guard      string    `yaml:"guard"`
}

// acceptDoc is "bearer", "basic" or {header: NAME}.
type acceptDoc struct{ policy.Presentation }

func (a *acceptDoc) UnmarshalYAML(n *yaml.Node) error {
	word, key, value, err := wordOrPair(n, "accept", "bearer, basic or {header: NAME}", "header")
	switch {
	case err != nil:
		return err
	case word == "bearer":
		a.Kind = policy.PresentBearer
	case word == "basic":
		a.Kind = policy.PresentBasic
	case key == "header":
		a.Kind, a.Header = policy.PresentHeader, value
	default:
		return nodeErr(n, "accept: want bearer, basic or {header: NAME}, got %q", word)
	}
	return nil
}

// originDoc is "https://host[:port]" or {target: NAME}.
type originDoc struct {
	exact  string
	target string
}

func (o *originDoc) UnmarshalYAML(n *yaml.Node) error {
	word, key, value, err := wordOrPair(n, "origin", "https://host[:port] or {target: NAME}", "target")
	if err != nil {
		return err
	}
	if key == "target" {
		o.target = value
	} else {
		o.exact = word
	}
	return nil
}

// injectDoc is "bearer", {header: NAME} or {basic: USERNAME}.
type injectDoc struct{ policy.Injection }

func (i *injectDoc) UnmarshalYAML(n *yaml.Node) error {
	word, key, value, err := wordOrPair(n, "inject", "bearer, {header: NAME} or {basic: USERNAME}", "header", "basic")
	switch {
	case err != nil:
		return err
	case key == "header":
		i.Kind, i.Header = policy.InjectHeader, strings.ToLower(value)
	case key == "basic":
		i.Kind, i.Username = policy.InjectBasic, value
	case word == "bearer":
		i.Kind = policy.InjectBearer
	default:
		return nodeErr(n, "inject: want bearer, {header: NAME} or {basic: USERNAME}, got %q", word)
	}
	return nil
}

// wordOrPair reads a scalar, or a mapping with exactly one of keys and a
// scalar value.
func wordOrPair(n *yaml.Node, what, want string, keys ...string) (word, key, value string, err error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value, "", "", nil
	case yaml.MappingNode:
		if len(n.Content) != 2 || n.Content[1].Kind != yaml.ScalarNode || !slices.Contains(keys, n.Content[0].Value) {
			return "", "", "", nodeErr(n, "%s: want %s", what, want)
		}
		return "", n.Content[0].Value, n.Content[1].Value, nil
	}
	return "", "", "", nodeErr(n, "%s: want %s", what, want)
}

func nodeErr(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("line %d: %s", n.Line, fmt.Sprintf(format, args...))
}

var guards = map[string]policy.Guard{"": policy.GuardOwnTarget, "own-target": policy.GuardOwnTarget, "every-target": policy.GuardEveryTarget, "none": policy.GuardNone}

// spec turns a decoded profile into a policy.ProfileSpec; its errors name
// the field as policy.ProfileError does.
func (pd profileDoc) spec() (policy.ProfileSpec, error) {
	spec := policy.ProfileSpec{Name: pd.Name}
	for _, a := range pd.Accept {
		spec.Accept = append(spec.Accept, a.Presentation)
	}
	if pd.MaxLifetime != "" {
		d, err := time.ParseDuration(pd.MaxLifetime)
		if err != nil {
			return spec, &policy.ProfileError{Field: "maxLifetime", Err: errors.New("want a duration such as 1h or 30m")}
		}
		spec.MaxLifetime = d
	}
	for i, rd := range pd.Routes {
		field := "routes[" + strconv.Itoa(i) + "]"
		e := policy.RouteEntry{Class: policy.RouteClass(rd.Class), Origin: rd.Origin.exact, Patterns: rd.Paths,
			Methods: rd.Methods, Slot: rd.Credential, Inject: rd.Inject.Injection}
		if rd.Origin.target != "" {
			t, ok := policy.TargetNamed(rd.Origin.target)
			if !ok {
				return spec, &policy.ProfileError{Field: field + ".origin", Err: fmt.Errorf("unknown target %q (backendBaseUrl, providerBaseUrl or sessionIngestBaseUrl)", rd.Origin.target)}
			}
			e.Target = t
		}
		g, ok := guards[rd.Guard]
		if !ok {
			return spec, &policy.ProfileError{Field: field + ".guard", Err: errors.New("want own-target, every-target or none")}
		}
		e.Guard = g
		if len(rd.Paths) == 0 {
			return spec, &policy.ProfileError{Field: field + ".paths", Err: errors.New("a route needs at least one path pattern")}
		}
		spec.Routes = append(spec.Routes, e)
	}
	return spec, nil
}

var pathStep = regexp.MustCompile(`^([A-Za-z]+)(?:\[(\d+)\])?$`)

// lineOf finds the line of the node at path ("profiles[0].routes[2].paths[1]")
// in root, or of the deepest node it reaches.
func lineOf(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for step := range strings.SplitSeq(path, ".") {
		m := pathStep.FindStringSubmatch(step)
		if m == nil || n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for k := 0; k+1 < len(n.Content); k += 2 {
			if n.Content[k].Value == m[1] {
				next = n.Content[k+1]
				line = n.Content[k].Line
			}
		}
		if next == nil {
			return line
		}
		n = next
		if m[2] != "" {
			i, _ := strconv.Atoi(m[2])
			if n.Kind != yaml.SequenceNode || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
		}
	}
	return line
}
