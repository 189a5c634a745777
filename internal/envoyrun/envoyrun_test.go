package envoyrun

import (
	"bytes"
	"testing"
)

func TestRemoveHTTPFilter(t *testing.T) {
	cfg, err := Load("../../deploy/envoy/envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if n := cfg.RemoveHTTPFilter("envoy.filters.http.ext_authz"); n != 1 {
		t.Fatalf("RemoveHTTPFilter(ext_authz) = %d; want 1", n)
	}
	js := cfg.JSON()
	if bytes.Contains(js, []byte("v3.ExtAuthz\"")) {
		t.Error("the ext_authz filter is still in the config")
	}
	if !bytes.Contains(js, []byte("envoy.filters.http.router")) {
		t.Error("the router went too")
	}
	if n := cfg.RemoveHTTPFilter("envoy.filters.http.ext_authz"); n != 0 {
		t.Errorf("second RemoveHTTPFilter = %d; want 0", n)
	}
}

func TestSetHTTPFilterOption(t *testing.T) {
	cfg, err := Load("../../deploy/envoy/envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(cfg.JSON(), []byte(`"encode_raw_headers": true`)) {
		t.Fatal("the shipped config does not set encode_raw_headers: the test tests nothing")
	}
	if n := cfg.SetHTTPFilterOption("envoy.filters.http.ext_authz", "encode_raw_headers", false); n != 1 {
		t.Fatalf("SetHTTPFilterOption(ext_authz) = %d; want 1", n)
	}
	js := cfg.JSON()
	if !bytes.Contains(js, []byte(`"encode_raw_headers": false`)) || bytes.Contains(js, []byte(`"encode_raw_headers": true`)) {
		t.Error("encode_raw_headers was not set to false")
	}
	if n := cfg.SetHTTPFilterOption("envoy.filters.http.no_such_filter", "x", 1); n != 0 {
		t.Errorf("SetHTTPFilterOption on a missing filter = %d; want 0", n)
	}
}
