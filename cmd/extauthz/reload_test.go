package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReloadable: the last good state stays through an unreadable or
// unparsable file; a bad content is parsed once until it changes or a
// reload is forced; a change is picked up; errors name the flag, never the
// content.
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
	step("changed", false, true, false, "two", 3)
	write("bad-SECRET")
	step("bad", false, false, true, "two", 4)
	step("bad again, unchanged", false, false, false, "two", 4)
	step("bad again, forced", true, false, true, "two", 5)
	os.Remove(name)
	step("unreadable", false, false, true, "two", 5)
	write("three")
	step("fixed", false, true, false, "three", 6)

	if _, err := loadReloadable(parse, watchedFile{"--f", filepath.Join(dir, "none")}); err == nil || !strings.HasPrefix(err.Error(), "--f: ") {
		t.Errorf("load of a missing file = %v; want an error naming --f", err)
	}
}
