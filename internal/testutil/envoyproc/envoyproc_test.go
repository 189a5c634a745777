package envoyproc

import (
	"bytes"
	"testing"
)

func TestRemoveHTTPFilter(t *testing.T) {
	cfg, err := Load("../../../deploy/envoy/envoy.yaml")
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
