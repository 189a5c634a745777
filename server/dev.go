package server

import (
	"fmt"
	"io"
	"time"

	"github.com/extauthz/extauthz/capability"
)

// GrpcurlVersion is the grpcurl release the --dev help text runs with `go run`,
// so that trying the server needs nothing but Go.
const GrpcurlVersion = "v1.9.3"

// DevSubject is the subject of the sample capability --dev prints. Its tokens are obviously
// fake; the targets are on localhost, where plain http is allowed.
func DevSubject() capability.Subject {
	return capability.Subject{
		UserID:              "dev-user",
		CloudAgentSessionID: "dev-cloud-agent-session",
		KiloSessionID:       "dev-session",
		OutboundContainerID: "dev-container",
		UserToken:           "dev-user-token",
		ProviderToken:       "dev-provider-token",
		Targets: capability.Targets{
			BackendBaseURL:       "http://localhost:8080",
			ProviderBaseURL:      "http://localhost:8080",
			SessionIngestBaseURL: "http://localhost:8081",
		},
	}
}

// printDevHelp prints a sample capability and ready-to-paste requests to
// the listeners at addrs (by name). It goes to stdout, not to the log: it is
// the one place a capability is shown, and only in --dev with an ephemeral
// key and fake tokens.
func (s *Server) printDevHelp(w io.Writer, addrs map[string]string) {
	sub := DevSubject()
	tok, err := s.core.IssueSubject(sub, time.Hour)
	if err != nil {
		s.log.Error().Err(err).Msg("cannot seal the development capability")
		return
	}
	fmt.Fprintf(w, "\nextauthz --dev: ephemeral key, sample capability (valid 1 h, bound to container %q):\n\n  %s\n", sub.OutboundContainerID, tok)
	if s.storeKind == storeMemory {
		fmt.Fprintf(w, "\nRevocations are kept in memory (%s): they end with this process.\n", s.storeWhy)
	}
	if g := addrs["grpc"]; g != "" {
		req := fmt.Sprintf(`{"attributes":{"contextExtensions":{"outbound_container_id":%q},"request":{"http":{"method":"POST","scheme":"http","host":"localhost:8080","path":"/api/openrouter/v1/chat/completions","headers":{"authorization":"Bearer %s"}}}}}`, sub.OutboundContainerID, tok)
		fmt.Fprintf(w, "\nTry an Envoy-style gRPC Check (allowed: the response sets authorization to the provider token;\ngrpcurl reads the service through gRPC reflection, which --dev turns on: docs/grpcurl.md):\n\n  go run github.com/fullstorydev/grpcurl/cmd/grpcurl@%s -plaintext -d '%s' %s envoy.service.auth.v3.Authorization/Check\n", GrpcurlVersion, req, g)
	}
	if h := addrs["http"]; h != "" {
		forward := func(container string) string {
			return fmt.Sprintf("curl -i -H 'Authorization: Bearer %s' -H 'X-Outbound-Container-Id: %s' -H 'X-Forwarded-Proto: http' -H 'X-Forwarded-Host: localhost:8080' -H 'X-Forwarded-Uri: /api/openrouter/v1/chat/completions' -H 'X-Forwarded-Method: POST' http://%s/v1/authz/forward", tok, container, h)
		}
		fmt.Fprintf(w, "\nOr the HTTP forward-auth endpoint (200 with the real authorization header):\n\n  %s\n", forward(sub.OutboundContainerID))
		fmt.Fprintf(w, "\nThe same request from another container is denied (403, X-Extauthz-Reason: container_mismatch): the capability is bound to %q:\n\n  %s\n", sub.OutboundContainerID, forward(DevOtherContainer))
	}
	fmt.Fprintln(w)
}

// DevOtherContainer is the container id of --dev's denied example: not the
// one the sample capability is bound to.
const DevOtherContainer = "another-container"
