package main

import (
	"errors"
	"fmt"

	"github.com/extauthz/extauthz/capability"
)

// openKeyFile loads a key file (one base64 key per line, the first seals)
// as a reloadable ring. Errors name the file and line, never a key.
func openKeyFile(name string) (*reloadable[*capability.KeyRing], error) {
	return loadReloadable(func(c [][]byte) (*capability.KeyRing, error) {
		return capability.ParseKeyFile(name, c[0])
	}, watchedFile{"key file", name})
}

// loadKeyRing loads the ring from keyFile if non-empty, else from EXTAUTHZ_KEYS
// (getenv). Every error wraps capability.ErrConfig, names the file and line or
// the key's position, and never contains a key.
func loadKeyRing(keyFile string, getenv func(string) string) (*capability.KeyRing, error) {
	if keyFile != "" {
		f, err := openKeyFile(keyFile)
		switch {
		case errors.Is(err, capability.ErrConfig):
			return nil, err
		case err != nil:
			return nil, fmt.Errorf("%w: %v", capability.ErrConfig, err)
		}
		return f.current(), nil
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
