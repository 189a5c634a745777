package main

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// checkListenAddrs checks what serve would fail to listen on, before it
// tries: each address is host:port with a port from 0 to 65535 (0 picks a
// free one) or unix:PATH, and no two listeners share one (a wildcard host
// overlaps every host on the same port). "" disables a listener.
func checkListenAddrs(addrs map[string]string) error {
	type bound struct{ flag, host, port, unix string }
	var seen []bound
	names := make([]string, 0, len(addrs))
	for n := range addrs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		addr := addrs[name]
		if addr == "" {
			continue
		}
		b := bound{flag: "--" + name}
		if path, ok := strings.CutPrefix(addr, "unix:"); ok {
			if path == "" {
				return fmt.Errorf("--%s %q: unix: needs a socket path, e.g. unix:/run/extauthz/grpc.sock", name, addr)
			}
			b.unix = path
		} else {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return fmt.Errorf("--%s %q: want host:port (e.g. :9191 or 127.0.0.1:9191; port 0 picks a free one) or unix:PATH", name, addr)
			}
			if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
				return fmt.Errorf("--%s %q: the port must be a number from 0 to 65535", name, addr)
			}
			b.host, b.port = host, port
		}
		for _, o := range seen {
			clash := b.unix != "" && b.unix == o.unix ||
				b.unix == "" && o.unix == "" && b.port != "0" && b.port == o.port &&
					(b.host == o.host || wildcardHost(b.host) || wildcardHost(o.host))
			if clash {
				return fmt.Errorf("%s %q and %s %q are the same listening address: give each listener its own", o.flag, addrs[strings.TrimPrefix(o.flag, "--")], b.flag, addr)
			}
		}
		seen = append(seen, b)
	}
	return nil
}

func wildcardHost(h string) bool {
	return h == "" || h == "0.0.0.0" || h == "::" || h == "[::]"
}
