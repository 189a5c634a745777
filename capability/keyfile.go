package capability

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
)

// NewKey returns a fresh random AES-256 key.
func NewKey() []byte {
	key := make([]byte, KeySize)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (it aborts instead).
	return key
}

// KeyLine is key as a line of a key file (and an element of EXTAUTHZ_KEYS):
// standard base64, then a newline.
func KeyLine(key []byte) string { return base64.StdEncoding.EncodeToString(key) + "\n" }

// WriteNewKeyFile writes a fresh key to path, which must not exist: a new
// file readable and writable by its owner only (0600). An existing file is
// never overwritten (a key file's other keys may still be in use); the
// error says to add the new key by hand.
func WriteNewKeyFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%w (an existing key file is never overwritten: add the new key to it by hand)", err)
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteString(KeyLine(NewKey())); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
