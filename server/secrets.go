package server

import (
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/rs/zerolog"
)

// Secret files. Every file that holds a secret is loaded through a
// reloadable (reload.go) and reloaded the same way: polled every
// --key-reload-interval, at once on a reload signal (SIGHUP). A bad edit
// (unreadable, empty, not parsable) keeps the last good value and is
// logged, naming the file, never its content:
//
//   - the key file: the codec's key ring;
//   - the TLS certificate, key and client CA: the next handshake's config;
//   - the API token: the capability API's handler (the old token is refused
//     once the new one is in force);
//   - the Redis password and CA bundle: the revocation store's next
//     connection (established ones stay authenticated).

// secret is one set of secret files the server reloads.
type secret interface {
	reload(force bool, why string)
}

// secretFiles logs and applies the reloads of one reloadable.
type secretFiles[T any] struct {
	*reloadable[T]
	log              zerolog.Logger
	reloaded, failed string                  // the log messages
	apply            func(T, *zerolog.Event) // nil: current() is all there is
	count            func(ok bool)           // nil: not counted
}

// reload re-reads the files (force: even when unchanged) and applies a new
// value; a bad set keeps the current value.
func (f *secretFiles[T]) reload(force bool, why string) {
	v, changed, err := f.reloadable.reload(force)
	switch {
	case err != nil:
		f.counted(false)
		f.log.Error().Str("trigger", why).Err(err).Msg(f.failed)
	case changed:
		ev := f.log.Info().Str("trigger", why)
		if f.apply != nil {
			f.apply(v, ev)
		}
		f.counted(true)
		ev.Msg(f.reloaded)
	}
}

func (f *secretFiles[T]) counted(ok bool) {
	if f.count != nil {
		f.count(ok)
	}
}

// watch adds a loaded reloadable to the server's secrets and returns it.
func watch[T any](s *Server, r *reloadable[T], reloaded, failed string) *secretFiles[T] {
	f := &secretFiles[T]{reloadable: r, log: s.log, reloaded: reloaded, failed: failed}
	s.secrets = append(s.secrets, f)
	return f
}

// SecretText is the content of a file holding one secret (a token, a
// password): white space around it trimmed, never empty. Errors name the
// file, never the content.
func SecretText(name string, data []byte) (string, error) {
	v := strings.TrimSpace(string(data))
	if v == "" {
		return "", fmt.Errorf("%s is empty", name)
	}
	return v, nil
}

// ReadSecretFile reads a file holding one secret, as the server reads its
// API token and Redis password.
func ReadSecretFile(name string) (string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	return SecretText(name, data)
}

// loadSecretText loads a reloadable secret file for flag ("" is no file:
// nil).
func loadSecretText(flag, name string) (*reloadable[string], error) {
	if name == "" {
		return nil, nil
	}
	return loadReloadable(func(c [][]byte) (string, error) {
		v, err := SecretText(name, c[0])
		if err != nil {
			return "", fmt.Errorf("%s: %w", flag, err)
		}
		return v, nil
	}, watchedFile{flag, name})
}

// loadCAFile loads a reloadable PEM CA bundle for flag ("" is no file: nil).
func loadCAFile(flag, name string) (*reloadable[*x509.CertPool], error) {
	if name == "" {
		return nil, nil
	}
	return loadReloadable(func(c [][]byte) (*x509.CertPool, error) {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(c[0]) {
			return nil, fmt.Errorf("%s %s: no PEM certificate in it", flag, name)
		}
		return pool, nil
	}, watchedFile{flag, name})
}

// checkSecretFiles looks at the files that hold secrets (the key file, the
// API token, the TLS private key): one that anyone may read or write (the
// "other" permission bits) is reported, and refused with --strict-perms.
// Group access is allowed: a non-root container reads a Kubernetes Secret
// through its fsGroup (defaultMode 0440), and the group is then the pod's
// own. A Secret volume shows 0644 unless defaultMode says otherwise.
func (s *Server) checkSecretFiles() error {
	for _, f := range []struct{ flag, path string }{
		{"--key-file", s.cfg.KeyFile},
		{"--api-token-file", s.cfg.APITokenFile},
		{"--tls-key-file", s.cfg.TLS.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		fi, err := os.Stat(f.path)
		if err != nil {
			continue // reading it reports the error
		}
		if perm := fi.Mode().Perm(); perm&0o007 != 0 {
			msg := fmt.Sprintf("%s %s is open to other users (mode %04o): it holds a secret; chmod 600 (or defaultMode: 0440 with an fsGroup on a Kubernetes Secret volume)", f.flag, f.path, perm)
			if s.cfg.StrictPerms {
				return fmt.Errorf("%s (refused with --strict-perms)", msg)
			}
			s.log.Warn().Str("file", f.path).Str("flag", f.flag).Str("mode", fmt.Sprintf("%04o", perm)).Msg(msg)
		}
	}
	return nil
}
