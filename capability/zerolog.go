package capability

import "github.com/rs/zerolog"

// MarshalZerologObject logs the claims' non-secret fields only. It is the one
// reason this package imports zerolog; the package itself never logs.
func (c Claims) MarshalZerologObject(e *zerolog.Event) {
	e.Str("user_id", c.UserID).
		Str("cloud_agent_session_id", c.CloudAgentSessionID).
		Str("kilo_session_id", c.KiloSessionID).
		Str("outbound_container_id", c.OutboundContainerID).
		Int64("issued_at", c.IssuedAt).
		Int64("expires_at", c.ExpiresAt).
		Bool("has_provider_token", c.ProviderToken != "")
}
