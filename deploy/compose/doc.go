// Package compose holds the docker compose demo and the tests that keep it
// correct without a container engine: docker-compose.yaml, the init job's
// script and demo subject (demo-init.sh, demo-subject.json), and the demo
// Envoy's healthcheck (envoy-healthcheck.sh). The demo's Envoy config is
// deploy/envoy/envoy-compose.yaml; every image builds from the repository's
// Dockerfile, whose stages and .dockerignore are checked here too.
//
// Run the demo from this directory with `docker compose up --build
// --abort-on-container-exit --exit-code-from sandbox`, or from the root with
// `-f deploy/compose/docker-compose.yaml`. e2e/demo_test.go runs the same
// flow without Docker.
//
// Its one piece of non-test code embeds demo-subject.json for `extauthz
// demo` (DemoSubject), which runs this flow on the local machine with a real
// Envoy and no Docker.
package compose
