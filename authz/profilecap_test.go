package authz

import (
	"context"
	"testing"

	"github.com/extauthz/extauthz/capability"
)

// TestProfileCapabilityDenied: with no profiles loaded, a profile
// capability presented anywhere is a deny, never an allow, and its
// credential never reaches a decision.
func TestProfileCapabilityDenied(t *testing.T) {
	codec := newCodec(t, testClock, testKey)
	tok, err := codec.SealProfile(capability.ProfileSubject{Profile: "openai", OutboundContainerID: "ctr-1",
		Credentials: map[string]string{"api-key": "sk-SENTINEL-profile"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	core, err := NewAuthorizer(Config{Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]Input{
		"bearer":           {Authorization: []string{"Bearer " + tok}},
		"dedicated header": {Capability: []string{tok}},
	} {
		in.Protocol, in.Complete, in.Method, in.Scheme, in.Authority, in.Path, in.CallerID = ProtocolGRPC, true, "POST", "https", "api.kilo.example", "/api/x", "ctr-1"
		d := core.Decide(context.Background(), in)
		if d.Allowed() || d.Credential() != "" {
			t.Errorf("%s: a profile capability was allowed: %v", name, d.Reason)
		}
	}
}
