package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReloadable: the last good state stays through an unreadable or
// unparsable file; a failure is reported once until it changes or a reload
// is forced; a change made in place is applied once it is stable (a torn
// write is not), one made by rename or with a forced reload at once; errors
// name the flag, never the content.
func TestReloadable(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	write := func(s string) {
		if err := os.WriteFile(name, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	parses := 0
	parse := func(c [][]byte) (string, error) {
		parses++
		if c[1] != nil {
			t.Errorf("optional file not configured: content %q; want nil", c[1])
		}
		if strings.HasPrefix(string(c[0]), "bad") {
			return "", errors.New("does not parse")
		}
		return string(c[0]), nil
	}
	write("one")
	r, err := loadReloadable(parse, watchedFile{"--f", name}, watchedFile{"--opt", ""})
	if err != nil || r.current() != "one" {
		t.Fatalf("load = %v, %q; want one", err, r.current())
	}
	step := func(what string, force bool, wantChanged, wantErr bool, wantCurrent string, wantParses int) {
		t.Helper()
		_, changed, err := r.reload(force)
		if changed != wantChanged || (err != nil) != wantErr || r.current() != wantCurrent || parses != wantParses {
			t.Errorf("%s: changed %v, err %v, current %q, %d parses; want %v, error %v, %q, %d",
				what, changed, err, r.current(), parses, wantChanged, wantErr, wantCurrent, wantParses)
		}
		if err != nil && (!strings.HasPrefix(err.Error(), "--f") && err.Error() != "does not parse" || strings.Contains(err.Error(), "bad-SECRET")) {
			t.Errorf("%s: error %q", what, err)
		}
	}
	step("unchanged", false, false, false, "one", 1)
	step("forced", true, true, false, "one", 2)
	write("two")
	step("changed in place, first look", false, false, false, "one", 2)
	step("changed in place, stable", false, true, false, "two", 3)
	write("bad-SECRET")
	step("bad, first look", false, false, false, "two", 3)
	step("bad, stable", false, false, true, "two", 4)
	step("bad again, unchanged", false, false, false, "two", 4)
	step("bad again, forced", true, false, true, "two", 5)
	kept := 0
	replace := func(s string) {
		// Keep the replaced file's inode allocated (as a Secret's old
		// version is), so that the filesystem cannot hand it out again.
		kept++
		_ = os.Link(name, fmt.Sprintf("%s.old%d", name, kept))
		tmp := name + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, name); err != nil {
			t.Fatal(err)
		}
	}
	replace("three")
	step("replaced by rename: at once", false, true, false, "three", 6)

	// A torn in-place write: the first poll sees half of the new file, the
	// next the whole of it; only a content seen twice is applied.
	write("B")
	step("torn write, half", false, false, false, "three", 6)
	write("B\nA")
	step("torn write, whole, first look", false, false, false, "three", 6)
	step("torn write, whole, stable", false, true, false, "B\nA", 7)
	write("C")
	step("in place, then SIGHUP: at once", true, true, false, "C", 8)
	replace("D")
	replace("D")
	step("replaced twice with the same content", false, true, false, "D", 9)
	os.Remove(name)
	step("unreadable", false, false, true, "D", 9)
	step("unreadable again: reported once", false, false, false, "D", 9)
	step("unreadable, forced", true, false, true, "D", 9)
	write("E")
	// The new file may reuse the removed one's inode (then it waits a poll)
	// or not (then it applies at once): after two polls it is in.
	r.reload(false)
	r.reload(false)
	if r.current() != "E" || parses != 10 {
		t.Errorf("back: current %q after %d parses; want E after 10", r.current(), parses)
	}

	if _, err := loadReloadable(parse, watchedFile{"--f", filepath.Join(dir, "none")}); err == nil || !strings.HasPrefix(err.Error(), "--f: ") {
		t.Errorf("load of a missing file = %v; want an error naming --f", err)
	}
}
