// Package echoupstream is the demo upstream: it answers every request with
// a JSON description of what it received (method, raw path, host and
// headers), so that a demo shows that the real token arrived upstream and
// the capability did not. cmd/echo-upstream (the compose demo's image) and
// `extauthz demo` serve it.
//
// It echoes credentials back by design. Never run it where real tokens
// could reach it.
package echoupstream

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Echoed is the response body.
type Echoed struct {
	Method string `json:"method"`
	// Path is the request target exactly as received (path and query).
	Path string `json:"path"`
	Host string `json:"host"`
	// Headers has lower-case names; repeated headers keep every value.
	Headers map[string][]string `json:"headers"`
}

// Handler answers with what the request carried.
func Handler(w http.ResponseWriter, r *http.Request) {
	e := Echoed{
		Method:  r.Method,
		Path:    r.RequestURI,
		Host:    r.Host,
		Headers: make(map[string][]string, len(r.Header)),
	}
	for k, v := range r.Header {
		e.Headers[strings.ToLower(k)] = v
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(e) // the client went away; nothing to do
}
