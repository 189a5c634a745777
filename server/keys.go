package server

import (
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/capability"
)

// openKeyFile loads a key file (one base64 key per line, the first seals)
// as a reloadable ring. Errors name the file and line, never a key.
func openKeyFile(name string) (*reloadable[*capability.KeyRing], error) {
	return loadReloadable(func(c [][]byte) (*capability.KeyRing, error) {
		return capability.ParseKeyFile(name, c[0])
	}, watchedFile{"key file", name})
}

// errNoKey is the refusal to run without a key.
const errNoKey = "no key configured: pass --key-file (or set EXTAUTHZ_KEY_FILE or EXTAUTHZ_KEYS)"

// LoadKeyRing loads the ring once, from keyFile if non-empty, else from
// keys (EXTAUTHZ_KEYS: comma-separated base64 keys). Every error wraps
// capability.ErrConfig, names the file and line or the key's position, and
// never contains a key.
func LoadKeyRing(keyFile, keys string) (*capability.KeyRing, error) {
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
	if keys == "" {
		return nil, fmt.Errorf("%w: %s; 'extauthz keygen' makes a key", capability.ErrConfig, errNoKey)
	}
	r, err := capability.ParseKeyList(keys)
	if err != nil {
		return nil, fmt.Errorf("EXTAUTHZ_KEYS: %w", err)
	}
	return r, nil
}

// initialKeys loads the key ring at start-up: the key file (watched for
// changes), else EXTAUTHZ_KEYS. Without either the server refuses to start,
// unless --dev asks for an ephemeral development key.
func (s *Server) initialKeys() (*capability.KeyRing, error) {
	c := &s.cfg
	switch {
	case c.KeyFile != "":
		r, err := openKeyFile(c.KeyFile)
		if err != nil {
			return nil, err
		}
		keys := watch(s, r, "keys reloaded", "key reload failed; keeping the current keys")
		keys.apply = func(ring *capability.KeyRing, ev *zerolog.Event) {
			s.codec.SetKeyRing(ring)
			ev.Strs("key_fingerprints", ring.Fingerprints())
		}
		keys.count = func(ok bool) { s.metrics.KeyReload(ok) }
		return r.current(), nil
	case c.Keys != "":
		return LoadKeyRing("", c.Keys)
	case c.Dev:
		return devKeyRing()
	}
	return nil, errors.New(errNoKey + ", or use --dev for an ephemeral development key")
}

// devKeyRing is --dev's ephemeral key.
func devKeyRing() (*capability.KeyRing, error) {
	return capability.NewKeyRing(capability.NewKey())
}
