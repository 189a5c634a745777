package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/extauthz/extauthz/bench/benchcmd"
	"github.com/extauthz/extauthz/bench/extauthzproc"
	"github.com/extauthz/extauthz/bench/loadgen"
	"github.com/extauthz/extauthz/capability"
)

// Config is one benchmark run; Run.Concurrency requests are in flight.
type Config struct {
	benchcmd.Run
	Bin        string   // extauthz binary; empty: built from the tree into Dir
	Flood      bool     // add the flood case; the do-nothing server gets pool capabilities too
	PoolSize   int      // flood: distinct capabilities sealed before the first round
	ExtraFlags []string // for extauthz serve

	// Profile, if not empty, names the shipped profile (profileCalls)
	// whose capability every request carries, the way its SDK sends it;
	// extauthz loads profiles/providers.yaml.
	Profile string
	// ReloadEvery, if not zero, rewrites the profiles file at this
	// interval during the measured rounds, so that extauthz reloads it
	// under load.
	ReloadEvery time.Duration
}

// Measurement is one case in one round.
type Measurement struct {
	loadgen.Result
	CPU time.Duration // the server process's CPU time during the round
	RSS int64         // its resident set after the round, bytes
}

// CPUPerRequest is the server's CPU time per successful request, in µs.
func (m Measurement) CPUPerRequest() float64 {
	if ok := m.Requests - m.Errors; ok > 0 {
		return float64(m.CPU.Microseconds()) / float64(ok)
	}
	return 0
}

// CaseResult is every round of one case.
type CaseResult struct {
	Name    string
	Rounds  []Measurement
	PeakRSS int64 // the server's VmHWM at the end of the run, bytes
}

// The cases, in Report.Cases. caseFlood exists in flood mode only.
const (
	caseNop      = iota // the do-nothing server
	caseRepeated        // extauthz, one capability on every request
	caseFlood           // the same extauthz process, the next pool capability on every request
)

// Report is a whole run.
type Report struct {
	Config Config
	Cases  []CaseResult // indexed by caseNop, caseRepeated, caseFlood

	Seal      time.Duration // flood: time to seal the pool
	PoolBytes int64         // flood: the pool's memory in the load generator

	// Pool capabilities sent over the whole run, warm-up included (a
	// request left in flight at the end of a window counts: the server
	// received it).
	NopPoolSent, ExtPoolSent int64
	ExtRepeatedSent          int64 // requests with the one repeated capability to extauthz
	ExtRSS, ExtPeakRSS       int64 // extauthz's VmRSS and VmHWM at the end of the run

	// Checks sent to each case over the whole run, warm-up included, and
	// how many failed (a deny, a wrong allow, a transport error), whether
	// or not they ended inside a measured window.
	Checks, Failed []int64

	Reload *ReloadResult // with ReloadEvery
}

// ReloadResult is what happened while the profiles file was rewritten
// under load: from just before the first measured round to just after the
// last one returned (every request of the rounds included).
type ReloadResult struct {
	Renames, InPlace int     // rewrites of the file, by rename and in place
	OK, Errors       int64   // the server's reloads: applied, failed
	Checks, Failed   []int64 // per case, checks in the period and failures
	Err              error   // a rewrite that failed, stopping the rewrites
}

// ExtDistinct is how many distinct capabilities extauthz received: the pool
// capabilities (each counted once if the pool wrapped) and the repeated one.
func (r *Report) ExtDistinct() int64 {
	d := min(r.ExtPoolSent, int64(r.Config.PoolSize))
	if r.ExtRepeatedSent > 0 {
		d++
	}
	return d
}

// Wrapped reports whether a server was sent more pool capabilities than the
// pool holds, so that some of them arrived twice.
func (r *Report) Wrapped() bool {
	return r.Config.Flood && max(r.NopPoolSent, r.ExtPoolSent) > int64(r.Config.PoolSize)
}

// server is one server process under test.
type server struct {
	pid    int
	client authv3.AuthorizationClient
	next   atomic.Int64 // the server's next pool capability
}

// benchCase is what one row of the table measures: a server and the
// capability each request carries.
type benchCase struct {
	name  string
	srv   *server
	token func() string // the capability header's value
	n     *counts
}

// counts are a case's checks sent and failed.
type counts struct{ sent, failed atomic.Int64 }

// sessionID numbers the subject of capability i (0 is the repeated one, the
// pool holds 1 to N): the capabilities are distinct by construction, and
// all of one length, so that no case sends more bytes than another.
func sessionID(i int) string { return fmt.Sprintf("bench-session-%07d", i) }

// run seals the pool (flood), starts both servers, measures every case in
// rounds whose order alternates, and stops the servers.
func run(ctx context.Context, c Config) (*Report, error) {
	progress := c.Progressf
	if err := c.validate(); err != nil {
		return nil, err
	}
	keyFile, codec, err := extauthzproc.NewKey(c.Dir)
	if err != nil {
		return nil, err
	}
	base := extauthzproc.Subject(benchcmd.ContainerID, benchcmd.APIHost, benchcmd.IngestHost)
	subject := func(i int) capability.Subject {
		s := base
		s.KiloSessionID = sessionID(i)
		return s
	}
	fixed, err := codec.Seal(subject(0), capability.MaxLifetime)
	if err != nil {
		return nil, err
	}
	rep := &Report{Config: c}
	// What every request asks and must be answered, the extra flags for
	// extauthz, and the do-nothing server's answer (nil: Mirror).
	call, verify, extra := kka1Call, allowed, c.ExtraFlags
	var nopResp *authv3.CheckResponse
	var profilesFile string
	var profiles []byte
	if c.Profile != "" {
		pt, err := newProfileTarget(codec, c.Profile)
		if err != nil {
			return nil, err
		}
		if profilesFile, profiles, err = shippedProfiles(c.Dir); err != nil {
			return nil, err
		}
		fixed, call, verify, nopResp = pt.capValue, pt.call.sdkCall, pt.verify, pt.nopAnswer()
		extra = append(profileFlags(profilesFile, c.ReloadEvery), c.ExtraFlags...)
	}
	var pool *extauthzproc.Pool
	if c.Flood {
		progress("sealing %d distinct capabilities on %d CPUs", c.PoolSize, runtime.GOMAXPROCS(0))
		t0 := time.Now()
		pool, err = extauthzproc.SealPool(ctx, codec, c.PoolSize, capability.MaxLifetime,
			func(i int) capability.Subject { return subject(i + 1) },
			func(n int) { progress("sealed %d/%d (%.0fs)", n, c.PoolSize, time.Since(t0).Seconds()) })
		if err != nil {
			return nil, err
		}
		rep.Seal, rep.PoolBytes = time.Since(t0), pool.Bytes()
		progress("sealed %d capabilities (%.0f MiB) in %v", pool.Len(), float64(rep.PoolBytes)/(1<<20), rep.Seal.Round(time.Millisecond))
	}
	servers, err := benchcmd.StartServers(c.Run, benchcmd.ServerOptions{
		Bin: c.Bin, KeyFile: keyFile, TokenLen: len(base.ProviderToken), Nop: nopResp, Extra: extra})
	if err != nil {
		return nil, err
	}
	defer servers.Stop()
	ext, nop := servers.Ext, servers.Nop
	var adminAddr string
	if c.ReloadEvery > 0 {
		if adminAddr, err = ext.ListenerAddr("admin"); err != nil {
			return nil, err
		}
	}

	nopSrv, extSrv := &server{pid: nop.PID()}, &server{pid: ext.PID()}
	for _, s := range []struct {
		srv  *server
		addr string
	}{{nopSrv, nop.Addr}, {extSrv, ext.GRPCAddr}} {
		conn, err := grpc.NewClient("passthrough:///"+s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		s.srv.client = authv3.NewAuthorizationClient(conn)
	}
	repeated := func() string { return fixed }
	fromPool := func(s *server) func() string {
		return func() string { return pool.At(int((s.next.Add(1) - 1) % int64(pool.Len()))) }
	}
	cases := []benchCase{
		caseNop:      {name: "do-nothing", srv: nopSrv, token: repeated},
		caseRepeated: {name: "extauthz", srv: extSrv, token: repeated},
	}
	if c.Profile != "" {
		cases[caseRepeated].name = "extauthz " + c.Profile
	}
	if c.Flood {
		cases[caseNop].token = fromPool(nopSrv)
		cases[caseRepeated].name = "extauthz repeated"
		cases = append(cases, benchCase{name: "extauthz flood", srv: extSrv, token: fromPool(extSrv)})
	}
	for i := range cases {
		cases[i].n = new(counts)
	}
	load := func(bc benchCase, d time.Duration) (loadgen.Result, error) {
		return loadgen.Run(ctx, loadgen.Options{Concurrency: c.Concurrency, Duration: d}, func(int) loadgen.Func {
			return func(ctx context.Context) error {
				bc.n.sent.Add(1)
				err := check(ctx, bc.srv.client, call, bc.token(), verify)
				if err != nil {
					bc.n.failed.Add(1)
				}
				return err
			}
		})
	}
	for _, bc := range cases {
		if c.Warmup > 0 {
			progress("warming up %s", bc.name)
			if _, err := load(bc, c.Warmup); err != nil {
				return nil, err
			}
		}
	}
	rep.Cases = make([]CaseResult, len(cases))
	for i, bc := range cases {
		rep.Cases[i].Name = bc.name
	}
	snapshot := func() (sent, failed []int64) {
		for _, bc := range cases {
			sent, failed = append(sent, bc.n.sent.Load()), append(failed, bc.n.failed.Load())
		}
		return sent, failed
	}
	var rw *rewriter
	var sent0, failed0 []int64
	var reloads0 int64
	if c.ReloadEvery > 0 {
		if reloads0, _, err = profileReloads(ctx, adminAddr); err != nil {
			return nil, err
		}
		sent0, failed0 = snapshot()
		progress("rewriting %s every %v", profilesFile, c.ReloadEvery)
		rw = startRewriter(profilesFile, profiles, c.ReloadEvery)
		defer func() {
			if rw != nil {
				rw.Stop()
			}
		}()
	}
	for round := range c.Rounds {
		for _, i := range order(len(cases), round) {
			bc := cases[i]
			cpu0 := benchcmd.CPUTime(bc.srv.pid)
			res, err := load(bc, c.Duration)
			if err != nil {
				return nil, err
			}
			if err := ext.Alive(); err != nil {
				return nil, fmt.Errorf("%w:\n%s", err, ext.Tail(4096))
			}
			m := Measurement{Result: res, CPU: benchcmd.CPUTime(bc.srv.pid) - cpu0, RSS: procStatus(bc.srv.pid, "VmRSS")}
			progress("round %d/%d %s: %v, RSS %.1f MiB", round+1, c.Rounds, bc.name, res, float64(m.RSS)/(1<<20))
			rep.Cases[i].Rounds = append(rep.Cases[i].Rounds, m)
		}
	}
	if rw != nil {
		r := &ReloadResult{}
		r.Renames, r.InPlace, r.Err = rw.Stop()
		rw = nil
		sent, failed := snapshot()
		for i := range sent {
			r.Checks, r.Failed = append(r.Checks, sent[i]-sent0[i]), append(r.Failed, failed[i]-failed0[i])
		}
		if err := r.readReloads(ctx, adminAddr, reloads0, c.ReloadEvery); err != nil {
			return nil, err
		}
		rep.Reload = r
	}
	for i, bc := range cases {
		rep.Cases[i].PeakRSS = procStatus(bc.srv.pid, "VmHWM")
		rep.Checks, rep.Failed = append(rep.Checks, bc.n.sent.Load()), append(rep.Failed, bc.n.failed.Load())
	}
	rep.ExtRSS, rep.ExtPeakRSS = procStatus(extSrv.pid, "VmRSS"), procStatus(extSrv.pid, "VmHWM")
	rep.ExtRepeatedSent = cases[caseRepeated].n.sent.Load()
	if c.Flood {
		rep.NopPoolSent, rep.ExtPoolSent = nopSrv.next.Load(), extSrv.next.Load()
	}
	return rep, nil
}

// order is the order of n cases in round r: forward in even rounds, backward
// in odd ones (A B C, C B A, …), so that a load on the machine that rises
// or falls steadily over two rounds weighs on every case alike.
func order(n, r int) []int {
	o := make([]int, n)
	for i := range o {
		o[i] = i
		if r%2 == 1 {
			o[i] = n - 1 - i
		}
	}
	return o
}

// validate refuses a configuration that cannot run, or that would outlive
// the capabilities sealed at its start.
func (c Config) validate() error {
	cases := 2
	switch _, known := profileCalls[c.Profile]; {
	case c.Profile != "" && !known:
		return fmt.Errorf("-profile must be one of %s", strings.Join(profileNames(), ", "))
	case c.Profile != "" && c.Flood:
		return errors.New("-flood and -profile do not combine: the flood's pool is of kka1 capabilities")
	case c.ReloadEvery != 0 && c.Profile == "":
		return errors.New("-reload-every needs -profile: it rewrites the profiles file")
	case c.ReloadEvery != 0 && c.ReloadEvery < minReloadEvery:
		return fmt.Errorf("-reload-every must be at least %v (the server polls every quarter of it)", minReloadEvery)
	}
	if c.Flood {
		cases = 3
		if c.PoolSize < 1 || c.PoolSize > maxPool {
			return fmt.Errorf("-flood-capabilities must be between 1 and %d (the pool is held in memory, ~500 bytes each)", maxPool)
		}
	}
	if c.Concurrency < 1 || c.Rounds < 1 || c.Duration <= 0 || c.Warmup < 0 {
		return errors.New("-concurrency, -rounds and -duration must be positive, -warmup not negative")
	}
	if total := time.Duration(cases) * (c.Warmup + time.Duration(c.Rounds)*c.Duration); total > capability.MaxLifetime-10*time.Minute {
		return fmt.Errorf("a run of %v would outlive its capabilities (sealed at the start, valid for %v)", total, capability.MaxLifetime)
	}
	return nil
}

// maxPool bounds -flood-capabilities: the pool lives in the load
// generator's memory.
const maxPool = 10_000_000

// check sends call with capability value capValue and fails unless verify
// accepts the answer.
func check(ctx context.Context, client authv3.AuthorizationClient, call sdkCall, capValue string,
	verify func(*authv3.CheckResponse) error) error {
	resp, err := client.Check(ctx, checkRequest(call, capValue))
	if err != nil {
		return err
	}
	return verify(resp)
}

// allowed fails unless resp is an allow.
func allowed(resp *authv3.CheckResponse) error {
	if resp.GetStatus().GetCode() != int32(codes.OK) || resp.GetOkResponse() == nil {
		return fmt.Errorf("denied: %s", resp.GetStatus().GetMessage())
	}
	return nil
}

// checkRequest is what Envoy sends for a sandbox's call with the shipped
// config: the context extension naming the container and the upstream's
// scheme, the request's attributes, and its headers in header_map as raw
// values (encode_raw_headers: true), capValue in the call's capability
// header.
func checkRequest(call sdkCall, capValue string) *authv3.CheckRequest {
	var headers []*corev3.HeaderValue
	for _, kvs := range [][][2]string{{
		{":authority", call.host}, {":path", call.path}, {":method", "POST"}, {":scheme", "http"},
		{"content-type", "application/json"}, {"content-length", "68"}, {"user-agent", "grpcbench"},
		{"x-forwarded-proto", "http"}, {"x-request-id", "3f1c2a9e-5b7d-4e8f-9a1b-2c3d4e5f6a7b"},
	}, call.extra, {{call.capHeader, capValue}}} {
		for _, kv := range kvs {
			headers = append(headers, &corev3.HeaderValue{Key: kv[0], RawValue: []byte(kv[1])})
		}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:            &authv3.AttributeContext_Peer{Address: &corev3.Address{}},
		ContextExtensions: map[string]string{"outbound_container_id": benchcmd.ContainerID, "upstream_scheme": "https"},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "1", Method: "POST", Scheme: "http", Host: call.host, Path: call.path, Protocol: "HTTP/1.1", Size: 68,
			HeaderMap: &corev3.HeaderMap{Headers: headers},
		}},
	}}
}

// procStatus is a "kB" field of /proc/PID/status in bytes, 0 if unreadable.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
