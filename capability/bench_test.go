package capability

import (
	"testing"
	"time"
)

func BenchmarkOpen(b *testing.B) {
	for _, bc := range []struct {
		name string
		keys [][]byte
		seal []byte
	}{
		{"keys=1", [][]byte{testKey(1)}, testKey(1)},
		{"keys=3/last", [][]byte{testKey(1), testKey(2), testKey(3)}, testKey(3)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			sealer, _ := newTestCodec(b, bc.seal)
			tok, err := sealer.Seal(testSubject(), time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			c, _ := newTestCodec(b, bc.keys...)
			b.ReportAllocs()
			b.SetBytes(int64(len(tok)))
			for b.Loop() {
				if _, err := c.Open(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpenInvalid(b *testing.B) {
	c, _ := newTestCodec(b, testKey(1))
	tok, _ := c.Seal(testSubject(), time.Hour)
	bad := tamper(tok, 2, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Open(bad); err == nil {
			b.Fatal("opened a tampered token")
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	c, _ := newTestCodec(b, testKey(1))
	s := testSubject()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Seal(s, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}
