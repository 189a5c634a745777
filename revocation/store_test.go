package revocation

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFileStoreSurvivesReopen: what Revoke acknowledged is there after a
// reopen; a torn last line (a crash mid-append, never acknowledged) is
// ignored; the capability string is never written.
func TestFileStoreSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revocations")
	now := func() time.Time { return testNow }
	tok, c := sealed(t, testNow)
	revokeInFile(t, path, now, mustEntry(t, KindCapability, tok, testNow), mustEntry(t, KindUser, "u-9", testNow))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"kind":"userId","value":"torn`)
	f.Close()

	s := reopenFile(t, path, now, 2)
	if err := s.Set().Check(subjectOf(tok, c)); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked capability after reopen: %v", err)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), tok[5:30]) || strings.Contains(string(data), "torn") {
		t.Fatalf("file holds a capability or the torn line:\n%s", data)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v; want 0600", fi.Mode().Perm())
	}
}

// revokeInFile opens the file store at path, revokes entries and closes it.
func revokeInFile(t *testing.T, path string, now func() time.Time, entries ...Entry) {
	t.Helper()
	s, err := OpenFileStore(path, now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, e := range entries {
		if err := s.Revoke(e); err != nil {
			t.Fatal(err)
		}
	}
}

// reopenFile opens the file store at path again (closed when the test
// ends) and checks that it loaded want entries.
func reopenFile(t *testing.T, path string, now func() time.Time, want int) *FileStore {
	t.Helper()
	s, err := OpenFileStore(path, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if n := s.Set().Len(); n != want {
		t.Fatalf("reopened set holds %d entries; want %d", n, want)
	}
	return s
}

// TestFileStoreCorrupt: a bad line that is not the last is refused, naming
// the file and the line, never the content.
func TestFileStoreCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revocations")
	os.WriteFile(path, []byte("secret-garbage\n{\"kind\":\"userId\",\"value\":\"u\",\"revokedAt\":1,\"expiresAt\":2}\n"), 0o600)
	_, err := OpenFileStore(path, nil)
	if err == nil || !strings.Contains(err.Error(), "line 1") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("OpenFileStore = %v; want an error naming line 1 and not the content", err)
	}
}

// TestFileStoreCompacts: expired entries leave the set and the file.
func TestFileStoreCompacts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revocations")
	clock := testNow
	s, err := OpenFileStore(path, func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Revoke(mustEntry(t, KindUser, "old", testNow))
	s.Revoke(mustEntry(t, KindUser, "new", testNow.Add(time.Hour)))
	clock = testNow.Add(EntryLifetime)
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if s.Set().Len() != 1 || strings.Contains(string(data), `"old"`) || !strings.Contains(string(data), `"new"`) {
		t.Fatalf("after compaction: %d entries, file:\n%s", s.Set().Len(), data)
	}
	// Appends go on after a compaction.
	s.Revoke(mustEntry(t, KindUser, "newer", clock))
	s.Close()
	s2, err := OpenFileStore(path, func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Set().Len() != 2 {
		t.Fatalf("reopened after compaction: %d entries; want 2", s2.Set().Len())
	}
}

// FuzzReadFile: any file content loads (entries that are valid) or is
// refused with an error that quotes nothing of it; never a panic.
func FuzzReadFile(f *testing.F) {
	f.Add([]byte(`{"kind":"userId","value":"u","revokedAt":1,"expiresAt":2}` + "\n"))
	f.Add([]byte(`{"kind":"capability","value":"00112233445566778899aabbccddeeff","revokedAt":1,"expiresAt":2}` + "\n{\"kind\""))
	f.Add([]byte("\n\n{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "revocations")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		entries, err := readFile(path)
		if err != nil {
			if len(data) >= 8 && strings.Contains(err.Error(), string(data)) {
				t.Fatalf("error quotes the content: %v", err)
			}
			return
		}
		for _, e := range entries {
			if !e.valid() {
				t.Fatalf("loaded an invalid entry %+v", e)
			}
		}
	})
}
