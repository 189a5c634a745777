package authz

import (
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/authz/internal/checkwire"
)

// TestCheckRequestHeaderRule: the values a CheckRequest carries for a
// header, by the one rule (headers.go) and through every reader of it: the
// decoded message (the oracle's headerValues, firstHeaderValue) and the
// encoding (checkwire, as a header the decision reads and as an extra
// header read for the Check span's parent). Both fields are read, the map first and matched exactly,
// header_map in order and in any case; an entry whose value and raw value
// differ is two values, raw first.
func TestCheckRequestHeaderRule(t *testing.T) {
	const name = "x-kilo-capability"
	type entry struct{ key, value, raw string }
	for _, tc := range []struct {
		desc   string
		m      map[string]string
		header []entry
		want   []string
	}{
		{"absent", nil, nil, nil},
		{"map", map[string]string{name: "a"}, nil, []string{"a"}},
		{"map, empty value", map[string]string{name: ""}, nil, []string{""}},
		{"map key matched exactly", map[string]string{"X-Kilo-Capability": "a"}, nil, nil},
		{"value only", nil, []entry{{name, "a", ""}}, []string{"a"}},
		{"raw value only", nil, []entry{{name, "", "a"}}, []string{"a"}},
		{"value and raw value equal", nil, []entry{{name, "a", "a"}}, []string{"a"}},
		{"value and raw value differ", nil, []entry{{name, "v", "r"}}, []string{"r", "v"}},
		{"neither", nil, []entry{{name, "", ""}}, []string{""}},
		{"key in any case", nil, []entry{{"X-KILO-Capability", "", "a"}}, []string{"a"}},
		{"other headers", map[string]string{"x-kilo-capability-2": "x"}, []entry{{"x-kilo", "", "y"}, {"authorization", "z", ""}}, nil},
		{"map first, entries in order", map[string]string{name: "m"},
			[]entry{{name, "", "a"}, {"other", "", "o"}, {name, "b", "c"}, {name, "d", ""}}, []string{"m", "a", "c", "b", "d"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			http := &authv3.AttributeContext_HttpRequest{Method: "GET", Headers: tc.m}
			if tc.header != nil {
				http.HeaderMap = &corev3.HeaderMap{}
				for _, e := range tc.header {
					http.HeaderMap.Headers = append(http.HeaderMap.Headers, &corev3.HeaderValue{Key: e.key, Value: e.value, RawValue: []byte(e.raw)})
				}
			}
			req := checkRequestFrom(http)
			if got := headerValues(http, name); !slices.Equal(got, tc.want) {
				t.Errorf("headerValues = %q; want %q", got, tc.want)
			}
			first := ""
			if len(tc.want) > 0 {
				first = tc.want[0]
			}
			if got := firstHeaderValue(http, name); got != first {
				t.Errorf("firstHeaderValue = %q; want %q", got, first)
			}
			b, err := proto.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := NewGRPCServer(newTestCore(t, nil, nil), GRPCOptions{})
			if err != nil {
				t.Fatal(err)
			}
			srv.reader.Extra = []string{name}
			call := checkwire.NewCall(&srv.reader, nil)
			if err := checkwire.Codec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, call); err != nil {
				t.Fatal(err)
			}
			if got := call.Fields().Headers[checkwire.SlotCapability]; !slices.Equal(got, tc.want) {
				t.Errorf("the wire reader's values = %q; want %q", got, tc.want)
			}
			if got := call.Get(name); got != first {
				t.Errorf("the span parent's carrier: Get = %q; want %q", got, first)
			}
		})
	}
}
