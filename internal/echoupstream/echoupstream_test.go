package echoupstream

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

func TestEcho(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		target  string
		headers [][2]string
		want    Echoed
	}{
		{
			name:   "headers and raw path",
			method: http.MethodPost,
			target: "/api/x%2Fy?q=1",
			headers: [][2]string{
				{"Authorization", "Bearer real-token"},
				{"X-Multi", "a"},
				{"X-Multi", "b"},
			},
			want: Echoed{
				Method: http.MethodPost,
				Path:   "/api/x%2Fy?q=1",
				Host:   "upstream.test",
				Headers: map[string][]string{
					"authorization": {"Bearer real-token"},
					"x-multi":       {"a", "b"},
				},
			},
		},
		{
			name:   "no headers",
			method: http.MethodGet,
			target: "/",
			want:   Echoed{Method: http.MethodGet, Path: "/", Host: "upstream.test", Headers: map[string][]string{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.target, nil)
			req.Host = "upstream.test"
			for _, h := range tt.headers {
				req.Header.Add(h[0], h[1])
			}
			rec := httptest.NewRecorder()
			Handler(rec, req)
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q; want application/json", ct)
			}
			var got Echoed
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Method != tt.want.Method || got.Path != tt.want.Path || got.Host != tt.want.Host {
				t.Errorf("echo = %+v; want %+v", got, tt.want)
			}
			if len(got.Headers) != len(tt.want.Headers) {
				t.Errorf("headers = %v; want %v", got.Headers, tt.want.Headers)
			}
			for k, v := range tt.want.Headers {
				if !slices.Equal(got.Headers[k], v) {
					t.Errorf("headers[%q] = %q; want %q", k, got.Headers[k], v)
				}
			}
		})
	}
}
