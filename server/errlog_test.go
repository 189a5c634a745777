package server

import (
	"testing"
)

// TestRedact: what a library quotes from a client (a bogus preface, a
// header) loses anything shaped like a capability or a bearer value.
func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`bogus greeting "kka1.AAAA:BBBB\r\n"`, `bogus greeting "[redacted]\r\n"`},
		{`authorization: Bearer secret-token-1 next`, `authorization: [redacted] next`},
		{"BEARER\tx", "[redacted]"},
		{`http: TLS handshake error from 127.0.0.1:5: EOF`, `http: TLS handshake error from 127.0.0.1:5: EOF`},
	} {
		if got := redact(tc.in); got != tc.want {
			t.Errorf("redact(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
