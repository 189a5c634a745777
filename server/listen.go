package server

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
)

// checkListenAddr is the rule of one listen address: host:port with a port
// from 0 to 65535 (0 picks a free one) or unix:PATH; "" disables the
// listener.
func checkListenAddr(addr string) error {
	if addr == "" {
		return nil
	}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if path == "" {
			return errors.New("unix: needs a socket path, e.g. unix:/run/extauthz/grpc.sock")
		}
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port (e.g. :9191 or 127.0.0.1:9191; port 0 picks a free one) or unix:PATH, got %q", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("the port must be a number from 0 to 65535, got %q", addr)
	}
	return nil
}

// checkListenAddrs checks that no two listeners share an address (a
// wildcard host overlaps every host on the same port), each address having
// passed checkListenAddr.
func checkListenAddrs(addrs map[string]string) error {
	type bound struct{ flag, addr, host, port, unix string }
	var seen []bound
	for _, name := range slices.Sorted(maps.Keys(addrs)) {
		b := bound{flag: "--" + name, addr: addrs[name]}
		if b.addr == "" || checkListenAddr(b.addr) != nil {
			continue
		}
		if path, ok := strings.CutPrefix(b.addr, "unix:"); ok {
			b.unix = path
		} else {
			b.host, b.port, _ = net.SplitHostPort(b.addr)
		}
		for _, o := range seen {
			clash := b.unix != "" && b.unix == o.unix ||
				b.unix == "" && o.unix == "" && b.port != "0" && b.port == o.port &&
					(b.host == o.host || wildcardHost(b.host) || wildcardHost(o.host))
			if clash {
				return fmt.Errorf("%s %q and %s %q are the same listening address: give each listener its own", o.flag, o.addr, b.flag, b.addr)
			}
		}
		seen = append(seen, b)
	}
	return nil
}

func wildcardHost(h string) bool {
	return h == "" || h == "0.0.0.0" || h == "::" || h == "[::]"
}

// listen listens on a TCP host:port, or on a Unix-domain socket given as
// unix:PATH (a sidecar proxy can then reach the server while nothing on the
// network can). A stale socket file from an earlier run is replaced; the
// socket is readable and writable by owner and group only.
func listen(addr string) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return net.Listen("tcp", addr)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

type listener struct {
	name string
	ln   net.Listener
}

// listenAll opens every configured listener, each under its connection
// cap, or none.
func (s *Server) listenAll() ([]listener, error) {
	c := &s.cfg
	var lns []listener
	for _, l := range []struct{ name, addr string }{{"grpc", c.GRPCAddr}, {"http", c.HTTPAddr}, {"admin", c.AdminAddr}} {
		if l.addr == "" {
			continue
		}
		ln, err := listen(l.addr)
		if err != nil {
			for _, l := range lns {
				l.ln.Close()
			}
			// Named by its flag, which the caller may trace to a variable.
			return nil, fmt.Errorf("--%s-addr %s: %w", l.name, l.addr, err)
		}
		lns = append(lns, listener{l.name, c.Limits.limit(l.name, ln)})
	}
	names := make([]string, len(lns))
	for i, l := range lns {
		names[i] = l.name
	}
	if need, have, ok := c.Limits.fdBudget(names); !ok {
		s.log.Warn().Uint64("need", need).Uint64("fd_limit", have).
			Msg("the connection caps exceed the file-descriptor limit: raise ulimit -n or lower --max-connections, or a flood can starve the other listeners")
	}
	s.warnOpenGRPC(lns)
	return lns, nil
}

// warnOpenGRPC says once, at start, when the gRPC listener takes plain
// connections from the network: an allowed Check answers with a real
// credential, so any client that reaches the port with a capability and the
// container id it is bound to gets one. The default :9191 is the container
// convention; what protects it is the network (the chart's NetworkPolicy, a
// pod reachable only by the proxy), or mTLS.
func (s *Server) warnOpenGRPC(lns []listener) {
	if s.cfg.TLS.ClientCAFile != "" {
		return
	}
	for _, l := range lns {
		if tcp, ok := l.ln.Addr().(*net.TCPAddr); ok && l.name == "grpc" && !tcp.IP.IsLoopback() {
			s.log.Warn().Str("addr", tcp.String()).
				Msg("the gRPC listener takes plain connections on a non-loopback address without mTLS: any client that reaches it with a capability and its container id gets the real credential; only the network protects it (a NetworkPolicy, a pod only the proxy reaches). Bind to 127.0.0.1 or unix:PATH, or set --tls-client-ca-file")
		}
	}
}

// dialable turns a listen address such as [::]:9191 into one a client on this
// machine can dial.
func dialable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
