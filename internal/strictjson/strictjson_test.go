package strictjson

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// doc is the shape the tests read: {"s": string, "n": integer, "o": {"s": string}}.
type doc struct {
	s, os string
	n     int64
}

var names, inner = []string{"s", "n", "o"}, []string{"s"}

func decode(data string) (doc, uint64, error) {
	var d doc
	var seen uint64
	err := Decode([]byte(data), "test", func(rd *Reader) error {
		var err error
		seen, err = rd.Object("", names, func(i int, p Pointer) error {
			var err error
			switch i {
			case 0:
				d.s, err = rd.String(p)
			case 1:
				d.n, err = rd.Int(p)
			default:
				_, err = rd.Object("/o", inner, func(_ int, p Pointer) error {
					var err error
					d.os, err = rd.String(p)
					return err
				})
			}
			return err
		})
		return err
	})
	return d, seen, err
}

// TestRules: the one set of rules, each one both ways.
func TestRules(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want doc // when err is ""
		err  string
	}{
		{`{"s":"a","n":1,"o":{"s":"b"}}`, doc{s: "a", n: 1, os: "b"}, ""},
		{` {"s":""} `, doc{}, ""},
		{`{"\u0073":"a"}`, doc{s: "a"}, ""},
		{`{"n":1.0}`, doc{n: 1}, ""},
		{`{"n":1e0}`, doc{n: 1}, ""},
		{`{"n":-9007199254740991}`, doc{n: -9007199254740991}, ""},
		{`{"n":9007199254740992}`, doc{}, "at /n: not a safe integer"},
		{`{"n":1.5}`, doc{}, "at /n: not a safe integer"},
		{`{"n":"1"}`, doc{}, "at /n: got a JSON string, want a number"},
		{`{"s":null}`, doc{}, "at /s: got a JSON null, want a string"},
		{`not json`, doc{}, "invalid JSON at byte 1"},
		{`{"s":nul}`, doc{}, "invalid JSON at byte"},
		{`{"n":tru}`, doc{}, "invalid JSON at byte"},
		{`{"s":1}`, doc{}, "at /s: got a JSON number, want a string"},
		{`{"o":[]}`, doc{}, "at /o: got a JSON array, want an object"},
		{`[]`, doc{}, "at the top level: got a JSON array, want an object"},
		{`{"S":"a"}`, doc{}, "unknown field at byte 1 in the top-level object: field names are case-sensitive, did you mean /s?"},
		{`{"o":{"x":"SECRET"}}`, doc{}, "unknown field at byte 6 in /o (field names are case-sensitive)"},
		{`{"s":"a","s":"a"}`, doc{}, "at /s: duplicate field"},
		{`{"s":"a","\u0073":"a"}`, doc{}, "at /s: duplicate field"},
		{`{"s":"a"}{}`, doc{}, "invalid JSON at byte 9: data after the test object"},
		{"{\"s\":\"\xff\"}", doc{}, "invalid JSON at byte"},
		{`{"s":"\ud800"}`, doc{}, "invalid JSON at byte"},
		{`{"s":"a",}`, doc{}, "invalid JSON at byte"},
		{`{"s":"a"`, doc{}, "invalid JSON: truncated"},
		{``, doc{}, "invalid JSON: the input is empty"},
	} {
		got, _, err := decode(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("decode(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("decode(%q) error = %v; want %q", tc.in, err, tc.err)
		case err != nil && !errors.As(err, new(*Error)):
			t.Errorf("decode(%q) error %T is not an *Error", tc.in, err)
		case err != nil && strings.Contains(err.Error(), "SECRET"):
			t.Errorf("decode(%q) error quotes the input: %v", tc.in, err)
		}
	}
}

// FuzzDecode: no panic; every error is an *Error; what is accepted is one
// valid JSON value (no duplicate names, valid UTF-8) and its members were
// each seen once.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"s":"a","n":1,"o":{"s":"b"}}`, `{"n":1e0}`, `{"s":"a","s":"b"}`, `{"\u0073":null}`, `[]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		_, seen, err := decode(in)
		if err != nil {
			if !errors.As(err, new(*Error)) {
				t.Fatalf("error %T is not an *Error: %v", err, err)
			}
			return
		}
		if !jsontext.Value(in).IsValid() {
			t.Fatalf("accepted %q, which jsontext rejects", in)
		}
		if seen >= 1<<len(names) {
			t.Fatalf("seen = %b: a bit beyond the names", seen)
		}
	})
}

func TestHasMember(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want bool
	}{
		{`{"profile":"x"}`, true},
		{` {"a":{"profile":1},"b":[1,{"c":2}],"profile":null}`, true},
		{`{"\u0070rofile":"x"}`, true},
		{`{"a":{"profile":"x"}}`, false},
		{`{"Profile":"x"}`, false},
		{`["profile"]`, false},
		{`{"a":}`, false},
		{`{"a":1,`, false},
		{``, false},
	} {
		if got := HasMember([]byte(tc.doc), "profile"); got != tc.want {
			t.Errorf("HasMember(%s, profile) = %v; want %v", tc.doc, got, tc.want)
		}
	}
}

// FuzzHasMember holds HasMember to encoding/json: for a valid UTF-8
// document that the standard library reads as an object, HasMember says
// whether the object has the name; for anything else it never panics.
func FuzzHasMember(f *testing.F) {
	for _, s := range []string{`{"profile":"x"}`, `{"a":{"profile":1}}`, `{"\u0070rofile":1}`, `[]`, `{"a":1,"profile":[{}]}`, `{`, `{"profile"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		got := HasMember([]byte(doc), "profile")
		var m map[string]json.RawMessage
		if !utf8.ValidString(doc) || json.Unmarshal([]byte(doc), &m) != nil || m == nil {
			return
		}
		if _, want := m["profile"]; got != want {
			t.Fatalf("HasMember(%q) = %v; encoding/json says %v", doc, got, want)
		}
	})
}
