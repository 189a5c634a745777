package envoy

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	connv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/extauthz/extauthz/internal/testutil/envoyconf"
	"github.com/extauthz/extauthz/internal/testutil/manifest"
)

// The edges every shipped Envoy config has besides the security invariants
// of envoycheck_test.go: what an Envoy user expects of an egress proxy, and
// what makes a crashed extauthz replica cost only the checks in flight to it
// (e2e/envoy_crash_test.go runs that in a real Envoy).
const (
	edgeConnLimit   = "connection-limit"  // overload manager's global downstream cap
	edgeCatchAll    = "catch-all"         // unrouted hosts get a local deny
	edgeCatchAllJS  = "catch-all-json"    // ... in extauthz's JSON shape
	edgeRetry       = "authz-retry"       // the check is retried elsewhere
	edgeRetryHost   = "authz-retry-host"  // ... never on the host that failed
	edgeRetryLimit  = "authz-retry-limit" // ... for every check in flight
	edgeOutlier     = "authz-outlier"     // a replica failing locally is ejected
	edgeMergeWindow = "authz-merge"       // ... at once
	edgeHealthCheck = "authz-health"      // a drained replica is left in time
)

// globalConnMonitor is the resource monitor Envoy enforces its downstream
// connection cap with.
const globalConnMonitor = "envoy.resource_monitors.global_downstream_max_connections"

// drainDelay is extauthz serve's default --drain-delay: Envoy's health check
// must mark a draining replica unhealthy within it.
const drainDelay = 15 * time.Second

// edgeView is the parts of a config the edges live in, unpacked.
type edgeView struct {
	bs      *bootstrapv3.Bootstrap
	hcm     *hcmv3.HttpConnectionManager
	authz   *extauthzv3.ExtAuthz
	cluster *clusterv3.Cluster // the one ext_authz asks
	repack  func()             // writes hcm and authz back into bs
}

func newEdgeView(t *testing.T, data []byte) *edgeView {
	t.Helper()
	bs, err := envoyconf.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	v := &edgeView{bs: bs, hcm: &hcmv3.HttpConnectionManager{}, authz: &extauthzv3.ExtAuthz{}}
	hcmAny := bs.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig()
	if err := hcmAny.UnmarshalTo(v.hcm); err != nil {
		t.Fatal(err)
	}
	authzAny := v.hcm.GetHttpFilters()[0].GetTypedConfig()
	if err := authzAny.UnmarshalTo(v.authz); err != nil {
		t.Fatalf("the first HTTP filter is not ext_authz: %v", err)
	}
	name := v.authz.GetGrpcService().GetEnvoyGrpc().GetClusterName()
	if name == "" {
		name = v.authz.GetHttpService().GetServerUri().GetCluster()
	}
	for _, c := range bs.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			v.cluster = c
		}
	}
	if v.cluster == nil {
		t.Fatalf("ext_authz asks cluster %q, which does not exist", name)
	}
	v.repack = func() {
		must := func(a *anypb.Any, m proto.Message) {
			if err := a.MarshalFrom(m); err != nil {
				t.Fatal(err)
			}
		}
		must(authzAny, v.authz)
		must(hcmAny, v.hcm)
	}
	return v
}

// retryPolicy is the ext_authz service's retry policy, gRPC or HTTP.
func (v *edgeView) retryPolicy() *corev3.RetryPolicy {
	if g := v.authz.GetGrpcService(); g != nil {
		return g.GetRetryPolicy()
	}
	return v.authz.GetHttpService().GetRetryPolicy()
}

// serviceTimeout bounds a whole check, retries included.
func (v *edgeView) serviceTimeout() time.Duration {
	if g := v.authz.GetGrpcService(); g != nil {
		return g.GetTimeout().AsDuration()
	}
	return v.authz.GetHttpService().GetServerUri().GetTimeout().AsDuration()
}

// checkEdges returns the edges a config lacks, as problems.
func checkEdges(v *edgeView) []problem {
	var ps []problem
	add := func(check, format string, args ...any) {
		ps = append(ps, problem{check, fmt.Sprintf(format, args...)})
	}

	limit := &connv3.DownstreamConnectionsConfig{}
	monitored := false
	for _, m := range v.bs.GetOverloadManager().GetResourceMonitors() {
		if m.GetName() == globalConnMonitor && m.GetTypedConfig().UnmarshalTo(limit) == nil && limit.GetMaxActiveDownstreamConnections() > 0 {
			monitored = true
		}
	}
	if !monitored || !v.bs.GetAdmin().GetIgnoreGlobalConnLimit() {
		add(edgeConnLimit, "want overload_manager with %s, and admin.ignore_global_conn_limit so a flood cannot lock out the admin interface", globalConnMonitor)
	}

	var catchAll *routev3.VirtualHost
	for _, vh := range v.hcm.GetRouteConfig().GetVirtualHosts() {
		if slices.Equal(vh.GetDomains(), []string{"*"}) {
			catchAll = vh
		}
	}
	if catchAll == nil || len(catchAll.GetRoutes()) == 0 {
		add(edgeCatchAll, "no virtual host for domain \"*\": an unrouted host gets Envoy's 404")
	}
	for _, r := range catchAll.GetRoutes() {
		dr := r.GetDirectResponse()
		if dr == nil || dr.GetStatus() != 403 {
			add(edgeCatchAll, "catch-all route %q does not answer 403 itself", r.GetName())
			continue
		}
		ct := ""
		for _, h := range r.GetResponseHeadersToAdd() {
			if strings.EqualFold(h.GetHeader().GetKey(), "content-type") && h.GetAppendAction() == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				ct = h.GetHeader().GetValue()
			}
		}
		if body := dr.GetBody().GetInlineString(); ct != "application/json" || body != `{"error":"upstream_not_allowed"}` {
			add(edgeCatchAllJS, "catch-all answers %q with content-type %q; want extauthz's deny: {\"error\":\"upstream_not_allowed\"}, application/json (overwriting Envoy's text/plain)", body, ct)
		}
	}

	timeout := v.serviceTimeout()
	rp := v.retryPolicy()
	on := strings.Split(rp.GetRetryOn(), ",")
	base := rp.GetRetryBackOff().GetBaseInterval().AsDuration()
	perTry := rp.GetRetryBackOff().GetMaxInterval().AsDuration() // Envoy 1.40: per-try timeout = max_interval
	switch {
	case rp == nil:
		add(edgeRetry, "the ext_authz service has no retry_policy: a crashed replica fails every check sent to it until Envoy stops picking it")
	case !slices.Contains(on, "connect-failure") || !slices.Contains(on, "reset") || slices.ContainsFunc(on, isAnswer):
		add(edgeRetry, "retry_on %q; want connect-failure and reset (a crash), and no condition on an answer (extauthz answers 503 to deny)", rp.GetRetryOn())
	case rp.GetNumRetries().GetValue() < 1:
		add(edgeRetry, "num_retries %d; want at least 1", rp.GetNumRetries().GetValue())
	case base == 0 || base > 100*time.Millisecond:
		add(edgeRetry, "back-off base_interval %v; want tens of milliseconds (the default is 1 s, twice the check's timeout)", base)
	case perTry == 0 || 2*perTry+base > timeout:
		add(edgeRetry, "a hung try takes max_interval (%v): two tries and a back-off must fit the check's %v", perTry, timeout)
	case 2*v.cluster.GetConnectTimeout().AsDuration() > timeout:
		add(edgeRetry, "connect_timeout %v: a replica that does not answer leaves no time in the check's %v for a retry", v.cluster.GetConnectTimeout().AsDuration(), timeout)
	}
	previous := false
	for _, p := range rp.GetRetryHostPredicate() {
		previous = previous || p.GetName() == "envoy.retry_host_predicates.previous_hosts"
	}
	if !previous || rp.GetHostSelectionRetryMaxAttempts() < 1 {
		add(edgeRetryHost, "no previous_hosts retry host predicate (with host_selection_retry_max_attempts): a retry may go back to the replica that failed")
	}

	cl := v.cluster
	maxRequests, maxRetries := uint32(1024), uint32(3) // Envoy's defaults
	for _, th := range cl.GetCircuitBreakers().GetThresholds() {
		if th.GetPriority() == corev3.RoutingPriority_DEFAULT {
			if th.GetMaxRequests() != nil {
				maxRequests = th.GetMaxRequests().GetValue()
			}
			if th.GetMaxRetries() != nil {
				maxRetries = th.GetMaxRetries().GetValue()
			}
		}
	}
	if maxRetries < maxRequests {
		add(edgeRetryLimit, "cluster %q allows %d concurrent retries for %d requests: the checks in flight to a crashed replica beyond that fail", cl.GetName(), maxRetries, maxRequests)
	}
	od := cl.GetOutlierDetection()
	if !od.GetSplitExternalLocalOriginErrors() || od.GetConsecutiveLocalOriginFailure().GetValue() == 0 ||
		od.GetConsecutiveLocalOriginFailure().GetValue() > 5 || od.GetMaxEjectionPercent().GetValue() < 50 ||
		(od.GetEnforcingConsecutiveLocalOriginFailure() != nil && od.GetEnforcingConsecutiveLocalOriginFailure().GetValue() < 100) {
		add(edgeOutlier, "cluster %q: want outlier_detection with split_external_local_origin_errors, consecutive_local_origin_failure 1-5 enforced, and max_ejection_percent >= 50 (one of two replicas)", cl.GetName())
	}
	if w := cl.GetCommonLbConfig().GetUpdateMergeWindow(); w == nil || w.AsDuration() != 0 {
		add(edgeMergeWindow, "cluster %q: update_merge_window is not 0: Envoy keeps picking an ejected replica for up to a second", cl.GetName())
	}
	hcs := cl.GetHealthChecks()
	if len(hcs) != 1 {
		add(edgeHealthCheck, "cluster %q has %d health checks; want 1", cl.GetName(), len(hcs))
		return ps
	}
	hc := hcs[0]
	interval, noTraffic := hc.GetInterval().AsDuration(), hc.GetNoTrafficInterval().AsDuration()
	unhealthyAfter := time.Duration(hc.GetUnhealthyThreshold().GetValue())*interval + hc.GetTimeout().AsDuration()
	readyz := hc.GetGrpcHealthCheck() != nil || hc.GetHttpHealthCheck().GetPath() == "/readyz"
	switch {
	case !readyz:
		add(edgeHealthCheck, "cluster %q: the health check asks neither grpc.health.v1 nor /readyz, which turn with a drain", cl.GetName())
	case hc.GetHttpHealthCheck() != nil && !healthOnAdminPort(cl):
		add(edgeHealthCheck, "cluster %q: /readyz is on extauthz's admin listener: every endpoint needs health_check_config.port_value", cl.GetName())
	case unhealthyAfter >= drainDelay:
		add(edgeHealthCheck, "cluster %q: a draining replica is unhealthy after %v, not within extauthz's drain delay (%v)", cl.GetName(), unhealthyAfter, drainDelay)
	case noTraffic == 0 || noTraffic > interval:
		add(edgeHealthCheck, "cluster %q: no_traffic_interval %v; want it no longer than the interval (%v): the default 60 s leaves a new Envoy checking once a minute", cl.GetName(), noTraffic, interval)
	}
	return ps
}

// healthOnAdminPort reports whether every endpoint of cl sends its health
// checks to another port than the one it serves on.
func healthOnAdminPort(cl *clusterv3.Cluster) bool {
	n := 0
	for _, le := range cl.GetLoadAssignment().GetEndpoints() {
		for _, lb := range le.GetLbEndpoints() {
			ep := lb.GetEndpoint()
			hp := ep.GetHealthCheckConfig().GetPortValue()
			if hp == 0 || hp == ep.GetAddress().GetSocketAddress().GetPortValue() {
				return false
			}
			n++
		}
	}
	return n > 0
}

// isAnswer reports whether a retry_on condition retries on something other
// than a failed connection or stream.
func isAnswer(cond string) bool {
	switch cond {
	case "connect-failure", "refused-stream", "reset", "reset-before-request":
		return false
	}
	return true
}

// TestShippedEnvoyConfigsHaveTheEdges: every shipped config has every edge.
func TestShippedEnvoyConfigsHaveTheEdges(t *testing.T) {
	for _, name := range shippedConfigs(t) {
		t.Run(name, func(t *testing.T) {
			for _, p := range checkEdges(newEdgeView(t, manifest.ReadFile(t, name))) {
				t.Errorf("%s: %v", name, p)
			}
		})
	}
}

// TestEdgeChecksFail: each check fails when its edge is taken out of a
// shipped config, and no other check does.
func TestEdgeChecksFail(t *testing.T) {
	catchAllRoute := func(v *edgeView) *routev3.Route {
		vhs := v.hcm.GetRouteConfig().GetVirtualHosts()
		return vhs[len(vhs)-1].GetRoutes()[0]
	}
	mutations := []struct {
		check  string
		name   string
		mutate func(v *edgeView)
	}{
		{edgeConnLimit, "no overload manager", func(v *edgeView) { v.bs.OverloadManager = nil }},
		{edgeConnLimit, "admin counted", func(v *edgeView) { v.bs.Admin.IgnoreGlobalConnLimit = false }},
		{edgeCatchAll, "no catch-all", func(v *edgeView) {
			rc := v.hcm.GetRouteConfig()
			rc.VirtualHosts = rc.VirtualHosts[:len(rc.VirtualHosts)-1]
		}},
		{edgeCatchAllJS, "text/plain deny", func(v *edgeView) { catchAllRoute(v).ResponseHeadersToAdd = nil }},
		{edgeRetry, "no retry policy", func(v *edgeView) {
			rp := v.retryPolicy()
			*rp = corev3.RetryPolicy{RetryHostPredicate: rp.RetryHostPredicate, HostSelectionRetryMaxAttempts: 5}
		}},
		{edgeRetry, "1 s back-off", func(v *edgeView) { v.retryPolicy().RetryBackOff.BaseInterval.Seconds = 1 }},
		{edgeRetry, "retries on 5xx", func(v *edgeView) { v.retryPolicy().RetryOn += ",5xx" }},
		{edgeRetry, "1 s connect timeout", func(v *edgeView) { v.cluster.ConnectTimeout.Seconds = 1 }},
		{edgeRetryHost, "no host predicate", func(v *edgeView) { v.retryPolicy().RetryHostPredicate = nil }},
		{edgeRetryLimit, "default retry limit", func(v *edgeView) { v.cluster.CircuitBreakers = nil }},
		{edgeOutlier, "no outlier detection", func(v *edgeView) { v.cluster.OutlierDetection = nil }},
		{edgeOutlier, "one ejection in ten", func(v *edgeView) { v.cluster.OutlierDetection.MaxEjectionPercent.Value = 10 }},
		{edgeMergeWindow, "default merge window", func(v *edgeView) { v.cluster.CommonLbConfig = nil }},
		{edgeHealthCheck, "no-traffic default", func(v *edgeView) { v.cluster.HealthChecks[0].NoTrafficInterval = nil }},
		{edgeHealthCheck, "slow health check", func(v *edgeView) { v.cluster.HealthChecks[0].Interval.Seconds = 10 }},
		{edgeHealthCheck, "no health check", func(v *edgeView) { v.cluster.HealthChecks = nil }},
	}
	for _, name := range shippedConfigs(t) {
		for _, m := range mutations {
			t.Run(name+"/"+m.name, func(t *testing.T) {
				v := newEdgeView(t, manifest.ReadFile(t, name))
				m.mutate(v)
				v.repack()
				got := checkEdges(v)
				if len(got) == 0 {
					t.Fatalf("passed every edge check; want %s to fail", m.check)
				}
				for _, p := range got {
					if p.check != m.check {
						t.Errorf("failed %v; want only %s", p, m.check)
					}
				}
			})
		}
	}
}

// TestComposeDemoAsksExtauthzLikeProduction: the compose demo's extauthz
// cluster and connection limit are envoy.yaml's, its address aside, so the
// crash test of envoy.yaml speaks for the demo too.
func TestComposeDemoAsksExtauthzLikeProduction(t *testing.T) {
	prod := newEdgeView(t, manifest.ReadFile(t, "envoy.yaml"))
	demo := newEdgeView(t, manifest.ReadFile(t, "envoy-compose.yaml"))
	p, d := proto.Clone(prod.cluster).(*clusterv3.Cluster), proto.Clone(demo.cluster).(*clusterv3.Cluster)
	p.LoadAssignment, d.LoadAssignment = nil, nil
	if !proto.Equal(p, d) {
		t.Errorf("the extauthz clusters of envoy.yaml and envoy-compose.yaml differ beyond their endpoints")
	}
	if !proto.Equal(prod.bs.GetOverloadManager(), demo.bs.GetOverloadManager()) {
		t.Errorf("overload_manager differs between envoy.yaml and envoy-compose.yaml")
	}
}

// shippedConfigs are the Envoy bootstraps in this directory (envoy*.yaml).
func shippedConfigs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("envoy*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("found %v; want at least envoy.yaml, envoy-compose.yaml, envoy-http-service.yaml", files)
	}
	return files
}
