package nopauthz

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"
)

// A benchmark runs the do-nothing server as a process of its own, like the
// server it is compared with, by re-executing its own binary: StartProcess
// starts the child, and the child's main (or TestMain) calls ServeIfChild
// first.

// childEnv tells a re-executed binary to be the do-nothing server; its value
// is the response, protobuf-encoded, in standard base64.
const childEnv = "NOPAUTHZ_CHILD"

// ServeIfChild returns at once unless this process was started by
// StartProcess; then it serves the do-nothing server until stdin closes or
// SIGTERM, and exits.
func ServeIfChild() {
	spec := os.Getenv(childEnv)
	if spec == "" {
		return
	}
	if err := serveChild(spec); err != nil {
		fmt.Fprintln(os.Stderr, "nopauthz:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func serveChild(spec string) error {
	resp := new(authv3.CheckResponse)
	b, err := base64.StdEncoding.DecodeString(spec)
	if err == nil {
		err = proto.Unmarshal(b, resp)
	}
	if err != nil {
		return fmt.Errorf("%s: want a CheckResponse, protobuf in base64: %w", childEnv, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin) // the parent stopped or died
		cancel()
	}()
	return Serve(ctx, ln, New(resp))
}

// Process is a do-nothing server running as a child process.
type Process struct {
	cmd *exec.Cmd
	in  io.Closer
	// Addr is its gRPC address on loopback.
	Addr string
}

// StartProcess re-executes this binary as the do-nothing server, answering
// resp to every Check; its stderr goes to logFile. It returns once the
// server listens.
func StartProcess(resp *authv3.CheckResponse, logFile string) (*Process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	enc, err := proto.Marshal(resp)
	if err != nil {
		return nil, err
	}
	spec := base64.StdEncoding.EncodeToString(enc)
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"="+spec)
	log, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		b, _ := os.ReadFile(logFile)
		return nil, fmt.Errorf("do-nothing server: %w\n%.4096s", err, b)
	}
	return &Process{cmd: cmd, in: in, Addr: strings.TrimSpace(line)}, nil
}

// PID is the process id, for reading its CPU time and memory.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Stop ends the process and waits for it.
func (p *Process) Stop() {
	_ = p.in.Close()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}
