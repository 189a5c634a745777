package main

import (
	"fmt"
	"os"
)

// checkSecretFiles looks at the files that hold secrets (the key file, the
// API token, the TLS private key): one that anyone may read or write (the
// "other" permission bits) is reported, and refused with --strict-perms.
// Group access is allowed: a non-root container reads a Kubernetes Secret
// through its fsGroup (defaultMode 0440), and the group is then the pod's
// own. A Secret volume shows 0644 unless defaultMode says otherwise.
func (a *app) checkSecretFiles() error {
	for _, f := range []struct{ flag, path string }{
		{"--key-file", a.opts.keyFile},
		{"--api-token-file", a.opts.apiTokenFile},
		{"--tls-key-file", a.opts.tlsKeyFile},
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
			if a.opts.strictPerms {
				return fmt.Errorf("%s (refused with --strict-perms)", msg)
			}
			a.log.Warn().Str("file", f.path).Str("flag", f.flag).Str("mode", fmt.Sprintf("%04o", perm)).Msg(msg)
		}
	}
	return nil
}
