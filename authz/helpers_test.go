package authz

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/policy"
)

// Secret strings the tests plant in capabilities; no log line, metadata value
// or deny may ever contain one of them.
const (
	secretUserToken     = "SECRET-user-token-7f3a"
	secretProviderToken = "SECRET-provider-token-91c2"
)

var (
	testNow   = time.UnixMilli(1_780_000_000_000)
	testKey   = bytes.Repeat([]byte{0x42}, capability.KeySize)
	otherKey  = bytes.Repeat([]byte{0x17}, capability.KeySize)
	testClock = func() time.Time { return testNow }
)

func testSubject() capability.Subject {
	return capability.Subject{
		UserID:              "user-1",
		CloudAgentSessionID: "cas-1",
		KiloSessionID:       "sess-1",
		OutboundContainerID: "ctr-1",
		UserToken:           secretUserToken,
		ProviderToken:       secretProviderToken,
		Targets: policy.Targets{
			BackendBaseURL:       "https://api.kilo.example",
			ProviderBaseURL:      "https://llm.kilo.example",
			SessionIngestBaseURL: "https://ingest.kilo.example",
		},
	}
}

func newCodec(t testing.TB, now func() time.Time, keys ...[]byte) *capability.Codec {
	t.Helper()
	ring, err := capability.NewKeyRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return capability.NewCodec(ring, capability.WithClock(now))
}

func seal(t testing.TB, c *capability.Codec, s capability.Subject, ttl time.Duration) string {
	t.Helper()
	tok, err := c.Seal(s, ttl)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return tok
}

// capabilities are the values fixtures refer to as ${NAME}.
type capabilities map[string]string

func newCapabilities(t testing.TB) capabilities {
	t.Helper()
	codec := newCodec(t, testClock, testKey)
	noProvider := testSubject()
	noProvider.ProviderToken = ""
	past := newCodec(t, func() time.Time { return testNow.Add(-2 * time.Hour) }, testKey)
	return capabilities{
		"CAP":             seal(t, codec, testSubject(), time.Hour),
		"CAP_OTHER":       seal(t, codec, testSubject(), 30*time.Minute),
		"CAP_NO_PROVIDER": seal(t, codec, noProvider, time.Hour),
		"CAP_EXPIRED":     seal(t, past, testSubject(), time.Hour),
		"CAP_WRONG_KEY":   seal(t, newCodec(t, testClock, otherKey), testSubject(), time.Hour),
	}
}

var placeholder = regexp.MustCompile(`\$\{B64:((?:[^{}]|\$\{[A-Z_]+\})*)\}|\$\{([A-Z_]+)\}`)

// expand replaces ${NAME} with a capability and ${B64:text} with the
// standard base64 of text (itself expanded), for header_map raw values.
func (c capabilities) expand(t testing.TB, s string) string {
	t.Helper()
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		sub := placeholder.FindStringSubmatch(m)
		if sub[2] != "" {
			v, ok := c[sub[2]]
			if !ok {
				t.Fatalf("fixture names unknown capability %q", sub[2])
			}
			return v
		}
		return base64.StdEncoding.EncodeToString([]byte(c.expand(t, sub[1])))
	})
}

// loadCheckRequest reads testdata/check/NAME.json as a protojson CheckRequest.
func loadCheckRequest(t testing.TB, caps capabilities, name string) *authv3.CheckRequest {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "check", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	req := &authv3.CheckRequest{}
	if err := protojson.Unmarshal([]byte(caps.expand(t, string(raw))), req); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return req
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type serverSetup struct {
	identity string
	codec    *capability.Codec // nil: a codec over testKey
	log      *syncBuffer
}

// newTestCore returns a decision core over codec (nil: a codec over testKey)
// that logs at debug level to log (nil: nowhere).
func newTestCore(t testing.TB, codec *capability.Codec, log *syncBuffer) *Authorizer {
	t.Helper()
	if codec == nil {
		codec = newCodec(t, testClock, testKey)
	}
	logger := zerolog.Nop()
	if log != nil {
		logger = zerolog.New(log).Level(zerolog.DebugLevel)
	}
	core, err := NewAuthorizer(Config{Codec: codec, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return core
}

func newTestServer(t testing.TB, setup serverSetup) *GRPCServer {
	t.Helper()
	core := newTestCore(t, setup.codec, setup.log)
	var err error
	opts := GRPCOptions{}
	if setup.identity != "" {
		if opts.Identity, err = ParseIdentitySource(setup.identity); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := NewGRPCServer(core, opts)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// assertNoSecrets fails if s contains a planted token, a capability or a key.
func assertNoSecrets(t testing.TB, what, s string, caps capabilities) {
	t.Helper()
	secrets := []string{secretUserToken, secretProviderToken,
		base64.StdEncoding.EncodeToString(testKey), base64.StdEncoding.EncodeToString(otherKey), "kka1."}
	for _, c := range caps {
		secrets = append(secrets, c, c[len(capability.Prefix):len(capability.Prefix)+16])
	}
	for _, sec := range secrets {
		if strings.Contains(s, sec) {
			t.Errorf("%s contains a secret (%.12s…)", what, sec)
		}
	}
}
