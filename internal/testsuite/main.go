// Command testsuite is the project's test command, the one the README names
// and .ci/run runs:
//
//	go run ./internal/testsuite           # every module, as CI does
//	go run ./internal/testsuite ARGS...   # go test -race ARGS in the root module
//
// It runs `go test -race ./...` in the root module and in each module nested
// in it (bench/, deploy/istio/schema, deploy/helm/test; the Helm chart's
// without -race), with go test's own output, streamed. Tests that need a
// program that is not installed (Envoy, nginx, Redis, Prometheus, Node.js,
// git, …) are skipped outside CI, which go test's summary hides: they record
// each skip (testprog.Missing, in the file $EXTAUTHZ_SKIP_LOG names), and the
// command ends with one line that says how many were skipped, for want of
// what, and the command that installs it. With CI=true those tests fail
// instead. The exit status is go test's: 0 only if every module passed.
package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/extauthz/extauthz/internal/testutil/testprog"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// noRace are the modules tested without the race detector: the Helm chart
// test has run without it since it was added, having no goroutines of its
// own, only Helm's library rendering templates.
var noRace = []string{"deploy/helm/test"}

func run(args []string, stdout, stderr io.Writer) int {
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintf(stderr, "testsuite: %v\n", err)
		return 2
	}
	log, err := os.CreateTemp("", "extauthz-skips-")
	if err != nil {
		fmt.Fprintf(stderr, "testsuite: %v\n", err)
		return 2
	}
	log.Close()
	defer os.Remove(log.Name())

	mods := []string{"."}
	pkgs := []string{"./..."}
	if len(args) > 0 {
		pkgs = args
	} else if mods, err = modules(root); err != nil {
		fmt.Fprintf(stderr, "testsuite: %v\n", err)
		return 2
	}
	status := 0
	for _, m := range mods {
		argv := []string{"test"}
		if !slices.Contains(noRace, m) {
			argv = append(argv, "-race")
		}
		argv = append(argv, pkgs...)
		if m != "." {
			fmt.Fprintf(stdout, "-- module %s\n", m)
		}
		cmd := exec.Command("go", argv...)
		if len(args) == 0 {
			cmd.Dir = filepath.Join(root, m)
		} // else: the packages named, from here
		cmd.Env = append(os.Environ(), testprog.SkipLogEnv+"="+log.Name())
		cmd.Stdout, cmd.Stderr = stdout, stderr
		if err := cmd.Run(); err != nil {
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				fmt.Fprintf(stderr, "testsuite: go %s: %v\n", strings.Join(argv, " "), err)
				return 2
			}
			status = max(status, exit.ExitCode())
		}
	}
	skips, err := testprog.ReadSkipLog(log.Name())
	if err != nil {
		fmt.Fprintf(stderr, "testsuite: %v\n", err)
		return max(status, 1)
	}
	if line := summary(skips); line != "" {
		fmt.Fprintln(stdout, line)
	}
	return status
}

// moduleRoot is the directory of the main module go runs in: the
// repository's root, from any directory in it but a nested module's.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not in a Go module: run it from the repository")
	}
	return filepath.Dir(gomod), nil
}

// modules lists the root module (".") and the modules nested in it (the
// directories below root with a go.mod), outside testdata, vendor and
// hidden directories, in order.
func modules(root string) ([]string, error) {
	mods := []string{"."}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != root && (name == "testdata" || name == "vendor" || name == "node_modules" || strings.HasPrefix(name, ".")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && name == "go.mod" && filepath.Dir(path) != root {
			rel, err := filepath.Rel(root, filepath.Dir(path))
			if err != nil {
				return err
			}
			mods = append(mods, filepath.ToSlash(rel))
		}
		return nil
	})
	slices.Sort(mods[1:])
	return mods, err
}

// summary is the line that ends the output when tests were skipped for
// want of a program: how many, which programs, and how to install them.
func summary(skips []testprog.Skip) string {
	if len(skips) == 0 {
		return ""
	}
	var programs []string
	for _, s := range skips {
		if !slices.Contains(programs, s.Program) {
			programs = append(programs, s.Program)
		}
	}
	slices.Sort(programs)
	tests, them := "tests were", "them"
	if len(skips) == 1 {
		tests = "test was"
	}
	if len(programs) == 1 {
		them = "it"
	}
	return fmt.Sprintf("%d end-to-end %s skipped for want of %s; install %s with: %s",
		len(skips), tests, and(programs), them, testprog.InstallCommand)
}

// and joins names as a sentence does: a, b and c.
func and(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
