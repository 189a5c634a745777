package policy

import "testing"

// BenchmarkTableClassify compares, on targets parsed once (as
// ClassifyPrepared runs), the route table with the old classifier it
// replaced (oracle_test.go).
func BenchmarkTableClassify(b *testing.B) {
	pt, err := defaultPolicy.parseTargets(shapes["shared"], ErrInvalidUpstreamURL)
	if err != nil {
		b.Fatal(err)
	}
	old := oldTargets{backend: pt[TargetBackend], provider: pt[TargetProvider], ingest: pt[TargetSessionIngest]}
	vars := []Var{{Name: kiloVar, Value: sessionID}}
	for _, c := range []struct{ name, path string }{
		{"provider_model", "/api/openrouter/v1/chat/completions"},
		{"organization_models", "/api/organizations/org-1/models"},
		{"session_ingest", "/api/session/sess-1/ingest"},
		{"backend_api", "/api/profile"},
	} {
		r, err := parseParts("https", "app.example.com", c.path)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("table/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				kiloTable.classify(r, "", (*[numTargets]parsedURL)(&pt), vars)
			}
		})
		b.Run("old/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				oldClassify(r, old, sessionID)
			}
		})
	}
}
