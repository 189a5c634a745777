package authz

import (
	"io"
	"net/http"

	"github.com/go-json-experiment/json"
)

// This file holds what the HTTP adapters (HTTPHandler, APIHandler) share
// besides their routing (endpoints.go): JSON answers and panic recovery.

// startJSON sets the headers every answer of an HTTP adapter carries.
func startJSON(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
}

// recoverHTTP, deferred by an HTTP adapter, turns a panic into a
// capability_configuration_error answer written by deny, with every header
// set so far dropped (an allow may have set Authorization).
// http.ErrAbortHandler keeps its meaning and is re-raised.
func (a *Authorizer) recoverHTTP(w http.ResponseWriter, protocol string, deny func(http.ResponseWriter, Reason)) {
	p := recover()
	if p == nil {
		return
	}
	if p == http.ErrAbortHandler {
		panic(p)
	}
	a.recordPanic(protocol, p)
	clear(w.Header())
	startJSON(w)
	deny(w, ReasonConfigurationError)
}

// writeJSONError answers with {"error":"<slug>"}; slugs are fixed ASCII.
func writeJSONError(w http.ResponseWriter, status int, slug string) {
	writeJSON(w, status, `{"error":"`+slug+`"}`)
}

// writeJSONValue answers with v encoded as JSON.
func writeJSONValue(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Unreachable: the values are plain strings (invalid UTF-8 is
		// rejected before it gets here). Fail closed without details.
		writeJSONError(w, http.StatusInternalServerError, "internal_error")
		return
	}
	writeJSON(w, status, string(b))
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}
