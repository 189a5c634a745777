package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/extauthz/extauthz/internal/testutil/manifest"
)

// floodCap is the admin listener's connection cap in the flood test, small
// so that a handful of connections fill it; the shipped default is 1024.
const floodCap = 32

// TestIstioLivenessSurvivesAdminFlood runs extauthz with the Istio
// Deployment's arguments and fills its admin listener with idle connections,
// as any workload in the mesh may (the admin port admits every caller, for
// probes and scrapers). The Deployment's liveness probe, executed as the
// kubelet would, still passes: a flood must not get every replica restarted
// at once. The admin listener's own /healthz fails meanwhile, which shows
// the flood bites.
func TestIstioLivenessSurvivesAdminFlood(t *testing.T) {
	container := istioContainer(t)
	probe, ok := manifest.Get(container, "livenessProbe").(map[string]any)
	if !ok {
		t.Fatal("the Istio Deployment has no livenessProbe")
	}
	args := []string{"--admin-addr", "127.0.0.1:0", "--admin-max-connections", strconv.Itoa(floodCap)}
	for _, a := range manifest.Strings(manifest.List(container, "args"))[1:] {
		if !strings.HasPrefix(a, "--key-file") { // this test's key instead
			args = append(args, a)
		}
	}
	keyFile, _ := newKey(t)
	x := startServe(t, extauthzBin(t), keyFile, false, args...)
	ports := map[int]string{} // the container's ports, where this test's extauthz listens
	for _, p := range manifest.List(container, "ports") {
		switch manifest.String(p, "name") {
		case "grpc":
			ports[manifest.Int(p, "containerPort")] = x.grpc
		case "admin":
			ports[manifest.Int(p, "containerPort")] = x.admin
		default:
			t.Fatalf("container port %v: add where this test's extauthz serves it", p)
		}
	}
	addrOf := func(port any) string {
		switch p := port.(type) {
		case string:
			for _, cp := range manifest.List(container, "ports") {
				if manifest.String(cp, "name") == p {
					return ports[manifest.Int(cp, "containerPort")]
				}
			}
		case float64:
			return ports[int(p)]
		}
		t.Fatalf("probe port %v is not a container port", port)
		return ""
	}

	if err := runProbe(probe, addrOf); err != nil {
		t.Fatalf("the liveness probe fails before any flood: %v", err)
	}
	for i := range floodCap {
		c, err := net.DialTimeout("tcp", x.admin, 5*time.Second)
		if err != nil {
			t.Fatalf("flood connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
	}
	healthz := map[string]any{"httpGet": map[string]any{"path": "/healthz", "port": "admin"}}
	if err := runProbe(healthz, addrOf); err == nil {
		t.Error("/healthz on the admin listener still answers: the flood did not fill its cap, so this test shows nothing")
	}
	if err := runProbe(probe, addrOf); err != nil {
		t.Errorf("the Istio liveness probe fails while the admin listener is flooded: %v", err)
	}
}

// istioContainer is the extauthz container of the Istio Deployment.
func istioContainer(t *testing.T) map[string]any {
	t.Helper()
	for _, doc := range manifest.Load(t, filepath.Join("..", "deploy", "istio", "extauthz.yaml")) {
		if manifest.String(doc, "kind") == "Deployment" {
			if c, ok := manifest.Get(doc, "spec", "template", "spec", "containers", 0).(map[string]any); ok {
				return c
			}
		}
	}
	t.Fatal("no Deployment with a container in deploy/istio/extauthz.yaml")
	return nil
}

// runProbe runs a Kubernetes probe the way the kubelet does, within its
// timeoutSeconds (default 1): httpGet passes on a status from 200 to 399,
// tcpSocket when the connection opens, grpc on SERVING. addrOf maps the
// probe's port to an address.
func runProbe(probe map[string]any, addrOf func(port any) string) error {
	timeout := time.Second
	if s := manifest.Int(probe, "timeoutSeconds"); s > 0 {
		timeout = time.Duration(s) * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	switch {
	case manifest.Get(probe, "httpGet") != nil:
		url := "http://" + addrOf(manifest.Get(probe, "httpGet", "port")) + manifest.String(probe, "httpGet", "path")
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return err
		}
		resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}).Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	case manifest.Get(probe, "tcpSocket") != nil:
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addrOf(manifest.Get(probe, "tcpSocket", "port")))
		if err != nil {
			return err
		}
		return c.Close()
	case manifest.Get(probe, "grpc") != nil:
		cc, err := grpc.NewClient(addrOf(manifest.Get(probe, "grpc", "port")), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer cc.Close()
		resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: manifest.String(probe, "grpc", "service")})
		if err != nil {
			return err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("gRPC health: %v", resp.GetStatus())
		}
		return nil
	}
	return fmt.Errorf("probe %v: not an httpGet, tcpSocket or grpc probe", probe)
}
