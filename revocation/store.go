package revocation

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
)

// Store is where revocations are made durable and shared. Every Store
// serves decisions from a Set kept in memory.
type Store interface {
	// Set is the in-memory set decisions consult.
	Set() *Set
	// Revoke makes e durable, adds it to the set, and only then returns.
	Revoke(e Entry) error
	// Close releases the store.
	Close() error
}

// MemoryStore keeps revocations in memory only (tests, and a server whose
// operator accepts that a restart forgets them).
type MemoryStore struct{ set *Set }

// NewMemoryStore returns an empty in-memory store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{set: NewSet()} }

// Set implements Store.
func (m *MemoryStore) Set() *Set { return m.set }

// Revoke implements Store.
func (m *MemoryStore) Revoke(e Entry) error {
	m.set.Add(e)
	return nil
}

// Close implements Store.
func (m *MemoryStore) Close() error { return nil }

// FileStore keeps revocations in memory and in a local file: one JSON entry
// per line, appended and fsynced before Revoke returns. Opening it reads the
// file (a torn last line, from a crash mid-append, is ignored: that
// revocation was never acknowledged), drops expired entries and rewrites it
// atomically (temporary file, fsync, rename, fsync of the directory).
type FileStore struct {
	set  *Set
	path string
	now  func() time.Time

	mu sync.Mutex // serialises appends and compactions
	f  *os.File
}

// maxFileLine bounds one line of the file.
const maxFileLine = 16 << 10

// OpenFileStore loads path (a missing file is an empty set) and opens it for
// appending. Errors name the file, never its content.
func OpenFileStore(path string, now func() time.Time) (*FileStore, error) {
	if now == nil {
		now = time.Now
	}
	s := &FileStore{set: NewSet(), path: path, now: now}
	entries, err := readFile(path)
	if err != nil {
		return nil, err
	}
	s.set.Add(entries...)
	s.set.Prune(now().UnixMilli())
	if err := s.compact(); err != nil {
		return nil, err
	}
	return s, nil
}

func readFile(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("revocation file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("revocation file %s: %w", path, err)
	}
	var entries []Entry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxFileLine)
	line := 0
	for sc.Scan() {
		line++
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || !e.valid() {
			// Only the last line may be torn (a crash during an append that
			// was never acknowledged); anything else is corruption.
			if line == bytes.Count(data, []byte("\n"))+1 {
				break
			}
			return nil, fmt.Errorf("revocation file %s: line %d is not a revocation entry", path, line)
		}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("revocation file %s: %w", path, err)
	}
	return entries, nil
}

// Set implements Store.
func (s *FileStore) Set() *Set { return s.set }

// Revoke implements Store: append, fsync, then add to the set.
func (s *FileStore) Revoke(e Entry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errors.New("revocation file: closed")
	}
	if _, err := s.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("revocation file %s: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("revocation file %s: %w", s.path, err)
	}
	s.set.Add(e)
	return nil
}

// Compact drops expired entries from the set and, when there were any,
// from the file.
func (s *FileStore) Compact() error {
	if s.set.Prune(s.now().UnixMilli()) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.compact()
}

// compact rewrites the file from the set atomically and reopens it for
// appending. The caller holds s.mu (or owns s alone).
func (s *FileStore) compact() error {
	var buf bytes.Buffer
	for _, e := range s.set.Entries() {
		line, err := json.Marshal(e)
		if err != nil {
			return err
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	if err := writeAtomic(s.path, buf.Bytes()); err != nil {
		return fmt.Errorf("revocation file %s: %w", s.path, err)
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("revocation file: %w", err)
	}
	if s.f != nil {
		s.f.Close()
	}
	s.f = f
	return nil
}

// writeAtomic replaces path with data: a reader (or a crash) sees the old
// content or the new, never a mix.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Close implements Store.
func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// readSmallFile reads a configuration file of at most 1 MiB.
func readSmallFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err == nil && len(data) > 1<<20 {
		err = fmt.Errorf("%s is larger than 1 MiB", name)
	}
	return data, err
}
