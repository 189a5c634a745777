// Package envoyproc runs a real Envoy for the project's end-to-end tests and
// benchmarks: internal/envoyrun (which `extauthz demo` uses too) under the
// names the tests know, and Require, which finds the binary or skips.
//
// It is imported by tests and by the benchmark commands, never by the server.
package envoyproc

import (
	"sync"
	"testing"

	"github.com/extauthz/extauthz/internal/envoyrun"
	"github.com/extauthz/extauthz/internal/testutil/testprog"
)

// Version is the Envoy release the project's configs are tested against.
const Version = envoyrun.Version

type (
	// Config is an Envoy bootstrap to rewrite (envoyrun.Config).
	Config = envoyrun.Config
	// Process is a running Envoy (envoyrun.Process).
	Process = envoyrun.Process
	// Options tune Start (envoyrun.Options).
	Options = envoyrun.Options
	// Output collects a process's output (envoyrun.Output).
	Output = envoyrun.Output
)

// The functions of envoyrun, under their names here.
var (
	Find     = envoyrun.Find
	Load     = envoyrun.Load
	Start    = envoyrun.Start
	Validate = envoyrun.Validate
)

// Require returns the Envoy binary for a test (envoyrun.Find, of version
// Version), or skips it as a missing program; with CI=true a missing Envoy,
// or one of another version, fails the test (.ci/install installs it).
func Require(t testing.TB) string {
	t.Helper()
	p, err := findOnce()
	if err != nil {
		testprog.Missing(t, "envoy", err.Error())
	}
	return p
}

// findOnce is Find plus a version check, run once per test binary.
var findOnce = sync.OnceValues(func() (string, error) {
	p, err := envoyrun.Find()
	if err != nil {
		return "", err
	}
	if err := envoyrun.CheckVersion(p); err != nil {
		return "", err
	}
	return p, nil
})
