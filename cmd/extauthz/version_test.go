package main

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	info := func(main string, settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: main}, Settings: settings}, true
		}
	}
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "0123456789abcdef0123"}
	for _, c := range []struct {
		name string
		info func() (*debug.BuildInfo, bool)
		want string
	}{
		{"go install @version", info("v0.3.0"), "extauthz v0.3.0 go1.26.8"},
		{"build in a checkout", info("(devel)", rev), "extauthz dev (0123456789ab) go1.26.8"},
		{"modified checkout", info("(devel)", rev, debug.BuildSetting{Key: "vcs.modified", Value: "true"}), "extauthz dev (0123456789ab, modified) go1.26.8"},
		{"commit time", info("(devel)", rev, debug.BuildSetting{Key: "vcs.time", Value: "2026-11-28T22:00:00Z"}), "extauthz dev (0123456789ab 2026-11-28T22:00:00Z) go1.26.8"},
		{"no build info", func() (*debug.BuildInfo, bool) { return nil, false }, "extauthz dev go"},
	} {
		if got := versionLine(c.info); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: %q; want %q", c.name, got, c.want)
		}
	}

	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		var out, errb bytes.Buffer
		if code := run(args, nil, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "extauthz ") {
			t.Errorf("%v = %d, %q", args, code, out.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"version", "-h"}, nil, &out, &errb); code != 0 || errb.Len() != 0 || !strings.Contains(out.String(), "usage: extauthz version") {
		t.Errorf("version -h = %d, stdout %q, stderr %q; want the usage", code, out.String(), errb.String())
	}
}
