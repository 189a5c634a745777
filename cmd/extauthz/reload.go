package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// watchedFile is one file of a reloadable set: the flag that names it in
// errors, and its path ("" for an optional file that is not configured,
// read as nil).
type watchedFile struct {
	flag, path string
}

// reloadable is the one "reload a file, keep the last good state" rule, used
// for the key file and for the TLS files. It holds the state parsed from a
// set of files. reload re-reads them all; when a file cannot be read or its
// content does not parse, the current state stays. A bad content is parsed
// (and reported) once, not on every poll, until it changes or a reload is
// forced. Errors name the files, never their content.
type reloadable[T any] struct {
	files []watchedFile
	parse func(contents [][]byte) (T, error) // contents in the order of files

	mu    sync.Mutex // serialises reloads
	sum   [sha256.Size]byte
	state atomic.Pointer[T]
}

// loadReloadable reads and parses the files once: without a first good
// state there is nothing to keep, so any error is returned.
func loadReloadable[T any](parse func([][]byte) (T, error), files ...watchedFile) (*reloadable[T], error) {
	r := &reloadable[T]{files: files, parse: parse}
	if _, _, err := r.reload(true); err != nil {
		return nil, err
	}
	return r, nil
}

// current returns the last good state. It is safe to call during a reload.
func (r *reloadable[T]) current() T { return *r.state.Load() }

// reload re-reads the files; unless force, it parses them only when their
// content changed since the last read. It returns the new state and true
// when it replaced the current one.
func (r *reloadable[T]) reload(force bool) (T, bool, error) {
	var zero T
	r.mu.Lock()
	defer r.mu.Unlock()
	contents := make([][]byte, len(r.files))
	h := sha256.New()
	for i, f := range r.files {
		if f.path != "" {
			b, err := os.ReadFile(f.path)
			if err != nil {
				return zero, false, fmt.Errorf("%s: %w", f.flag, err)
			}
			contents[i] = b
		}
		// Length-prefixed, so that moving bytes from one file to the next
		// is a change.
		fmt.Fprintf(h, "%d:", len(contents[i]))
		h.Write(contents[i])
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if !force && sum == r.sum {
		return zero, false, nil
	}
	r.sum = sum
	v, err := r.parse(contents)
	if err != nil {
		return zero, false, err
	}
	r.state.Store(&v)
	return v, true, nil
}
