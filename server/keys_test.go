package server

import (
	"encoding/base64"
	"testing"
)

func TestLoadKeyRing(t *testing.T) {
	file, k1 := newKeyFile(t)
	keys := base64.StdEncoding.EncodeToString(k1) + "," + base64.StdEncoding.EncodeToString(newKey(t))
	r, err := LoadKeyRing(file, keys)
	if err != nil || r.Len() != 1 {
		t.Fatalf("key file wins: %v, %v", r, err)
	}
	r, err = LoadKeyRing("", keys)
	if err != nil || r.Len() != 2 {
		t.Fatalf("EXTAUTHZ_KEYS: %v, %v", r, err)
	}
	if _, err := LoadKeyRing("", ""); err == nil {
		t.Fatal("no key: want an error")
	}
}
