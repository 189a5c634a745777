package server

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// watchedFile is one file of a reloadable set: the flag that names it in
// errors, and its path ("" for an optional file that is not configured,
// read as nil).
type watchedFile struct {
	flag, path string
}

// reloadable is the one "reload a file, keep the last good state" rule, used
// for every secret file (secrets.go). It holds the state parsed from a
// set of files. reload re-reads them all; when a file cannot be read or its
// content does not parse, the current state stays. Errors name the files,
// never their content.
//
// A poll applies a change only once it is stable: the same content on two
// reads a poll apart. A file rewritten in place (`{ echo B; sleep 6; echo A;
// } > keys`) is read half-written at some poll, and applying that would
// drop keys still in use. A file replaced by rename (`mv`, a Kubernetes
// Secret update) cannot be half-written, so a changed file identity (inode)
// applies at once, and so does a forced reload (SIGHUP).
//
// A failure is reported once, not on every poll, until the files change,
// the failure changes, or a reload is forced.
type reloadable[T any] struct {
	files []watchedFile
	parse func(contents [][]byte) (T, error) // contents in the order of files

	mu      sync.Mutex        // serialises reloads
	sum     [sha256.Size]byte // of the contents last applied or refused
	ids     []fileID          // of the files last applied or refused
	pending [sha256.Size]byte // a changed content seen once, waiting to be seen again
	lastErr string            // the read failure last reported
	state   atomic.Pointer[T]
}

// fileID tells a file replaced by rename from one rewritten in place.
type fileID struct{ dev, ino uint64 }

func identify(fi os.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{uint64(st.Dev), st.Ino}
	}
	return fileID{}
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

// reload re-reads the files. Unless force, it parses them only when their
// content changed since the last read and is stable (see reloadable). It
// returns the new state and true when it replaced the current one, and an
// error only when there is a failure to report.
func (r *reloadable[T]) reload(force bool) (T, bool, error) {
	var zero T
	r.mu.Lock()
	defer r.mu.Unlock()
	contents := make([][]byte, len(r.files))
	ids := make([]fileID, len(r.files))
	h := sha256.New()
	for i, f := range r.files {
		if f.path != "" {
			b, id, err := readFile(f.path)
			if err != nil {
				err = fmt.Errorf("%s: %w", f.flag, err)
				if !force && err.Error() == r.lastErr {
					return zero, false, nil // reported already
				}
				r.lastErr = err.Error()
				return zero, false, err
			}
			contents[i], ids[i] = b, id
		}
		// Length-prefixed, so that moving bytes from one file to the next
		// is a change.
		fmt.Fprintf(h, "%d:", len(contents[i]))
		h.Write(contents[i])
	}
	r.lastErr = ""
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if !force {
		if sum == r.sum {
			return zero, false, nil
		}
		if !slices.Equal(ids, r.ids) {
			// Replaced by rename: complete, apply now.
		} else if sum != r.pending {
			r.pending = sum // changed in place: wait for a second look
			return zero, false, nil
		}
	}
	r.sum, r.ids, r.pending = sum, ids, [sha256.Size]byte{}
	v, err := r.parse(contents)
	if err != nil {
		return zero, false, err
	}
	r.state.Store(&v)
	return v, true, nil
}

// readFile reads a file and identifies the file it read (the one open, not
// whatever the path names a moment later).
func readFile(name string) ([]byte, fileID, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fileID{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileID{}, err
	}
	if fi.IsDir() {
		b, err := readDirFiles(name)
		return b, identify(fi), err
	}
	b, err := io.ReadAll(f)
	return b, identify(fi), err
}

// readDirFiles reads a directory of YAML files (the profiles, mounted from a
// ConfigMap) as one content: each *.yaml or *.yml file that is not hidden,
// in name order, with its name. A change in any of them changes the
// content; the directory itself keeps its identity, so a change applies on
// the second look, as an in-place rewrite does.
func readDirFiles(dir string) ([]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, ".") || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		out = fmt.Appendf(out, "%s\x00%d\x00", n, len(b))
		out = append(out, b...)
	}
	return out, nil
}
