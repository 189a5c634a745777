package main

import (
	"bytes"
	"net/http"

	"github.com/go-json-experiment/json"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/extauthz/extauthz/authz"
)

// httpSpanNames are the span names of the HTTP listener's endpoints, by
// authz.Endpoint.Name, made once.
var httpSpanNames = func() map[string]string {
	names := map[string]string{}
	for _, ep := range authz.Endpoints() {
		names[ep.Name] = "extauthz " + ep.Name
	}
	return names
}()

// knownMethods keeps http.request.method bounded, as the OpenTelemetry
// HTTP conventions ask: anything else is _OTHER.
var httpMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
	http.MethodConnect: true, http.MethodTrace: true,
}

// middleware wraps the HTTP listener's handler: a server span per request
// to an endpoint that decides (authz.Endpoint.Decides; a path that decides
// nothing, a 404, gets none), child of the W3C or B3 context the request
// carries. The decision comes
// from the answer: its status code, X-Extauthz-Reason and
// X-Extauthz-Route-Class, or for the capability API the error slug or
// routeClass of its JSON body. The query, Authorization, the capability
// header and the request body are never read.
func (t *tracer) middleware(next http.Handler, identityHeader string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ep, ok := authz.EndpointOf(r)
		if !ok || !ep.Decides {
			next.ServeHTTP(w, r)
			return
		}
		ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.tr.Start(ctx, httpSpanNames[ep.Name], trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		if !span.IsRecording() {
			next.ServeHTTP(w, r.WithContext(ctx)) // not sampled: nothing to note
			return
		}
		method := r.Method
		if !httpMethods[method] {
			method = "_OTHER"
		}
		attrs := t.commonAttrs(ep.Protocol, attribute.String("http.route", ep.Route), attribute.String("http.request.method", method))
		if identityHeader != "" && !ep.API {
			if v := r.Header.Values(identityHeader); len(v) == 1 {
				if kv, ok := containerIDAttr(v[0]); ok {
					attrs = append(attrs, kv)
				}
			}
		}
		span.SetAttributes(attrs...)
		rw := &spanWriter{ResponseWriter: w, api: ep.API}
		next.ServeHTTP(rw, r.WithContext(ctx))
		rw.record(span)
	})
}

// maxCapturedBody bounds the part of an API answer kept to find its slug.
const maxCapturedBody = 8 << 10

// spanWriter notes what the decision span needs from an answer: the
// status, the decision headers, and for the API the start of the JSON body.
// The body is parsed for two slug members and dropped; it is never
// recorded.
type spanWriter struct {
	http.ResponseWriter
	api                bool
	status             int
	reason, routeClass string
	body               bytes.Buffer
}

func (w *spanWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
		hd := w.ResponseWriter.Header()
		w.reason, w.routeClass = hd.Get(authz.HeaderReason), hd.Get(authz.HeaderRouteClass)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *spanWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.api && w.body.Len() < maxCapturedBody {
		w.body.Write(p[:min(len(p), maxCapturedBody-w.body.Len())])
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (the API sets
// a read deadline).
func (w *spanWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// record sets the decision attributes on span.
func (w *spanWriter) record(span trace.Span) {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	if w.api {
		var b struct {
			Error      string `json:"error"`
			RouteClass string `json:"routeClass"`
		}
		// Unknown members (the credential, the capability) are skipped
		// unread into anything.
		_ = json.Unmarshal(w.body.Bytes(), &b, json.RejectUnknownMembers(false))
		w.body.Reset()
		w.reason, w.routeClass = b.Error, b.RouteClass
	}
	attrs := []attribute.KeyValue{attribute.Int("http.response.status_code", status)}
	if status >= 200 && status < 300 {
		attrs = append(attrs, attrDecision.String("allow"))
		if isSlug(w.routeClass) {
			attrs = append(attrs, attrRouteClass.String(w.routeClass))
		}
	} else {
		attrs = append(attrs, attrDecision.String("deny"))
		if isSlug(w.reason) {
			attrs = append(attrs, attrReason.String(w.reason))
		}
	}
	span.SetAttributes(attrs...)
	if status >= 500 {
		span.SetStatus(otelcodes.Error, http.StatusText(status))
	}
}
