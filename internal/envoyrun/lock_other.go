//go:build !unix

package envoyrun

// lockFile does not lock where there is no flock: two Installs of one
// directory at once are the caller's to avoid.
func lockFile(string) (func(), error) { return func() {}, nil }
