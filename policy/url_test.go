package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestTargetsValidate(t *testing.T) {
	good := shapes["distinct"]
	with := func(backend string) Targets {
		t := good
		t.BackendBaseURL = backend
		return t
	}
	tests := []struct {
		name    string
		targets Targets
		wantErr string // substring of the error; "" means valid
	}{
		{"distinct", shapes["distinct"], ""},
		{"providerOwn", shapes["providerOwn"], ""},
		{"shared", shapes["shared"], ""},
		{"sharedPrefix", shapes["sharedPrefix"], ""},
		{"local", shapes["local"], ""},
		{"paths", shapes["paths"], ""},
		{"IPv6 dev-less https", with("https://[2001:db8::1]:8443/api"), ""},
		{"upper-case scheme", with("HTTPS://API.example.com"), ""},
		{"encoded reserved in path", with("https://api.example.com/a%3Ab"), ""},
		{"empty", with(""), "backendBaseUrl: target is empty"},
		{"relative", with("/api"), "not an absolute"},
		{"no slashes", with("https:api.example.com"), "not an absolute"},
		{"three slashes", with("https:///api.example.com"), "empty host"},
		{"other scheme", with("ftp://api.example.com"), "scheme"},
		{"plain http production", with("http://api.example.com"), "plain http"},
		{"userinfo", with("https://u:p@api.example.com"), "userinfo"},
		{"query", with("https://api.example.com/api?x=1"), "query"},
		{"empty query", with("https://api.example.com/?"), "query"},
		{"fragment", with("https://api.example.com/#x"), "fragment"},
		{"empty fragment", with("https://api.example.com#"), "fragment"},
		{"percent in host", with("https://api%2eexample.com"), "percent"},
		{"non-canonical IPv4", with("https://0x7f.1"), "IPv4"},
		{"decimal IPv4", with("https://2130706433"), "IPv4"},
		{"bad port", with("https://api.example.com:99999"), "port"},
		{"dot segment", with("https://api.example.com/a/../b"), "dot segment"},
		{"encoded dot segment", with("https://api.example.com/a/%2e%2e/b"), "dot segment"},
		{"encoded slash", with("https://api.example.com/a%2Fb"), "encoded /"},
		{"encoded unreserved", with("https://api.example.com/%61pi"), "unreserved"},
		{"empty segment", with("https://api.example.com/a//b"), "empty path segment"},
		{"double trailing slash", with("https://api.example.com/a//"), "empty path segment"},
		{"semicolon", with("https://api.example.com/a;b"), "';'"},
		{"space", with("https://api.example.com/a b"), "space"},
		{"leading space", with(" https://api.example.com"), "scheme"},
		{"backslash", with("https://api.example.com\\a"), "backslash"},
		{"invalid UTF-8", with("https://api.example.com/%c0%ae"), "UTF-8"},
		{"bad provider", Targets{good.BackendBaseURL, "http://llm.example.com", good.SessionIngestBaseURL}, "providerBaseUrl: plain http"},
		{"bad ingest", Targets{good.BackendBaseURL, good.ProviderBaseURL, "https://ingest.example.com?x"}, "sessionIngestBaseUrl: target has a query"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.targets.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("Validate(%+v) = %v; want nil", tc.targets, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate(%+v) = %v; want error containing %q", tc.targets, err, tc.wantErr)
			}
			if !errors.Is(err, ErrInvalidTargets) || errors.Is(err, ErrInvalidUpstreamURL) {
				t.Errorf("Validate(%+v) = %v; want it to wrap only ErrInvalidTargets", tc.targets, err)
			}
			// A bad target fails every request closed.
			_, cerr := Classify(Request{Scheme: "https", Authority: "llm.example.com", Path: "/api/openrouter/x"}, tc.targets, sessionID)
			if !errors.Is(cerr, ErrInvalidUpstreamURL) {
				t.Errorf("Classify with targets %+v = %v; want %v", tc.targets, cerr, ErrInvalidUpstreamURL)
			}
		})
	}
}

func TestValidateTargetsDevHosts(t *testing.T) {
	p, err := New("dev.internal", "[::1]", "10.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	targets := Targets{"http://dev.internal:3000", "http://[::1]:8787", "http://10.0.0.2"}
	if err := p.ValidateTargets(targets); err != nil {
		t.Errorf("ValidateTargets(%+v) = %v; want nil", targets, err)
	}
	if err := targets.Validate(); !errors.Is(err, ErrInvalidTargets) {
		t.Errorf("default Validate(%+v) = %v; want %v", targets, err, ErrInvalidTargets)
	}
	req := Request{Scheme: "http", Authority: "[0:0::1]:8787", Path: "/api/openrouter/x"}
	if r, err := p.Classify(req, targets, sessionID); err != nil || r.Class != ProviderModel {
		t.Errorf("Classify(%+v) = %v, %v; want %v", req, r, err, ProviderModel)
	}
	if _, err := Classify(req, targets, sessionID); !errors.Is(err, ErrInvalidUpstreamURL) {
		t.Errorf("default Classify(%+v) = %v; want %v", req, err, ErrInvalidUpstreamURL)
	}
	var nilPolicy *Policy
	if err := nilPolicy.ValidateTargets(shapes["local"]); err != nil {
		t.Errorf("nil Policy ValidateTargets = %v; want nil", err)
	}
}

func TestNew(t *testing.T) {
	for _, h := range []string{"dev.internal", "DEV.internal", "my_host", "10.1.2.3", "[::1]", "[2001:db8::2]", "trailing.dot."} {
		if _, err := New(h); err != nil {
			t.Errorf("New(%q) = %v; want nil", h, err)
		}
	}
	for _, h := range []string{"", "dev.internal:8080", "::1", "[::1]:80", "0x7f.1", "127.1", "a b", "user@host", "ex%61mple", "héllo", ".", "a..b", "[127.0.0.1]"} {
		if _, err := New(h); err == nil {
			t.Errorf("New(%q) = nil error; want an error", h)
		}
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		raw     string
		want    Request
		wantErr bool
	}{
		{raw: "https://api.example.com/api/x?y=1", want: Request{Scheme: "https", Authority: "api.example.com", Path: "/api/x?y=1"}},
		{raw: "HTTPS://API.example.com:8443/", want: Request{Scheme: "https", Authority: "API.example.com:8443", Path: "/"}},
		{raw: "https://api.example.com", want: Request{Scheme: "https", Authority: "api.example.com", Path: "/"}},
		{raw: "https://api.example.com?x=%zz", want: Request{Scheme: "https", Authority: "api.example.com", Path: "/?x=%zz"}},
		{raw: "http://localhost:3000/a", want: Request{Scheme: "http", Authority: "localhost:3000", Path: "/a"}},
		{raw: "http://api.example.com/a", want: Request{Scheme: "http", Authority: "api.example.com", Path: "/a"}}, // dev rule is Classify's
		{raw: "http://[::1]:3000/a%20b", want: Request{Scheme: "http", Authority: "[::1]:3000", Path: "/a%20b"}},
		{raw: "", wantErr: true},
		{raw: "api.example.com/x", wantErr: true},
		{raw: "//api.example.com/x", wantErr: true},
		{raw: "https:api.example.com/x", wantErr: true},
		{raw: "https:/api.example.com/x", wantErr: true},
		{raw: "https:///x", wantErr: true},
		{raw: "wss://api.example.com/x", wantErr: true},
		{raw: "https://user@api.example.com/x", wantErr: true},
		{raw: "https://api.example.com/x#frag", wantErr: true},
		{raw: "https://api.example.com\\x", wantErr: true},
		{raw: "https://api.example.com/a/../b", wantErr: true},
		{raw: "https://api.example.com/a%2fb", wantErr: true},
		{raw: "https://2130706433/", wantErr: true},
		{raw: " https://api.example.com/", wantErr: true},
		{raw: "https://api.example.com/ ", wantErr: true},
	}
	for _, tc := range tests {
		got, err := ParseURL(tc.raw)
		if tc.wantErr {
			if err == nil || !errors.Is(err, ErrInvalidUpstreamURL) {
				t.Errorf("ParseURL(%q) = %+v, %v; want %v", tc.raw, got, err, ErrInvalidUpstreamURL)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", tc.raw, got, err, tc.want)
		}
	}
}

func TestErrorsCarryNoRequestData(t *testing.T) {
	const secret = "s3cr3t"
	reqs := []Request{
		{Scheme: "https", Authority: "api.example.com", Path: "/api/" + secret + "/../x"},
		{Scheme: "https", Authority: secret + "@api.example.com", Path: "/"},
		{Scheme: "https", Authority: "api.example.com", Path: "/x?token=" + secret + " "},
		{Scheme: "https", Authority: "api.example.com." + secret, Path: "/"},
	}
	for _, req := range reqs {
		_, err := Classify(req, shapes["distinct"], sessionID)
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("Classify(%+v) = %v; want an error without request data", req, err)
		}
	}
}
