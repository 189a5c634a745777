package capability

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/strictjson"
)

// profileDoc is a valid profile subject document for testProfileSubject.
const profileDoc = `{"profile":"github","outboundContainerId":"ctr-1","subject":{"userId":"u-1","sessionId":"s-1"},` +
	`"vars":{"owner":"acme","repo":"widgets.git"},"credentials":{"token":"` + plantedSecret + `"}}`

// TestDecodeProfileSubject: the document is read as strictly as the
// claims; a malformed one is a *SubjectError that quotes nothing of it.
func TestDecodeProfileSubject(t *testing.T) {
	var ttl int64 = -1
	extra := ExtraMember{Name: "ttlSeconds", Read: func(rd *strictjson.Reader, p strictjson.Pointer) (err error) {
		ttl, err = rd.Int(p)
		return err
	}}
	got, err := DecodeProfileSubject([]byte(strings.Replace(profileDoc, "{", `{"ttlSeconds":60,`, 1)), extra)
	if err != nil || !reflect.DeepEqual(got, testProfileSubject()) || ttl != 60 {
		t.Fatalf("DecodeProfileSubject = %v, ttl %d, %v; want %v, 60", got, ttl, err, testProfileSubject())
	}
	if got, err := DecodeProfileSubject([]byte(`{"profile":"openai","\u0063redentials":{"api-key":"k"}}`)); err != nil ||
		got.Profile != "openai" || got.Credentials["api-key"] != "k" || got.Subject != nil || got.Vars != nil {
		t.Fatalf("absent members and an escaped name: %v, %v", got, err)
	}
	for name, doc := range map[string]string{
		"unknown member":          strings.Replace(profileDoc, "{", `{"targets":{},`, 1),
		"extra member not asked":  strings.Replace(profileDoc, "{", `{"ttlSeconds":60,`, 1),
		"name in another case":    strings.Replace(profileDoc, `"vars"`, `"Vars"`, 1),
		"duplicate member":        strings.Replace(profileDoc, "{", `{"profile":"github",`, 1),
		"duplicate map member":    strings.Replace(profileDoc, `{"token":`, `{"token":"x","token":`, 1),
		"null credential":         strings.Replace(profileDoc, `"`+plantedSecret+`"`, `null`, 1),
		"number as a subject id":  strings.Replace(profileDoc, `"u-1"`, `1`, 1),
		"credentials as a string": strings.Replace(profileDoc, `{"token":"`+plantedSecret+`"}`, `"`+plantedSecret+`"`, 1),
		"map key not a name":      strings.Replace(profileDoc, `"token":`, `"`+plantedSecret+` x":`, 1),
		"trailing data":           profileDoc + "{}",
		"invalid UTF-8":           strings.Replace(profileDoc, "acme", "ac\xffme", 1),
		"array":                   `[` + profileDoc + `]`,
	} {
		_, err := DecodeProfileSubject([]byte(doc), extra)
		if name == "extra member not asked" {
			_, err = DecodeProfileSubject([]byte(doc))
		}
		if _, ok := errors.AsType[*SubjectError](err); !ok || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v; want a *SubjectError", name, err)
		} else if strings.Contains(err.Error(), plantedSecret) || strings.Contains(err.Error(), "acme") {
			t.Errorf("%s: the error quotes the document: %v", name, err)
		}
	}
}

// FuzzDecodeProfileSubject: any document decodes or is refused with an
// ErrInvalid that quotes none of it; what decodes and passes the claim
// rules seals and opens to itself.
func FuzzDecodeProfileSubject(f *testing.F) {
	f.Add(profileDoc)
	for _, s := range []string{"", "{}", "null", `{"profile":null}`, `{"profile":"a","profile":"a"}`, `{"subject":{"a":"1","a":"2"}}`,
		`{"\u0070rofile":"p","credentials":{"k":"v"}}`, `{"vars":{"1":"x"}}`, profileDoc + "{}", "{\"vars\":{\"a\":\"\xff\"}}"} {
		f.Add(s)
	}
	c, _ := newTestCodec(f, testKey(1))
	f.Fuzz(func(t *testing.T, doc string) {
		s, err := DecodeProfileSubject([]byte(doc))
		if err != nil {
			wantErr(t, err, ErrInvalid)
			if len(doc) >= 8 {
				assertClean(t, "DecodeProfileSubject error", err.Error(), plantedSecret, doc)
			}
			return
		}
		tok, err := c.SealProfile(s, time.Hour)
		if err != nil {
			wantErr(t, err, ErrInvalid)
			return
		}
		got, err := c.OpenProfile(tok)
		if err != nil || !reflect.DeepEqual(got.ProfileSubject, withMaps(s)) {
			t.Fatalf("%q sealed opens to %v, %v; want %v", doc, got.ProfileSubject, err, s)
		}
	})
}

// withMaps is s with its nil maps empty, as a sealed subject opens.
func withMaps(s ProfileSubject) ProfileSubject {
	for _, m := range []*map[string]string{&s.Subject, &s.Vars, &s.Credentials} {
		if *m == nil {
			*m = map[string]string{}
		}
	}
	return s
}
