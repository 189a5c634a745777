package capability

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsNoPolicy keeps the arrow between the packages pointing one
// way: capability is the format, and the route policy is applied by its
// user (authz), so no file here, tests included, imports policy or a
// package that sits above capability.
func TestImportsNoPolicy(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files: %v", err)
	}
	for _, name := range files {
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, above := range []string{"policy", "authz", "revocation", "cmd"} {
				if p := "github.com/extauthz/extauthz/" + above; path == p || strings.HasPrefix(path, p+"/") {
					t.Errorf("%s imports %s", name, path)
				}
			}
		}
	}
}
