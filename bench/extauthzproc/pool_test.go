package extauthzproc

import (
	"context"
	"fmt"
	"testing"

	"github.com/extauthz/extauthz/capability"
)

// TestSealPool seals pools of sizes that do and do not divide among the
// workers: every capability is distinct, opens with the codec, and carries
// the subject it was sealed for.
func TestSealPool(t *testing.T) {
	_, codec, err := NewKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base := Subject("c", "api.example", "ingest.example")
	subject := func(i int) capability.Subject {
		s := base
		s.KiloSessionID = fmt.Sprintf("s-%07d", i)
		return s
	}
	for _, n := range []int{1, 2, 3, 2000, 2001} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			p, err := SealPool(context.Background(), codec, n, 0, subject, nil)
			if err != nil {
				t.Fatalf("SealPool(%d): %v", n, err)
			}
			if p.Len() != n || p.Bytes() <= 0 {
				t.Fatalf("Len() = %d, Bytes() = %d; want %d and > 0", p.Len(), p.Bytes(), n)
			}
			seen := make(map[string]int, n)
			for i := range n {
				tok := p.At(i)
				if j, dup := seen[tok]; dup {
					t.Fatalf("At(%d) = At(%d); want distinct", i, j)
				}
				seen[tok] = i
				cl, err := codec.Open(tok)
				if err != nil {
					t.Fatalf("Open(At(%d)): %v", i, err)
				}
				if cl.Subject != subject(i) {
					t.Fatalf("At(%d) opens to %v; want %v", i, cl.Subject, subject(i))
				}
			}
		})
	}
}

func TestSealPoolRefuses(t *testing.T) {
	_, codec, err := NewKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	subject := func(int) capability.Subject { return Subject("c", "api.example", "ingest.example") }
	if _, err := SealPool(context.Background(), codec, 0, 0, subject, nil); err == nil {
		t.Error("SealPool of 0: want an error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := SealPool(ctx, codec, 10, 0, subject, nil); err == nil {
		t.Error("SealPool with a cancelled context: want an error")
	}
	bad := func(int) capability.Subject { return capability.Subject{} }
	if _, err := SealPool(context.Background(), codec, 10, 0, bad, nil); err == nil {
		t.Error("SealPool of an invalid subject: want an error")
	}
}
