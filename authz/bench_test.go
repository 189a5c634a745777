package authz

import (
	"context"
	"testing"

	"github.com/rs/zerolog"
)

// BenchmarkCheck is the hot path: an allowed provider_model Check, in-process,
// logging disabled above info so the line is built but discarded.
func BenchmarkCheck(b *testing.B) {
	caps := newCapabilities(b)
	srv := newTestServer(b, serverSetup{})
	req := loadCheckRequest(b, caps, "allow_provider_model")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := srv.Check(ctx, req)
		if err != nil || resp.GetOkResponse() == nil {
			b.Fatalf("Check = %v, %v", resp, err)
		}
	}
}

// BenchmarkCheckLogged is BenchmarkCheck with the info line written (to a
// discarding writer), as in production.
func BenchmarkCheckLogged(b *testing.B) {
	caps := newCapabilities(b)
	srv := newTestServer(b, serverSetup{})
	srv.core.log = zerolog.New(discard{}).Level(zerolog.InfoLevel)
	req := loadCheckRequest(b, caps, "allow_provider_model")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := srv.Check(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckDeny measures a deny after the capability opened (wrong
// container), the most expensive deny.
func BenchmarkCheckDeny(b *testing.B) {
	caps := newCapabilities(b)
	srv := newTestServer(b, serverSetup{})
	req := loadCheckRequest(b, caps, "deny_container_mismatch")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := srv.Check(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
