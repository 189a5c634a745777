package compose

import (
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"

	"github.com/extauthz/extauthz/internal/testutil/envoyconf"
	"github.com/extauthz/extauthz/internal/testutil/envoyproc"
	"github.com/extauthz/extauthz/internal/testutil/manifest"
)

// Ports the server listens on by default (see cmd/extauthz serve).
const serverGRPCPort = 9191

// The compose file is in this directory, and the paths it names (build
// context, bind mounts) are relative to it, as Docker Compose resolves them.
const composeFileName = "docker-compose.yaml"

// envoyConfig is the demo's Envoy config, which the compose file mounts.
var envoyConfig = filepath.Join("..", "envoy", "envoy-compose.yaml")

// The context extensions the demo's Envoy config sets on its routes.
const (
	extContainerID    = envoyconf.ContainerIDExtension
	extUpstreamScheme = envoyconf.UpstreamSchemeExtension
)

type composeFile struct {
	services map[string]map[string]any
	volumes  map[string]any
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	docs := manifest.Load(t, composeFileName)
	if len(docs) != 1 {
		t.Fatalf("docker-compose.yaml has %d documents; want 1", len(docs))
	}
	cf := composeFile{services: map[string]map[string]any{}}
	svcs, _ := docs[0]["services"].(map[string]any)
	for name, s := range svcs {
		m, ok := s.(map[string]any)
		if !ok {
			t.Fatalf("service %s is not a mapping", name)
		}
		cf.services[name] = m
	}
	cf.volumes, _ = docs[0]["volumes"].(map[string]any)
	return cf
}

func (cf composeFile) service(t *testing.T, name string) map[string]any {
	t.Helper()
	s, ok := cf.services[name]
	if !ok {
		t.Fatalf("no service %q in docker-compose.yaml", name)
	}
	return s
}

func command(s map[string]any) []string { return manifest.Strings(manifest.List(s, "command")) }

// mounts returns target → source for a service's short-syntax volumes.
func mounts(t *testing.T, s map[string]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, v := range manifest.Strings(manifest.List(s, "volumes")) {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			t.Fatalf("volume %q: want source:target[:mode]", v)
		}
		out[parts[1]] = parts[0]
	}
	return out
}

// volumeFor returns the source mounted over the directory holding path.
func volumeFor(t *testing.T, s map[string]any, path string) string {
	t.Helper()
	for target, src := range mounts(t, s) {
		if strings.HasPrefix(path, target+"/") {
			return src
		}
	}
	return ""
}

func TestComposeFileReferences(t *testing.T) {
	cf := loadCompose(t)
	for _, want := range []string{"demo-init", "extauthz", "echo", "envoy", "sandbox"} {
		cf.service(t, want)
	}
	for name, s := range cf.services {
		if b := manifest.Get(s, "build"); b != nil {
			ctx := filepath.Clean(manifest.String(b, "context"))
			if fi, err := os.Stat(ctx); err != nil || !fi.IsDir() {
				t.Errorf("%s: build context %s is not a directory", name, ctx)
			}
			df := manifest.String(b, "dockerfile")
			if df == "" {
				df = "Dockerfile"
			}
			var stages []string
			for _, st := range parseDockerfile(t, filepath.Join(ctx, df)) {
				stages = append(stages, st.name)
			}
			if target := manifest.String(b, "target"); !slices.Contains(stages, target) {
				t.Errorf("%s: build target %q is not a stage of %s (%v)", name, target, df, stages)
			}
		} else if manifest.String(s, "image") == "" {
			t.Errorf("%s: neither build nor image", name)
		}
		for target, src := range mounts(t, s) {
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s: bind mount %s → %s: %v", name, src, target, err)
				}
			} else if _, ok := cf.volumes[src]; !ok {
				t.Errorf("%s: named volume %q is not declared", name, src)
			}
		}
		deps, _ := manifest.Get(s, "depends_on").(map[string]any)
		for dep := range deps {
			ds, ok := cf.services[dep]
			if !ok {
				t.Errorf("%s depends on unknown service %q", name, dep)
				continue
			}
			switch cond := manifest.String(deps[dep], "condition"); cond {
			case "service_started":
			case "service_healthy":
				if manifest.Get(ds, "healthcheck", "test") == nil {
					t.Errorf("%s waits for %s to be healthy, which has no healthcheck", name, dep)
				}
			case "service_completed_successfully":
				if manifest.Get(ds, "restart") != nil {
					t.Errorf("%s waits for %s to complete, which restarts", name, dep)
				}
			default:
				t.Errorf("%s depends on %s with condition %q", name, dep, cond)
			}
		}
	}
	hc := manifest.Strings(manifest.List(cf.service(t, "envoy"), "healthcheck", "test"))
	script := hc[len(hc)-1]
	if src := mounts(t, cf.service(t, "envoy"))[script]; src == "" {
		t.Errorf("envoy healthcheck runs %s, which is not mounted", script)
	}
}

// TestComposeMatchesEnvoyConfig: service names and ports in the demo Envoy
// config, the compose file, the demo subject and the init script agree.
func TestComposeMatchesEnvoyConfig(t *testing.T) {
	cf := loadCompose(t)
	envoySvc := cf.service(t, "envoy")
	if img, want := manifest.String(envoySvc, "image"), "envoyproxy/envoy:v"+envoyproc.Version; img != want {
		t.Errorf("envoy image %q; want %q, the release CI tests the configs against", img, want)
	}
	if guide := string(manifest.ReadFile(t, filepath.Join(repoRoot, "docs", "envoy.md"))); !strings.Contains(guide, "`"+manifest.String(envoySvc, "image")+"`") {
		t.Errorf("docs/envoy.md does not name the compose Envoy image %s", manifest.String(envoySvc, "image"))
	}
	cfgPath := ""
	if cmd := command(envoySvc); len(cmd) > 0 {
		if i := slices.Index(cmd, "-c"); i >= 0 && i+1 < len(cmd) {
			cfgPath = cmd[i+1]
		}
	}
	src := mounts(t, envoySvc)[cfgPath]
	if filepath.Clean(src) != envoyConfig {
		t.Fatalf("envoy -c %s is mounted from %q; want %s", cfgPath, src, envoyConfig)
	}
	bs, err := envoyconf.Parse(manifest.ReadFile(t, envoyConfig))
	if err != nil {
		t.Fatal(err)
	}

	// Every cluster endpoint is a compose service on the port it listens on.
	listenPort := map[string]int{
		"extauthz": addrPort(t, command(cf.service(t, "extauthz")), "grpc-addr", serverGRPCPort),
		"echo":     addrPort(t, command(cf.service(t, "echo")), "addr", 8080),
	}
	for _, cl := range bs.GetStaticResources().GetClusters() {
		for _, le := range cl.GetLoadAssignment().GetEndpoints() {
			for _, lb := range le.GetLbEndpoints() {
				sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
				want, ok := listenPort[sa.GetAddress()]
				if !ok {
					t.Errorf("cluster %q: endpoint %q is not a compose service", cl.GetName(), sa.GetAddress())
				} else if int(sa.GetPortValue()) != want {
					t.Errorf("cluster %q: port %d; %s listens on %d", cl.GetName(), sa.GetPortValue(), sa.GetAddress(), want)
				}
			}
		}
	}
	if listenPort["extauthz"] != serverGRPCPort {
		t.Errorf("extauthz gRPC port %d; want the server's %d", listenPort["extauthz"], serverGRPCPort)
	}

	// The sandbox uses the Envoy listener as its proxy, for hosts Envoy routes.
	lis := bs.GetStaticResources().GetListeners()[0].GetAddress().GetSocketAddress()
	sandbox := cf.service(t, "sandbox")
	args := command(sandbox)
	proxy, _ := manifest.Flag(args, "proxy")
	if u, err := url.Parse(proxy); err != nil || u.Hostname() != "envoy" || u.Port() != strconv.Itoa(int(lis.GetPortValue())) {
		t.Errorf("sandbox --proxy %q; want http://envoy:%d", proxy, lis.GetPortValue())
	}
	if !slices.Contains(manifest.Strings(manifest.List(envoySvc, "ports")), "127.0.0.1:10000:10000") {
		t.Error("envoy does not publish 127.0.0.1:10000 for trying requests by hand")
	}
	hcm := envoyconf.FirstHCM(t, envoyConfig)
	var ext map[string]string
	for _, flag := range []string{"allowed-url", "denied-url"} {
		raw, _ := manifest.Flag(args, flag)
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("sandbox --%s: %v", flag, err)
		}
		routed := false
		for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
			if slices.Contains(vh.GetDomains(), u.Host) && vh.GetRoutes()[0].GetRoute() != nil {
				routed = true
				pr := &extauthzv3.ExtAuthzPerRoute{}
				if err := vh.GetRoutes()[0].GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"].UnmarshalTo(pr); err != nil {
					t.Fatal(err)
				}
				ext = pr.GetCheckSettings().GetContextExtensions()
			}
		}
		if !routed {
			t.Errorf("sandbox --%s host %q is not routed to an upstream by envoy-compose.yaml", flag, u.Host)
		}
	}

	// The capability is bound to the container id Envoy declares, and its
	// plain-http targets are dev hosts for both issue and serve.
	var subject struct {
		OutboundContainerID string            `json:"outboundContainerId"`
		Targets             map[string]string `json:"targets"`
	}
	if err := json.Unmarshal(manifest.ReadFile(t, "demo-subject.json"), &subject); err != nil {
		t.Fatal(err)
	}
	if subject.OutboundContainerID == "" || subject.OutboundContainerID != ext[extContainerID] {
		t.Errorf("subject outboundContainerId %q != Envoy's outbound_container_id %q", subject.OutboundContainerID, ext[extContainerID])
	}
	script := string(manifest.ReadFile(t, "demo-init.sh"))
	m := regexp.MustCompile(`--dev-http-hosts[ =](\S+)`).FindStringSubmatch(script)
	if m == nil {
		t.Fatal("demo-init.sh does not pass --dev-http-hosts to issue")
	}
	serveHosts, _ := manifest.Flag(command(cf.service(t, "extauthz")), "dev-http-hosts")
	for name, target := range subject.Targets {
		u, err := url.Parse(target)
		if err != nil {
			t.Fatalf("target %s: %v", name, err)
		}
		if u.Scheme != ext[extUpstreamScheme] {
			t.Errorf("target %s scheme %q != Envoy's upstream_scheme %q", name, u.Scheme, ext[extUpstreamScheme])
		}
		for what, hosts := range map[string]string{"serve": serveHosts, "issue": m[1]} {
			if !slices.Contains(strings.Split(hosts, ","), u.Hostname()) {
				t.Errorf("target host %q is not in %s --dev-http-hosts %q", u.Hostname(), what, hosts)
			}
		}
	}
}

// TestComposeSecretsFlow: the key reaches extauthz, the capability reaches
// the sandbox, and the key never reaches the sandbox.
func TestComposeSecretsFlow(t *testing.T) {
	cf := loadCompose(t)
	initSvc, srv, sandbox := cf.service(t, "demo-init"), cf.service(t, "extauthz"), cf.service(t, "sandbox")
	script := string(manifest.ReadFile(t, "demo-init.sh"))

	keyFile, _ := manifest.Flag(command(srv), "key-file")
	capFile, _ := manifest.Flag(command(sandbox), "capability-file")
	for _, f := range []struct{ what, path string }{{"key", keyFile}, {"capability", capFile}} {
		if !strings.Contains(script, f.path) {
			t.Errorf("demo-init.sh does not write the %s to %s", f.what, f.path)
		}
	}
	keyVol, capVol := volumeFor(t, srv, keyFile), volumeFor(t, sandbox, capFile)
	if keyVol == "" || keyVol != volumeFor(t, initSvc, keyFile) {
		t.Errorf("extauthz reads %s from volume %q, which demo-init does not write", keyFile, keyVol)
	}
	if capVol == "" || capVol != volumeFor(t, initSvc, capFile) {
		t.Errorf("sandbox reads %s from volume %q, which demo-init does not write", capFile, capVol)
	}
	for target, src := range mounts(t, sandbox) {
		if src == keyVol {
			t.Errorf("the sandbox mounts the key volume %q at %s", src, target)
		}
	}
	for _, s := range []map[string]any{srv, sandbox} {
		for _, v := range manifest.Strings(manifest.List(s, "volumes")) {
			if !strings.HasSuffix(v, ":ro") {
				t.Errorf("volume %q is mounted read-write outside demo-init", v)
			}
		}
	}
}

// addrPort returns the port of a --flag=host:port in args, or def.
func addrPort(t *testing.T, args []string, flag string, def int) int {
	t.Helper()
	v, ok := manifest.Flag(args, flag)
	if !ok {
		return def
	}
	_, p, err := net.SplitHostPort(v)
	if err != nil {
		t.Fatalf("--%s %q: %v", flag, v, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("--%s %q: %v", flag, v, err)
	}
	return n
}

// TestComposeStopGrace: Docker waits longer than extauthz's drain delay plus
// its shutdown timeout before it kills the container, so a stop never cuts
// a check off mid-drain.
func TestComposeStopGrace(t *testing.T) {
	srv := loadCompose(t).service(t, "extauthz")
	args := command(srv)
	durationFlag := func(name string, def time.Duration) time.Duration {
		v, ok := manifest.Flag(args, name)
		if !ok {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("--%s=%q: %v", name, v, err)
		}
		return d
	}
	need := durationFlag("drain-delay", 15*time.Second) + durationFlag("shutdown-timeout", 15*time.Second)
	grace := 10 * time.Second // Docker's default
	if v, ok := srv["stop_grace_period"].(string); ok {
		var err error
		if grace, err = time.ParseDuration(v); err != nil {
			t.Fatalf("stop_grace_period %q: %v", v, err)
		}
	}
	if grace <= need {
		t.Errorf("stop_grace_period %v; want more than --drain-delay + --shutdown-timeout = %v", grace, need)
	}
}
