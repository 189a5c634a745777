package envoy

import (
	"fmt"
	"sort"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/extauthz/extauthz/internal/testutil/envoyconf"
)

// Names of the checks, so a test can assert which one a broken config fails.
const (
	checkParse            = "parse"
	checkValidate         = "validate"
	checkValidateTyped    = "validate-typed-config"
	checkClusterRef       = "cluster-ref"
	checkFilterOrder      = "filter-order"
	checkFailClosed       = "fail-closed"
	checkAPIVersion       = "api-version"
	checkAbsoluteURL      = "absolute-url"
	checkAuthzCluster     = "authz-cluster"
	checkAuthzDisabled    = "authz-disabled"
	checkContextExt       = "context-extensions"
	checkScheme           = "upstream-scheme"
	checkCapabilityHeader = "capability-header"
	checkTLS              = "tls"
	checkSNI              = "sni"
	checkTLSVerify        = "tls-verify"
)

const (
	// localDemoNamespace/localDemoKey mark a cluster (metadata.filter_metadata)
	// as a local demo upstream that may be reached without TLS.
	localDemoNamespace = "extauthz.config"
	localDemoKey       = "local_demo"

	capabilityHeader  = "x-kilo-capability"
	extContainerID    = envoyconf.ContainerIDExtension
	extUpstreamScheme = envoyconf.UpstreamSchemeExtension
	httpProtocolOpts  = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// problem is one failed check.
type problem struct {
	check string
	msg   string
}

func (p problem) String() string { return p.check + ": " + p.msg }

type checkOptions struct {
	// allowLocalDemo lets clusters marked local_demo skip TLS (compose demo only).
	allowLocalDemo bool
}

type checker struct {
	opts     checkOptions
	problems []problem
	clusters map[string]*clusterv3.Cluster
	// authzClusters maps each cluster named by an ext_authz grpc_service to
	// where it was named.
	authzClusters map[string]string
}

func (c *checker) addf(check, format string, args ...any) {
	c.problems = append(c.problems, problem{check, fmt.Sprintf(format, args...)})
}

// checkEnvoyConfig runs every check on an Envoy bootstrap in YAML and returns
// the problems found (none for a good config).
func checkEnvoyConfig(data []byte, opts checkOptions) []problem {
	bs, err := envoyconf.Parse(data)
	if err != nil {
		return []problem{{checkParse, err.Error()}}
	}
	c := &checker{
		opts:          opts,
		clusters:      map[string]*clusterv3.Cluster{},
		authzClusters: map[string]string{},
	}
	if err := bs.ValidateAll(); err != nil {
		c.addf(checkValidate, "%v", err)
	}
	c.walk(bs.ProtoReflect(), "bootstrap")
	for _, cl := range bs.GetStaticResources().GetClusters() {
		c.clusters[cl.GetName()] = cl
	}
	hcms := 0
	for _, l := range bs.GetStaticResources().GetListeners() {
		chains := l.GetFilterChains()
		if d := l.GetDefaultFilterChain(); d != nil {
			chains = append(chains, d)
		}
		for _, fc := range chains {
			for _, f := range fc.GetFilters() {
				hcm := &hcmv3.HttpConnectionManager{}
				if !f.GetTypedConfig().MessageIs(hcm) {
					continue
				}
				if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
					c.addf(checkParse, "listener %q: %v", l.GetName(), err)
					continue
				}
				hcms++
				c.checkHCM(fmt.Sprintf("listener %q", l.GetName()), hcm)
			}
		}
	}
	if hcms == 0 {
		c.addf(checkFilterOrder, "no http_connection_manager in any listener")
	}
	c.checkClusters()
	return c.problems
}

// walk calls ValidateAll on every google.protobuf.Any below m, unpacked,
// recursively: Bootstrap.ValidateAll stops at typed_config.
func (c *checker) walk(m protoreflect.Message, path string) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		isMsg := func(k protoreflect.Kind) bool {
			return k == protoreflect.MessageKind || k == protoreflect.GroupKind
		}
		switch {
		case fd.IsList():
			if isMsg(fd.Kind()) {
				for i, l := 0, v.List(); i < l.Len(); i++ {
					c.visit(l.Get(i).Message(), fmt.Sprintf("%s[%d]", p, i))
				}
			}
		case fd.IsMap():
			if isMsg(fd.MapValue().Kind()) {
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					c.visit(mv.Message(), fmt.Sprintf("%s[%s]", p, k.String()))
					return true
				})
			}
		case isMsg(fd.Kind()):
			c.visit(v.Message(), p)
		}
		return true
	})
}

func (c *checker) visit(m protoreflect.Message, path string) {
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		c.walk(m, path)
		return
	}
	inner, err := anypb.UnmarshalNew(a, proto.UnmarshalOptions{})
	if err != nil {
		c.addf(checkValidateTyped, "%s: cannot unpack %s: %v", path, a.GetTypeUrl(), err)
		return
	}
	if v, ok := inner.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			c.addf(checkValidateTyped, "%s (%s): %v", path, a.GetTypeUrl(), err)
		}
	}
	c.walk(inner.ProtoReflect(), path+"<"+string(inner.ProtoReflect().Descriptor().Name())+">")
}

func (c *checker) checkHCM(where string, hcm *hcmv3.HttpConnectionManager) {
	if !hcm.GetHttpProtocolOptions().GetAllowAbsoluteUrl().GetValue() {
		c.addf(checkAbsoluteURL, "%s: http_protocol_options.allow_absolute_url is not true; sandboxes use the proxy with absolute-form requests", where)
	}
	authzName, authzIdx, routerIdx := "", -1, -1
	for i, f := range hcm.GetHttpFilters() {
		switch tc := f.GetTypedConfig(); {
		case tc.MessageIs(&extauthzv3.ExtAuthz{}):
			if authzIdx >= 0 {
				continue
			}
			authzName, authzIdx = f.GetName(), i
			if f.GetDisabled() {
				c.addf(checkAuthzDisabled, "%s: the ext_authz filter is disabled by default", where)
			}
			c.checkExtAuthz(where, tc)
		case tc.MessageIs(&routerv3.Router{}):
			if routerIdx < 0 {
				routerIdx = i
			}
		}
	}
	switch {
	case authzIdx < 0:
		c.addf(checkFilterOrder, "%s: no ext_authz filter", where)
	case routerIdx < 0:
		c.addf(checkFilterOrder, "%s: no router filter", where)
	case authzIdx > routerIdx:
		c.addf(checkFilterOrder, "%s: ext_authz (filter %d) must precede the router (filter %d)", where, authzIdx, routerIdx)
	}
	rc := hcm.GetRouteConfig()
	if rc == nil {
		c.addf(checkClusterRef, "%s: route_config must be inline (RDS cannot be checked)", where)
		return
	}
	c.checkRoutes(where, rc, authzName)
}

func (c *checker) checkExtAuthz(where string, tc *anypb.Any) {
	ea := &extauthzv3.ExtAuthz{}
	if err := tc.UnmarshalTo(ea); err != nil {
		c.addf(checkParse, "%s: ext_authz: %v", where, err)
		return
	}
	if ea.GetFailureModeAllow() {
		c.addf(checkFailClosed, "%s: ext_authz failure_mode_allow is true: requests would pass when extauthz is down", where)
	}
	if ea.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		c.addf(checkAPIVersion, "%s: ext_authz transport_api_version is %v, want V3", where, ea.GetTransportApiVersion())
	}
	name := ea.GetGrpcService().GetEnvoyGrpc().GetClusterName()
	if name == "" {
		c.addf(checkAuthzCluster, "%s: ext_authz must use grpc_service.envoy_grpc with a cluster", where)
		return
	}
	c.authzClusters[name] = where
}

// perRoute unpacks an ext_authz per-route config; nil when absent.
func (c *checker) perRoute(where string, a *anypb.Any) *extauthzv3.ExtAuthzPerRoute {
	if a == nil {
		return nil
	}
	pr := &extauthzv3.ExtAuthzPerRoute{}
	if err := a.UnmarshalTo(pr); err != nil {
		c.addf(checkParse, "%s: ext_authz per-route config: %v", where, err)
		return nil
	}
	return pr
}

func (c *checker) checkRoutes(where string, rc *routev3.RouteConfiguration, authzName string) {
	removed := lowerSet(nil, rc.GetRequestHeadersToRemove())
	for _, vh := range rc.GetVirtualHosts() {
		vhWhere := fmt.Sprintf("%s virtual_host %q", where, vh.GetName())
		vhRemoved := lowerSet(removed, vh.GetRequestHeadersToRemove())
		vhCfg := c.perRoute(vhWhere, vh.GetTypedPerFilterConfig()[authzName])
		for i, r := range vh.GetRoutes() {
			ra := r.GetRoute()
			if ra == nil {
				continue // direct_response or redirect: nothing is forwarded
			}
			rWhere := fmt.Sprintf("%s route %d", vhWhere, i)
			names := c.routeClusters(rWhere, ra)
			rtCfg := c.perRoute(rWhere, r.GetTypedPerFilterConfig()[authzName])
			// The most specific per-route config decides disabled; context
			// extensions merge, the more specific key winning (Envoy semantics).
			eff := rtCfg
			if eff == nil {
				eff = vhCfg
			}
			if authzName == "" {
				continue // no ext_authz filter: already reported
			}
			if eff.GetDisabled() {
				c.addf(checkAuthzDisabled, "%s: forwards to %v with ext_authz disabled", rWhere, names)
				continue
			}
			ext := map[string]string{}
			for _, cfg := range []*extauthzv3.ExtAuthzPerRoute{vhCfg, rtCfg} {
				for k, v := range cfg.GetCheckSettings().GetContextExtensions() {
					ext[k] = v
				}
			}
			if ext[extContainerID] == "" {
				c.addf(checkContextExt, "%s: no context extension %s: extauthz cannot tell which container is calling", rWhere, extContainerID)
			}
			if _, ok := ext[extUpstreamScheme]; !ok {
				c.addf(checkContextExt, "%s: no context extension %s", rWhere, extUpstreamScheme)
			} else {
				c.checkScheme(rWhere, ext[extUpstreamScheme], names)
			}
			if !lowerSet(vhRemoved, r.GetRequestHeadersToRemove())[capabilityHeader] {
				c.addf(checkCapabilityHeader, "%s: %s is not in request_headers_to_remove", rWhere, capabilityHeader)
			}
		}
	}
}

// routeClusters returns the clusters a route forwards to, reporting missing
// ones and cluster specifiers that cannot be checked statically.
func (c *checker) routeClusters(where string, ra *routev3.RouteAction) []string {
	var names []string
	switch {
	case ra.GetCluster() != "":
		names = append(names, ra.GetCluster())
	case ra.GetWeightedClusters() != nil:
		for _, w := range ra.GetWeightedClusters().GetClusters() {
			names = append(names, w.GetName())
		}
	default:
		c.addf(checkClusterRef, "%s: only cluster and weighted_clusters can be checked", where)
	}
	for _, n := range names {
		if _, ok := c.clusters[n]; !ok {
			c.addf(checkClusterRef, "%s: route names cluster %q, which does not exist", where, n)
		}
	}
	return names
}

// checkScheme: the scheme extauthz is told must be the one Envoy really uses
// upstream: https for a TLS cluster, http only for a permitted local demo one.
func (c *checker) checkScheme(where, scheme string, clusters []string) {
	for _, n := range clusters {
		cl, ok := c.clusters[n]
		if !ok {
			continue
		}
		want := "https"
		if c.opts.allowLocalDemo && isLocalDemo(cl) {
			want = "http"
		}
		if scheme != want {
			c.addf(checkScheme, "%s: %s is %q but cluster %q needs %q", where, extUpstreamScheme, scheme, n, want)
		}
	}
}

func (c *checker) checkClusters() {
	authz := make([]string, 0, len(c.authzClusters))
	for n := range c.authzClusters {
		authz = append(authz, n)
	}
	sort.Strings(authz)
	for _, n := range authz {
		cl, ok := c.clusters[n]
		if !ok {
			c.addf(checkClusterRef, "%s: ext_authz grpc_service names cluster %q, which does not exist", c.authzClusters[n], n)
			continue
		}
		if !c.isHTTP2(cl) {
			c.addf(checkAuthzCluster, "cluster %q: gRPC needs HTTP/2 (explicit_http_config.http2_protocol_options)", n)
		}
		hasGRPCHC := false
		for _, hc := range cl.GetHealthChecks() {
			hasGRPCHC = hasGRPCHC || hc.GetGrpcHealthCheck() != nil
		}
		if !hasGRPCHC {
			c.addf(checkAuthzCluster, "cluster %q: no gRPC health check", n)
		}
	}
	names := make([]string, 0, len(c.clusters))
	for n := range c.clusters {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		cl := c.clusters[n]
		if _, ok := c.authzClusters[n]; ok || (c.opts.allowLocalDemo && isLocalDemo(cl)) {
			continue
		}
		tlsCtx := &tlsv3.UpstreamTlsContext{}
		ts := cl.GetTransportSocket()
		if !ts.GetTypedConfig().MessageIs(tlsCtx) {
			c.addf(checkTLS, "cluster %q sends upstream traffic without TLS (no UpstreamTlsContext transport socket)", n)
			continue
		}
		if err := ts.GetTypedConfig().UnmarshalTo(tlsCtx); err != nil {
			c.addf(checkParse, "cluster %q: %v", n, err)
			continue
		}
		upstream := c.upstreamHTTPOptions(cl)
		if tlsCtx.GetSni() == "" && !upstream.GetAutoSni() {
			c.addf(checkSNI, "cluster %q: TLS without SNI (set sni or auto_sni)", n)
		}
		ctx := tlsCtx.GetCommonTlsContext()
		vc := ctx.GetValidationContext()
		if vc == nil {
			vc = ctx.GetCombinedValidationContext().GetDefaultValidationContext()
		}
		switch {
		case vc.GetTrustedCa() == nil:
			c.addf(checkTLSVerify, "cluster %q: the upstream certificate is not verified (no validation_context.trusted_ca)", n)
		case len(vc.GetMatchTypedSubjectAltNames()) == 0 && !upstream.GetAutoSanValidation():
			c.addf(checkTLSVerify, "cluster %q: the upstream name is not verified (no match_typed_subject_alt_names or auto_san_validation)", n)
		}
	}
}

// upstreamHTTPOptions returns the cluster's upstream HTTP options (auto_sni,
// auto_san_validation), nil when unset.
func (c *checker) upstreamHTTPOptions(cl *clusterv3.Cluster) *corev3.UpstreamHttpProtocolOptions {
	return c.httpOptions(cl).GetUpstreamHttpProtocolOptions()
}

func (c *checker) httpOptions(cl *clusterv3.Cluster) *httpv3.HttpProtocolOptions {
	a := cl.GetTypedExtensionProtocolOptions()[httpProtocolOpts]
	if a == nil {
		return nil
	}
	opts := &httpv3.HttpProtocolOptions{}
	if err := a.UnmarshalTo(opts); err != nil {
		c.addf(checkParse, "cluster %q: %s: %v", cl.GetName(), httpProtocolOpts, err)
		return nil
	}
	return opts
}

func (c *checker) isHTTP2(cl *clusterv3.Cluster) bool {
	//lint:ignore SA1019 the deprecated field still configures HTTP/2.
	if cl.GetHttp2ProtocolOptions() != nil { //nolint:staticcheck
		return true
	}
	return c.httpOptions(cl).GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
}

func isLocalDemo(cl *clusterv3.Cluster) bool {
	return cl.GetMetadata().GetFilterMetadata()[localDemoNamespace].GetFields()[localDemoKey].GetBoolValue()
}

func lowerSet(base map[string]bool, names []string) map[string]bool {
	s := make(map[string]bool, len(base)+len(names))
	for k := range base {
		s[k] = true
	}
	for _, n := range names {
		s[strings.ToLower(n)] = true
	}
	return s
}
