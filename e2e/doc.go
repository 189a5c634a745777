// Package e2e holds end-to-end tests that run the real extauthz binary behind
// real proxies (Envoy, nginx) and a real Prometheus, using the configurations
// shipped under deploy/ (envoy/, nginx/, traefik/, compose/, observability/).
//
// The tests need the programs they run (Envoy, nginx, Redis, Prometheus,
// Node.js, git; bash .ci/install installs them all). Without one a test is
// skipped, and the test command (go run ./internal/testsuite) ends by
// counting those skips, except when CI=true, where it fails: the proof that
// a shipped config fails closed must not silently vanish.
//
// The provider test (providers_test.go) drives the unmodified openai and
// anthropic Python SDKs, pinned in a virtualenv that .ci/install installs
// (.ci/run names it in EXTAUTHZ_SDK_PYTHON), and git with a real git
// http-backend; it skips without them outside CI, counted like the others,
// and fails without them in CI.
//
// Every process is started on free loopback ports, waited for by polling with
// a bound, and stopped in t.Cleanup.
package e2e
