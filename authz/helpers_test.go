package authz

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
	"github.com/extauthz/extauthz/policy"
)

// Secret strings the tests plant in capabilities; no log line, metadata value
// or deny may ever contain one of them.
const (
	secretUserToken     = testsupport.UserToken
	secretProviderToken = testsupport.ProviderToken
)

var (
	testNow   = time.UnixMilli(1_780_000_000_000)
	testKey   = bytes.Repeat([]byte{0x42}, capability.KeySize)
	otherKey  = bytes.Repeat([]byte{0x17}, capability.KeySize)
	testClock = func() time.Time { return testNow }
)

func testSubject() capability.Subject {
	return testsupport.Subject("ctr-1", capability.Targets{
		BackendBaseURL:       "https://api.kilo.example",
		ProviderBaseURL:      "https://llm.kilo.example",
		SessionIngestBaseURL: "https://ingest.kilo.example",
	})
}

func newCodec(t testing.TB, now func() time.Time, keys ...[]byte) *capability.Codec {
	t.Helper()
	ring, err := capability.NewKeyRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return capability.NewCodec(ring, capability.WithClock(now), capability.WithCache(testCacheSize))
}

// testCacheSize is the capability cache of the tests' codecs: every test
// runs with the cache on, as the server does, so that it is shown to change
// no outcome.
const testCacheSize = 100

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

// checkFixture is one file of testdata/check: a CheckRequest (protojson,
// with ${NAME} placeholders) next to the outcome expected for it.
type checkFixture struct {
	// Identity is the --container-id-from the server uses; "" = default.
	Identity string `json:"identity"`
	Want     struct {
		Reason Reason            `json:"reason"` // "" = allowed
		Class  policy.RouteClass `json:"class"`
		// Credential is the credential an allow sends: "provider" or "user".
		Credential string `json:"credential"`
	} `json:"want"`
	Request json.RawMessage `json:"request"`
}

// checkCase is a fixture with its name and the credential it expects.
type checkCase struct {
	fixture    string
	identity   string
	reason     Reason
	class      policy.RouteClass
	credential string // the secret an allow sends
}

// readCheckFixture reads testdata/check/NAME.json strictly.
func readCheckFixture(t testing.TB, name string) checkFixture {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "check", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var f checkFixture
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return f
}

// loadCheckCases returns every fixture of testdata/check with its expected
// outcome, in file name order.
func loadCheckCases(t testing.TB) []checkCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "check", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in testdata/check: %v", err)
	}
	var cases []checkCase
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		f := readCheckFixture(t, name)
		tc := checkCase{fixture: name, identity: f.Identity, reason: f.Want.Reason, class: f.Want.Class}
		switch f.Want.Credential {
		case "provider":
			tc.credential = secretProviderToken
		case "user":
			tc.credential = secretUserToken
		case "":
		default:
			t.Fatalf("fixture %s: credential %q; want provider or user", name, f.Want.Credential)
		}
		if (tc.reason == ReasonNone) != (tc.credential != "" && tc.class != "") {
			t.Fatalf("fixture %s: an allow names a class and a credential, a deny neither", name)
		}
		cases = append(cases, tc)
	}
	return cases
}

// loadCheckRequest reads the request of testdata/check/NAME.json as a
// protojson CheckRequest.
func loadCheckRequest(t testing.TB, caps capabilities, name string) *authv3.CheckRequest {
	t.Helper()
	f := readCheckFixture(t, name)
	req := &authv3.CheckRequest{}
	if err := protojson.Unmarshal([]byte(caps.expand(t, string(f.Request))), req); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return req
}

type serverSetup struct {
	identity string
	codec    *capability.Codec // nil: a codec over testKey
	log      *testsupport.LockedBuffer
}

// newTestCore returns a decision core over codec (nil: a codec over testKey)
// that logs at debug level to log (nil: nowhere).
func newTestCore(t testing.TB, codec *capability.Codec, log *testsupport.LockedBuffer) *Authorizer {
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

// serveBufconn serves gs on an in-memory listener until the test ends and
// returns a client connection to it.
func serveBufconn(t testing.TB, gs *grpc.Server) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
