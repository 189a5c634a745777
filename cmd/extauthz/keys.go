package main

import (
	"fmt"
	"os"

	"github.com/extauthz/extauthz/capability"
)

// loadKeyRing loads the ring from keyFile if non-empty, else from EXTAUTHZ_KEYS
// (getenv). Every error wraps capability.ErrConfig, names the file and line or
// the key's position, and never contains a key.
func loadKeyRing(keyFile string, getenv func(string) string) (*capability.KeyRing, error) {
	if keyFile != "" {
		data, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: key file: %v", capability.ErrConfig, err)
		}
		return capability.ParseKeyFile(keyFile, data)
	}
	keys := getenv("EXTAUTHZ_KEYS")
	if keys == "" {
		return nil, fmt.Errorf("%w: no key configured: pass --key-file (or set EXTAUTHZ_KEY_FILE or EXTAUTHZ_KEYS); 'extauthz keygen' makes a key", capability.ErrConfig)
	}
	r, err := capability.ParseKeyList(keys)
	if err != nil {
		return nil, fmt.Errorf("EXTAUTHZ_KEYS: %w", err)
	}
	return r, nil
}
