package authz

import (
	"context"
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
func (a *Authorizer) recoverHTTP(ctx context.Context, w http.ResponseWriter, protocol string, deny func(http.ResponseWriter, Reason)) {
	p := recover()
	if p == nil {
		return
	}
	if p == http.ErrAbortHandler {
		panic(p)
	}
	a.recordPanic(ctx, protocol, p)
	clear(w.Header())
	startJSON(w)
	deny(w, ReasonConfigurationError)
}

// writeJSONError answers with {"error":"<slug>"}; slugs are fixed ASCII.
func writeJSONError(w http.ResponseWriter, status int, slug string) {
	noteSlug(w, slug)
	writeJSON(w, status, `{"error":"`+slug+`"}`)
}

// apiAnswer is the capability API's answer as the observer sees it: its
// status and, for an error, its slug, noted by the function that writes it
// (writeJSONError, writeAPIDeny) rather than read back from the body.
type apiAnswer struct {
	http.ResponseWriter
	status int
	slug   string
}

func (a *apiAnswer) WriteHeader(code int) {
	if a.status == 0 {
		a.status = code
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *apiAnswer) Write(p []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	return a.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (the API sets
// a read deadline).
func (a *apiAnswer) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// noteSlug notes an error slug on an API answer; other writers ignore it.
func noteSlug(w http.ResponseWriter, slug string) {
	if a, ok := w.(*apiAnswer); ok {
		a.slug = slug
	}
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

// writeJSON answers with body, one JSON value, and a newline after it, as
// a terminal (curl) and line-oriented tools (jq, grep) expect.
func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body+"\n")
}
