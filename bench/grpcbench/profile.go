package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/extauthz/extauthz/bench/benchcmd"
	"github.com/extauthz/extauthz/bench/extauthzproc"
	"github.com/extauthz/extauthz/bench/nopauthz"
	"github.com/extauthz/extauthz/capability"
)

// sdkCall is a request as a sandbox sends it through the egress proxy:
// its host and path, the header that carries its capability, and the
// headers it sends besides the ones every request has (checkRequest).
type sdkCall struct {
	host, path string
	capHeader  string
	extra      [][2]string
}

// kka1Call is the provider call of a kka1 run: the capability in the
// dedicated header, to the shipped config's provider route.
var kka1Call = sdkCall{host: benchcmd.APIHost, path: benchcmd.RequestPath, capHeader: benchcmd.CapHeader}

// profileCall is a provider SDK's call with a profile capability where the
// SDK sends its key, and the allow extauthz answers it with the
// shipped profiles/providers.yaml (docs/profiles.md).
type profileCall struct {
	sdkCall
	capPrefix string   // before the capability in capHeader
	class     string   // the route class the call matches
	inject    string   // the header the allow sets
	prefix    string   // before the secret in it
	remove    []string // the headers the allow removes
}

// profileCalls are the -profile choices: the shipped profiles whose routes
// need no variables.
var profileCalls = map[string]profileCall{
	"openai": {sdkCall: sdkCall{host: "api.openai.com", path: "/v1/chat/completions", capHeader: "authorization"},
		capPrefix: "Bearer ", class: "openai_api", inject: "authorization", prefix: "Bearer ",
		remove: []string{benchcmd.CapHeader}},
	"anthropic": {sdkCall: sdkCall{host: "api.anthropic.com", path: "/v1/messages", capHeader: "x-api-key",
		extra: [][2]string{{"anthropic-version", "2023-06-01"}}},
		class: "anthropic_api", inject: "x-api-key", remove: []string{benchcmd.CapHeader, "authorization"}},
	"gemini": {sdkCall: sdkCall{host: "generativelanguage.googleapis.com", path: "/v1beta/models/gemini-2.5-flash:generateContent",
		capHeader: "x-goog-api-key"},
		class: "gemini_api", inject: "x-goog-api-key", remove: []string{benchcmd.CapHeader}},
}

// profileNames lists the -profile choices, sorted.
func profileNames() []string {
	names := make([]string, 0, len(profileCalls))
	for n := range profileCalls {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// The profile capability's credential: its slot in the shipped profiles,
// and a secret as long as an OpenAI project key's first part.
const (
	profileSlot   = "api-key"
	profileSecret = "sk-bench-0123456789abcdef0123456789abcdef0123456789abcdef"
)

// profileTarget is a profile run's request and the allow it must get.
type profileTarget struct {
	name      string
	call      profileCall
	capValue  string // capHeader's value: the prefix and the capability
	wantValue string // the injected header's value
}

// newProfileTarget seals the profile capability of profile name for the
// benchmark's container, as the issue API would.
func newProfileTarget(codec *capability.Codec, name string) (*profileTarget, error) {
	pc, ok := profileCalls[name]
	if !ok {
		return nil, fmt.Errorf("no profile %q (choose one of %s)", name, strings.Join(profileNames(), ", "))
	}
	tok, err := codec.SealProfile(capability.ProfileSubject{Profile: name, OutboundContainerID: benchcmd.ContainerID,
		Subject:     map[string]string{"user": "bench-user", "session": sessionID(0)},
		Credentials: map[string]string{profileSlot: profileSecret}}, capability.MaxLifetime)
	if err != nil {
		return nil, err
	}
	return &profileTarget{name: name, call: pc, capValue: pc.capPrefix + tok, wantValue: pc.prefix + profileSecret}, nil
}

// nopAnswer is the do-nothing server's answer: the allow extauthz gives,
// the same header set to the same value, the same headers removed and the
// same dynamic metadata (a profile allow's: route class, profile,
// container).
func (t *profileTarget) nopAnswer() *authv3.CheckResponse {
	return nopauthz.Allow(t.call.inject, t.wantValue, t.call.remove, map[string]string{
		"route_class": t.call.class, "profile": t.name, "outbound_container_id": benchcmd.ContainerID})
}

// verify fails unless resp is the allow t's request must get: the secret
// injected where the profile's route puts it, the capability's headers
// removed.
func (t *profileTarget) verify(resp *authv3.CheckResponse) error {
	ok := resp.GetOkResponse()
	if resp.GetStatus().GetCode() != int32(codes.OK) || ok == nil {
		return fmt.Errorf("denied: %s", resp.GetStatus().GetMessage())
	}
	hs := ok.GetHeaders()
	if len(hs) != 1 || hs[0].GetHeader().GetKey() != t.call.inject || hs[0].GetHeader().GetValue() != t.wantValue ||
		!slices.Equal(ok.GetHeadersToRemove(), t.call.remove) {
		var set []string
		for _, h := range hs {
			set = append(set, h.GetHeader().GetKey()) // names only: values hold the secret
		}
		return fmt.Errorf("allow sets %v and removes %v; want %s set to the secret and %v removed",
			set, ok.GetHeadersToRemove(), t.call.inject, t.call.remove)
	}
	return nil
}

// shippedProfiles copies the tree's profiles/providers.yaml into dir, for
// --profiles-file, and returns the copy and its content.
func shippedProfiles(dir string) (string, []byte, error) {
	root, err := extauthzproc.ModuleDir()
	if err != nil {
		return "", nil, err
	}
	b, err := os.ReadFile(filepath.Join(root, "profiles", "providers.yaml"))
	if err != nil {
		return "", nil, err
	}
	path := filepath.Join(dir, "profiles.yaml")
	return path, b, os.WriteFile(path, b, 0o644)
}

// profileFlags are extauthz serve's flags for a profile run: the profiles
// file and, to reload it under load, the admin listener (for the reload
// counter) and a poll four times per rewrite, so that an in-place rewrite
// (applied once read the same twice) is applied before the next.
func profileFlags(file string, reloadEvery time.Duration) []string {
	flags := []string{"--profiles-file", file}
	if reloadEvery > 0 {
		flags = append(flags, "--admin-addr", "127.0.0.1:0", "--key-reload-interval", (reloadEvery / 4).String())
	}
	return flags
}

// minReloadEvery bounds -reload-every from below: the server polls every
// quarter of it.
const minReloadEvery = 20 * time.Millisecond

// rewriter rewrites the profiles file every interval until stopped: the
// same profiles and a comment that changes, so that every write is a
// change the server reloads. Two writes in three put a new file in place
// by rename, as a ConfigMap update does; one in three rewrites the file in
// place (truncated, then written), which the server applies once it has
// read the same content twice.
type rewriter struct {
	path    string
	content []byte
	stop    chan struct{}
	wg      sync.WaitGroup
	// Set by the rewriting goroutine, read after Stop.
	renames, inPlace int
	err              error
}

// startRewriter starts rewriting path, whose profiles are content, every
// interval.
func startRewriter(path string, content []byte, every time.Duration) *rewriter {
	w := &rewriter{path: path, content: content, stop: make(chan struct{})}
	w.wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for n := 1; ; n++ {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			if w.err = w.write(n); w.err != nil {
				return
			}
		}
	})
	return w
}

// write is rewrite n.
func (w *rewriter) write(n int) error {
	b := fmt.Appendf(slices.Clip(w.content), "\n# grpcbench rewrite %d\n", n)
	if n%3 == 0 {
		w.inPlace++
		return os.WriteFile(w.path, b, 0o644)
	}
	tmp := w.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	w.renames++
	return os.Rename(tmp, w.path)
}

// Stop stops rewriting and returns how many rewrites were made, and the
// error that stopped them early, if any.
func (w *rewriter) Stop() (renames, inPlace int, err error) {
	close(w.stop)
	w.wg.Wait()
	return w.renames, w.inPlace, w.err
}

// readReloads reads the server's reloads since it counted ok0 applied. The
// last rewrite may still wait for the server's next poll, or its second
// look (in place): until every rewrite is counted it reads again, for a
// rewrite interval at most.
func (r *ReloadResult) readReloads(ctx context.Context, adminAddr string, ok0 int64, every time.Duration) error {
	deadline := time.Now().Add(every)
	for {
		ok, errs, err := profileReloads(ctx, adminAddr)
		if err != nil {
			return err
		}
		r.OK, r.Errors = ok-ok0, errs
		if r.OK+r.Errors >= int64(r.Renames+r.InPlace) || time.Now().After(deadline) {
			return nil
		}
		time.Sleep(every / 8)
	}
}

// reloadCounter is the metric that counts the server's profile reloads.
const reloadCounter = "extauthz_profile_reloads_total"

// profileReloads reads the server's profile reload counters from its admin
// listener: reloads applied and reloads that failed (the last good
// profiles kept).
func profileReloads(ctx context.Context, adminAddr string) (ok, failed int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adminAddr+"/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	found := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		for result, dst := range map[string]*int64{"ok": &ok, "error": &failed} {
			if v, is := strings.CutPrefix(sc.Text(), reloadCounter+`{result="`+result+`"} `); is {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return 0, 0, fmt.Errorf("%s{result=%q}: %w", reloadCounter, result, err)
				}
				*dst = int64(f)
				found++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("/metrics lacks %s for ok and error", reloadCounter)
	}
	return ok, failed, nil
}
