package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/extauthz/extauthz/authz"
	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/profiles"
	"github.com/extauthz/extauthz/server"
)

// errUsage marks an error in how issue was called (exit status 2).
var errUsage = errors.New("usage")

// usageError is an error of the command line, exit status 2.
func usageError(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
}

// fromFileOrStdin is the rule of --credential: SLOT=@FILE or SLOT=@-. Its
// errors never quote the argument, which may be a secret typed by mistake.
func fromFileOrStdin(arg string) error {
	slot, src, ok := strings.Cut(arg, "=")
	switch {
	case !ok || slot == "":
		return errors.New("want SLOT=@FILE or SLOT=@-")
	case !strings.HasPrefix(src, "@") || src == "@":
		return fmt.Errorf("%s: a secret is read from a file (%s=@FILE) or stdin (%s=@-), never from the command line, where ps and the shell history show it", slot, slot, slot)
	}
	return nil
}

// namedValue is the rule of --var and --subject: NAME=VALUE.
func namedValue(arg string) error {
	if name, _, ok := strings.Cut(arg, "="); !ok || name == "" {
		return errors.New("want NAME=VALUE")
	}
	return nil
}

// issueProfile seals the profile capability the flags describe, with
// core's Authorizer.IssueProfile (the one issuance sequence, shared with the
// API) once the profiles file is in force.
func (o *issueOptions) issueProfile(core *authz.Authorizer, stdin io.Reader) (string, error) {
	switch {
	case o.profilesFile == "":
		return "", usageError("--profile needs --profiles-file (or EXTAUTHZ_PROFILES_FILE)")
	case o.container == "":
		return "", usageError("--profile needs --container, the outboundContainerId the capability is bound to")
	}
	s := capability.ProfileSubject{Profile: o.profile, OutboundContainerID: o.container}
	var err error
	if s.Vars, err = pairs("--var", o.vars); err != nil {
		return "", err
	}
	if s.Subject, err = pairs("--subject", o.subject); err != nil {
		return "", err
	}
	set, err := profiles.Load(o.profilesFile, o.pol)
	if err != nil {
		return "", err
	}
	core.SetProfiles(set)
	if s.Credentials, err = readCredentials(o.credentials, stdin); err != nil {
		return "", err
	}
	return core.IssueProfile(s, o.ttl)
}

// pairs reads NAME=VALUE arguments of flag into a map, each name once.
func pairs(flag string, args []string) (map[string]string, error) {
	m := make(map[string]string, len(args))
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=") // namedValue checked the form
		if _, dup := m[k]; dup {
			return nil, usageError("%s %s given twice", flag, k)
		}
		m[k] = v
	}
	return m, nil
}

// readCredentials reads each SLOT=@FILE from its file and the one SLOT=@-
// from stdin, as the server reads a secret file: white space around it
// trimmed, never empty. Errors name the slot and the file, never a secret.
func readCredentials(args []string, stdin io.Reader) (map[string]string, error) {
	m := make(map[string]string, len(args))
	fromStdin := ""
	for _, a := range args {
		slot, src, _ := strings.Cut(a, "=") // fromFileOrStdin checked the form
		if _, dup := m[slot]; dup {
			return nil, usageError("--credential %s given twice", slot)
		}
		var err error
		if src == "@-" {
			if fromStdin != "" {
				return nil, usageError("--credential %s=@- and %s=@-: stdin holds one secret", fromStdin, slot)
			}
			fromStdin = slot
			m[slot], err = readStdinSecret(stdin)
		} else {
			m[slot], err = server.ReadSecretFile(src[1:])
		}
		if err != nil {
			return nil, fmt.Errorf("--credential %s: %w", slot, err)
		}
	}
	return m, nil
}

// readStdinSecret reads the secret on stdin, at most maxSubjectLen bytes.
func readStdinSecret(stdin io.Reader) (string, error) {
	data, err := io.ReadAll(io.LimitReader(stdin, maxSubjectLen+1))
	if err != nil {
		return "", fmt.Errorf("reading stdin: %w", err)
	}
	if len(data) > maxSubjectLen {
		return "", fmt.Errorf("stdin is larger than %d bytes", maxSubjectLen)
	}
	return server.SecretText("stdin", data)
}
