package capability

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// KeySize is the length of an AES-256 key.
const KeySize = 32

// ivSize and tagSize are fixed by the kka1 format.
const (
	ivSize  = 16
	tagSize = 16
)

// KeyRing holds the keys a Codec uses. The first key seals; every key is
// tried to open, which is how keys rotate. A KeyRing is immutable and keeps no
// copy of the raw keys, only their ciphers and fingerprints.
type KeyRing struct {
	aeads        []cipher.AEAD
	fingerprints []string
}

// NewKeyRing builds a ring from raw keys, each exactly 32 bytes. The first key
// seals. An empty ring, a key of the wrong length or a repeated key is an
// error wrapping ErrConfig that names the key by position ("key #N").
func NewKeyRing(keys ...[]byte) (*KeyRing, error) {
	return newKeyRing(keys, func(i int) string { return "key #" + strconv.Itoa(i+1) })
}

// newKeyRing names key i with where(i) in errors.
func newKeyRing(keys [][]byte, where func(i int) string) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no key configured", ErrConfig)
	}
	r := &KeyRing{
		aeads:        make([]cipher.AEAD, 0, len(keys)),
		fingerprints: make([]string, 0, len(keys)),
	}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("%w: %s: key is %d bytes, want %d", ErrConfig, where(i), len(k), KeySize)
		}
		for j := range i {
			if bytes.Equal(k, keys[j]) {
				return nil, fmt.Errorf("%w: %s: same key as %s", ErrConfig, where(i), where(j))
			}
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: unusable key", ErrConfig, where(i))
		}
		aead, err := cipher.NewGCMWithNonceSize(block, ivSize)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: unusable key", ErrConfig, where(i))
		}
		r.aeads = append(r.aeads, aead)
		r.fingerprints = append(r.fingerprints, Fingerprint(k))
	}
	return r, nil
}

// Fingerprint is the public name of a key: the first 8 hex characters of its
// SHA-256. It is safe to log.
func Fingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// ParseKeyFile parses a key file: one standard-base64 key per line, '#'
// comments and blank lines ignored, surrounding whitespace trimmed. name is
// the file's name for errors, which read "name:line: …" and never contain
// the key.
func ParseKeyFile(name string, data []byte) (*KeyRing, error) {
	var keys [][]byte
	var lines []int
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		where := name + ":" + strconv.Itoa(i+1)
		k, err := decodeKey(line)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrConfig, where, err)
		}
		keys = append(keys, k)
		lines = append(lines, i+1)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: %s: no key in file", ErrConfig, name)
	}
	return newKeyRing(keys, func(i int) string { return name + ":" + strconv.Itoa(lines[i]) })
}

// ParseKeyList parses EXTAUTHZ_KEYS: standard-base64 keys separated by commas,
// the first sealing. Errors name the key by position ("key #N").
func ParseKeyList(s string) (*KeyRing, error) {
	var keys [][]byte
	if strings.TrimSpace(s) != "" {
		for i, part := range strings.Split(s, ",") {
			k, err := decodeKey(strings.TrimSpace(part))
			if err != nil {
				return nil, fmt.Errorf("%w: key #%d: %v", ErrConfig, i+1, err)
			}
			keys = append(keys, k)
		}
	}
	return NewKeyRing(keys...)
}

// decodeKey decodes one base64 key. Its error never contains the input.
func decodeKey(s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("empty key")
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not standard base64 (a key is 32 random bytes in standard base64, see 'extauthz keygen')")
	}
	if len(k) != KeySize {
		return nil, fmt.Errorf("key is %d bytes, want %d", len(k), KeySize)
	}
	return k, nil
}

// Len returns the number of keys.
func (r *KeyRing) Len() int {
	if r == nil {
		return 0
	}
	return len(r.aeads)
}

// Fingerprints returns each key's fingerprint, the sealing key first.
func (r *KeyRing) Fingerprints() []string {
	if r == nil {
		return nil
	}
	return append([]string(nil), r.fingerprints...)
}

// String names the keys by fingerprint only.
func (r *KeyRing) String() string {
	if r == nil {
		return "capability.KeyRing(nil)"
	}
	return "capability.KeyRing" + fmt.Sprint(r.fingerprints)
}

// Format makes every fmt verb use String, so no verb prints cipher state.
func (r *KeyRing) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(r.String())) }
