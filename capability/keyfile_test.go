package capability

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteNewKeyFile: a new file, mode 0600, holding one key the key file
// parser reads; an existing file is refused and left as it was.
func TestWriteNewKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	if err := WriteNewKeyFile(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v; want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if r, err := ParseKeyFile(path, data); err != nil || r.Len() != 1 {
		t.Fatalf("the file does not hold one key: %v", err)
	}
	if err := WriteNewKeyFile(path); !errors.Is(err, os.ErrExist) {
		t.Fatalf("a second write = %v; want ErrExist", err)
	}
	if again, _ := os.ReadFile(path); string(again) != string(data) {
		t.Fatal("the existing key file was changed")
	}
}
