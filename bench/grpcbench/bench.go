package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/extauthz/extauthz/bench/extauthzproc"
	"github.com/extauthz/extauthz/bench/loadgen"
	"github.com/extauthz/extauthz/bench/nopauthz"
	"github.com/extauthz/extauthz/capability"
)

// What every request asks: an allowed provider_model call, shaped like the
// CheckRequest Envoy sends with the shipped config.
const (
	containerID = "outbound-container-CHANGE-ME"
	apiHost     = "api.kilo.example"
	ingestHost  = "ingest.kilo.example"
	requestPath = "/api/openrouter/chat/completions"
	capHeader   = "x-kilo-capability"
)

// Config is one benchmark run.
type Config struct {
	Dir         string // work directory: key file, logs
	Concurrency int
	Rounds      int
	Duration    time.Duration // measured, per server per round
	Warmup      time.Duration // per server, before the first round
	Flood       bool          // a fresh capability on every request
	ExtraFlags  []string      // for extauthz serve
	Progress    io.Writer
}

// Measurement is one server in one round.
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

// ServerResult is every round of one server.
type ServerResult struct {
	Name    string
	Rounds  []Measurement
	PeakRSS int64 // VmHWM at the end of the run, bytes
}

// Report is a whole run: Servers[0] the do-nothing server, Servers[1] extauthz.
type Report struct {
	Config   Config
	Servers  []ServerResult
	Distinct int64 // flood: capabilities sent to extauthz
}

type server struct {
	name   string
	pid    int
	client authv3.AuthorizationClient
	sent   atomic.Int64
}

// run starts both servers, measures them in alternating rounds and stops them.
func run(ctx context.Context, c Config) (*Report, error) {
	progress := func(format string, a ...any) {
		if c.Progress != nil {
			fmt.Fprintf(c.Progress, format+"\n", a...)
		}
	}
	keyFile, codec, err := extauthzproc.NewKey(c.Dir)
	if err != nil {
		return nil, err
	}
	subject := extauthzproc.Subject(containerID, apiHost, ingestHost)
	fixed, err := codec.Seal(subject, capability.MaxLifetime)
	if err != nil {
		return nil, err
	}
	progress("building extauthz")
	bin, err := extauthzproc.Build(c.Dir)
	if err != nil {
		return nil, err
	}
	ext, err := extauthzproc.Start(bin, keyFile, filepath.Join(c.Dir, "extauthz.log"), c.ExtraFlags...)
	if err != nil {
		return nil, err
	}
	defer ext.Stop()
	nop, err := nopauthz.StartProcess(capHeader, len(subject.ProviderToken), false, filepath.Join(c.Dir, "nopauthz.log"))
	if err != nil {
		return nil, err
	}
	defer nop.Stop()

	servers := []*server{{name: "do-nothing", pid: nop.PID()}, {name: "extauthz", pid: ext.PID()}}
	for i, addr := range []string{nop.Addr, ext.GRPCAddr} {
		conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		servers[i].client = authv3.NewAuthorizationClient(conn)
	}
	capFor := func() (string, error) { return fixed, nil }
	if c.Flood {
		capFor = func() (string, error) { return codec.Seal(subject, capability.MaxLifetime) }
	}
	load := func(s *server, d time.Duration) (loadgen.Result, error) {
		return loadgen.Run(ctx, loadgen.Options{Concurrency: c.Concurrency, Duration: d}, func(int) loadgen.Func {
			return func(ctx context.Context) error {
				tok, err := capFor()
				if err != nil {
					return err
				}
				s.sent.Add(1)
				return check(ctx, s.client, tok)
			}
		})
	}
	for _, s := range servers {
		if c.Warmup > 0 {
			progress("warming up %s", s.name)
			if _, err := load(s, c.Warmup); err != nil {
				return nil, err
			}
		}
	}
	rep := &Report{Config: c, Servers: make([]ServerResult, len(servers))}
	for i, s := range servers {
		rep.Servers[i].Name = s.name
	}
	for round := range c.Rounds {
		order := []int{0, 1}
		if round%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			s := servers[i]
			cpu0 := cpuTime(s.pid)
			res, err := load(s, c.Duration)
			if err != nil {
				return nil, err
			}
			if err := ext.Alive(); err != nil {
				return nil, fmt.Errorf("%w:\n%s", err, ext.Tail(4096))
			}
			m := Measurement{Result: res, CPU: cpuTime(s.pid) - cpu0, RSS: procStatus(s.pid, "VmRSS")}
			progress("round %d/%d %s: %v, RSS %.1f MiB", round+1, c.Rounds, s.name, res, float64(m.RSS)/(1<<20))
			rep.Servers[i].Rounds = append(rep.Servers[i].Rounds, m)
		}
	}
	for i, s := range servers {
		rep.Servers[i].PeakRSS = procStatus(s.pid, "VmHWM")
	}
	rep.Distinct = servers[1].sent.Load()
	return rep, nil
}

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
// attributes and headers (the capability in the dedicated header).
func checkRequest(tok string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:            &authv3.AttributeContext_Peer{Address: &corev3.Address{}},
		ContextExtensions: map[string]string{"outbound_container_id": containerID, "upstream_scheme": "https"},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "1", Method: "POST", Scheme: "http", Host: apiHost, Path: requestPath, Protocol: "HTTP/1.1", Size: 68,
			Headers: map[string]string{
				":authority": apiHost, ":method": "POST", ":path": requestPath, ":scheme": "http",
				"content-type": "application/json", "content-length": "68", "user-agent": "grpcbench",
				"x-forwarded-proto": "http", "x-request-id": "3f1c2a9e-5b7d-4e8f-9a1b-2c3d4e5f6a7b",
				capHeader: tok,
			},
		}},
	}}
}

// cpuTime is a process's user+system CPU time from /proc/PID/stat (clock
// ticks of 10 ms), 0 if unreadable.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
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
