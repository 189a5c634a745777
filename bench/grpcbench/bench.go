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
	token func() string
	sent  *atomic.Int64 // counts requests, if not nil
}

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
		Bin: c.Bin, KeyFile: keyFile, TokenLen: len(base.ProviderToken), Extra: c.ExtraFlags})
	if err != nil {
		return nil, err
	}
	defer servers.Stop()
	ext, nop := servers.Ext, servers.Nop

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
	var repeatedSent atomic.Int64
	cases := []benchCase{
		caseNop:      {name: "do-nothing", srv: nopSrv, token: repeated},
		caseRepeated: {name: "extauthz", srv: extSrv, token: repeated, sent: &repeatedSent},
	}
	if c.Flood {
		cases[caseNop].token = fromPool(nopSrv)
		cases[caseRepeated].name = "extauthz repeated"
		cases = append(cases, benchCase{name: "extauthz flood", srv: extSrv, token: fromPool(extSrv)})
	}
	load := func(bc benchCase, d time.Duration) (loadgen.Result, error) {
		return loadgen.Run(ctx, loadgen.Options{Concurrency: c.Concurrency, Duration: d}, func(int) loadgen.Func {
			return func(ctx context.Context) error {
				if bc.sent != nil {
					bc.sent.Add(1)
				}
				return check(ctx, bc.srv.client, bc.token())
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
	for i, bc := range cases {
		rep.Cases[i].PeakRSS = procStatus(bc.srv.pid, "VmHWM")
	}
	rep.ExtRSS, rep.ExtPeakRSS = procStatus(extSrv.pid, "VmRSS"), procStatus(extSrv.pid, "VmHWM")
	rep.ExtRepeatedSent = repeatedSent.Load()
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

// check sends one Check and fails unless it is an allow.
func check(ctx context.Context, client authv3.AuthorizationClient, tok string) error {
	resp, err := client.Check(ctx, checkRequest(tok))
	if err != nil {
		return err
	}
	if resp.GetStatus().GetCode() != int32(codes.OK) || resp.GetOkResponse() == nil {
		return fmt.Errorf("denied: %s", resp.GetStatus().GetMessage())
	}
	return nil
}

// checkRequest is what Envoy sends for a sandbox's provider call with the
// shipped config: the context extension naming the container, the request's
// attributes, and its headers in header_map as raw values
// (encode_raw_headers: true), the capability in the dedicated header.
func checkRequest(tok string) *authv3.CheckRequest {
	var headers []*corev3.HeaderValue
	for _, kv := range [][2]string{
		{":authority", benchcmd.APIHost}, {":path", benchcmd.RequestPath}, {":method", "POST"}, {":scheme", "http"},
		{"content-type", "application/json"}, {"content-length", "68"}, {"user-agent", "grpcbench"},
		{"x-forwarded-proto", "http"}, {"x-request-id", "3f1c2a9e-5b7d-4e8f-9a1b-2c3d4e5f6a7b"},
		{benchcmd.CapHeader, tok},
	} {
		headers = append(headers, &corev3.HeaderValue{Key: kv[0], RawValue: []byte(kv[1])})
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:            &authv3.AttributeContext_Peer{Address: &corev3.Address{}},
		ContextExtensions: map[string]string{"outbound_container_id": benchcmd.ContainerID, "upstream_scheme": "https"},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "1", Method: "POST", Scheme: "http", Host: benchcmd.APIHost, Path: benchcmd.RequestPath, Protocol: "HTTP/1.1", Size: 68,
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
