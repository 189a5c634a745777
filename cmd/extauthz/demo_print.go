package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/extauthz/extauthz/authz"
)

// demoPrintout is what the demo tells its user: where each part listens
// and where its files are.
type demoPrintout struct {
	dir                   string // the capability, the API token, revoke.json, the logs
	container             string // the capability's outbound container id
	proxy                 string // Envoy's listener
	api                   string // extauthz's HTTP listener: the capability API
	envoy, extauthz, echo string // Envoy's binary; the gRPC and upstream addresses
}

// demoRequests are the three commands the demo prints, in the order to
// paste them: allowed, denied, revoked (a revocation, then the allowed
// request again). The capability and the API token stay in files, read by
// the shell that runs each command.
func demoRequests(p demoPrintout) (allowed, denied, revoked string) {
	file := func(name string) string { return filepath.Join(p.dir, name) }
	request := func(url string) string {
		return fmt.Sprintf(`curl -sS -i -x http://%s -H "x-kilo-capability: $(cat %s)" %s`, p.proxy, file("capability"), url)
	}
	revoke := fmt.Sprintf(`curl -sS -w '\n' -H "Authorization: Bearer $(cat %s)" -H 'Content-Type: application/json' --data @%s http://%s%s`,
		file("api-token"), file("revoke.json"), p.api, authz.RevokePath)
	return request(demoAllowedURL), request(demoDeniedURL), revoke + " && " + request(demoAllowedURL)
}

// printDemo writes the demo's instructions.
func printDemo(w io.Writer, p demoPrintout) {
	allowed, denied, revoked := demoRequests(p)
	fmt.Fprintf(w, `
extauthz demo: the docker compose demo on this machine, without Docker.

  Envoy          %s, listening on %s (deploy/envoy/envoy-compose.yaml)
  extauthz       gRPC %s, capability API http://%s
  echo upstream  %s, which Envoy serves as %s

The capability in %s is bound to container
%s and valid for %g h (deploy/compose/demo-subject.json). A sandbox sends it
in x-kilo-capability through Envoy; extauthz swaps it for the real token or refuses.
Paste these three in another terminal, in order:

1. Allowed: the echo upstream shows the authorization it received, "Bearer demo-user-token"
   (the user's real token), and no x-kilo-capability.

%s

2. Denied (403 upstream_not_allowed): the same capability does not reach another
   session's data, and nothing is sent upstream.

%s

3. Revoked: revoke the capability through extauthz's API (extauthz revoke does the
   same), then send request 1 again: 401 revoked_capability.

%s

Logs: %s (a line per decision), %s (Envoy's access log).
Ctrl-C stops Envoy, extauthz and the echo upstream, and removes %s.
`, p.envoy, p.proxy, p.extauthz, p.api, p.echo, demoUpstream,
		filepath.Join(p.dir, "capability"), p.container, demoTTL.Hours(), indent(allowed), indent(denied), indent(revoked),
		filepath.Join(p.dir, "extauthz.log"), filepath.Join(p.dir, "envoy.log"), p.dir)
}

func indent(cmd string) string { return "   " + cmd }
