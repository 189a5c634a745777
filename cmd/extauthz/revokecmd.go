package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/extauthz/extauthz/authz"
	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/flagspec"
	"github.com/extauthz/extauthz/server"
)

const revokeSynopsis = `extauthz revoke --api-url URL --api-token-file FILE [--reason TEXT]
                (--user-id ID | --kilo-session-id ID | --cloud-agent-session-id ID |
                 --outbound-container-id ID | --subject KEY=VALUE |
                 --capability-stdin < capability)
       extauthz revoke --api-url URL --api-token-file FILE --list

Revokes, through a running server's API (POST ` + authz.RevokePath + `), one
capability, kka1 or eac1 (read from stdin, never from the command line, where
ps would show it), or every capability of a user, session or container issued
until now, or every profile capability whose subject holds the id KEY=VALUE.
It prints the stored entry (a capability by its id, never itself) once the
server has made it durable. --list prints every live revocation, one JSON
object a line (GET ` + authz.RevocationsPath + `).`

// revokeSelectors are the flag names of the selectors, in the order of
// revocation.Kinds after "capability", and what they revoke.
var revokeSelectors = [...]struct{ flag, member, help string }{
	{"kilo-session-id", "kiloSessionId", "revoke every kka1 capability with this kiloSessionId issued until now"},
	{"cloud-agent-session-id", "cloudAgentSessionId", "revoke every kka1 capability with this cloudAgentSessionId issued until now"},
	{"outbound-container-id", "outboundContainerId", "revoke every capability, kka1 or profile, bound to this container issued until now"},
	{"user-id", "userId", "revoke every kka1 capability with this userId issued until now"},
	{"subject", "subject", "KEY=VALUE: revoke every profile capability whose subject has this id, issued until now"},
}

// runRevoke implements `extauthz revoke`.
func runRevoke(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return revokeCmd(args, stdin, stdout, stderr, os.Getenv)
}

// revokeOptions are the flags of `extauthz revoke`.
type revokeOptions struct {
	base, token, reason string
	capStdin, list      bool
	timeout             time.Duration
	values              [len(revokeSelectors)]string
}

func (o *revokeOptions) flags() []flagspec.Flag {
	flags := []flagspec.Flag{
		flagspec.Parsed(&o.base, "api-url", "", "base URL of the server's --http-addr listener, e.g. http://127.0.0.1:8181", func(s string) (string, error) {
			u, err := url.Parse(strings.TrimRight(s, "/"))
			if s == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return "", errors.New("want the http(s) URL of the server's --http-addr listener")
			}
			return u.String(), nil
		}),
		flagspec.Parsed(&o.token, "api-token-file", "", "file holding the admin token (the server's --api-token-file)", func(name string) (string, error) {
			if name == "" {
				return "", errors.New("required")
			}
			return server.ReadSecretFile(name)
		}),
		flagspec.Var(&o.reason, "reason", "", "why, free text, logged and stored with the revocation"),
		flagspec.Var(&o.capStdin, "capability-stdin", false, "revoke the one capability read from stdin"),
		flagspec.Var(&o.list, "list", false, "list the live revocations instead of revoking"),
		flagspec.Var(&o.timeout, "timeout", 10*time.Second, "time limit of each API call"),
	}
	for i, s := range revokeSelectors {
		flags = append(flags, flagspec.Var(&o.values[i], s.flag, "", s.help))
	}
	return flags
}

func revokeCmd(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	o := &revokeOptions{}
	if code, done := parse("revoke", revokeSynopsis, o.flags(), args, getenv, stdout, stderr); done {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "extauthz revoke: "+format+"\n", a...)
		return code
	}
	client := &http.Client{Timeout: o.timeout}
	if o.list {
		return listRevocations(client, o.base, o.token, stdout, stderr)
	}
	body := map[string]string{}
	for i, s := range revokeSelectors {
		if o.values[i] != "" {
			body[s.member] = o.values[i]
		}
	}
	if o.capStdin {
		data, err := io.ReadAll(io.LimitReader(stdin, 2*capability.MaxTokenLen))
		if err != nil {
			return fail(1, "reading the capability from stdin: %v", err)
		}
		body["capability"] = strings.TrimSpace(string(data))
	}
	if len(body) != 1 {
		return fail(2, "name exactly one of --capability-stdin, --user-id, --kilo-session-id, --cloud-agent-session-id, --outbound-container-id, --subject")
	}
	if o.reason != "" {
		body["reason"] = o.reason
	}
	data, _ := json.Marshal(body)
	out, err := callAPI(client, http.MethodPost, o.base+authz.RevokePath, o.token, data)
	if err != nil {
		return fail(1, "%v", err)
	}
	fmt.Fprintf(stdout, "%s\n", bytes.TrimSpace(out))
	return 0
}

// listRevocations prints every page of GET /v1/revocations, one entry a line.
func listRevocations(client *http.Client, base, token string, stdout, stderr io.Writer) int {
	next := ""
	for {
		target := base + authz.RevocationsPath + "?limit=1000"
		if next != "" {
			target += "&after=" + url.QueryEscape(next)
		}
		out, err := callAPI(client, http.MethodGet, target, token, nil)
		if err != nil {
			fmt.Fprintf(stderr, "extauthz revoke: %v\n", err)
			return 1
		}
		var page struct {
			Revocations []json.RawMessage `json:"revocations"`
			Next        string            `json:"next"`
		}
		if err := json.Unmarshal(out, &page); err != nil {
			fmt.Fprintf(stderr, "extauthz revoke: unexpected answer: %v\n", err)
			return 1
		}
		for _, e := range page.Revocations {
			fmt.Fprintf(stdout, "%s\n", e)
		}
		if page.Next == "" {
			return 0
		}
		next = page.Next
	}
}

// callAPI makes one admin API call and returns the body of a 200. Errors
// carry the status and the API's error slug, never the token.
func callAPI(client *http.Client, method, target, token string, body []byte) ([]byte, error) {
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", "extauthz-revoke/"+version+" (user="+os.Getenv("USER")+")")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(out, &e)
		return nil, fmt.Errorf("%s %s: %s (%s)", method, authzPath(target), resp.Status, e.Error)
	}
	return out, nil
}

// authzPath is target without its scheme, host and query, for messages.
func authzPath(target string) string {
	if u, err := url.Parse(target); err == nil {
		return u.Path
	}
	return ""
}
