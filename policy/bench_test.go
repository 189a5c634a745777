package policy

import "testing"

// BenchmarkClassify measures one Classify per request class, targets parsed
// on every call as in production.
func BenchmarkClassify(b *testing.B) {
	benches := []struct {
		name string
		req  Request
	}{
		{"provider_model", Request{Scheme: "https", Authority: "app.example.com", Path: "/api/openrouter/v1/chat/completions"}},
		{"organization_models", Request{Scheme: "https", Authority: "app.example.com", Path: "/api/organizations/org-1/models"}},
		{"session_ingest", Request{Scheme: "https", Authority: "app.example.com", Path: "/api/session/sess-1/ingest"}},
		{"backend_api", Request{Scheme: "https", Authority: "app.example.com", Path: "/api/profile?fields=a%2Cb"}},
		{"backend_api_encoded", Request{Scheme: "https", Authority: "app.example.com", Path: "/api/files/r%C3%A9sum%C3%A9%20v2"}},
		{"deny_not_allowed", Request{Scheme: "https", Authority: "app.example.com", Path: "/api/session/sess-2/export"}},
		{"deny_invalid", Request{Scheme: "https", Authority: "app.example.com", Path: "/api/%2e%2e/x"}},
	}
	targets := shapes["shared"]
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Classify(bb.req, targets, sessionID)
			}
		})
	}
}
