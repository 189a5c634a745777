package test

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// redisStore names a Redis revocation store; redisPeers lets the pods reach
// it. A test may add a port under redisPeers' redis entry, or more entries
// under its egress.
const (
	redisStore = `
revocation:
  store: redis
  redis:
    url: redis://redis.data.svc/0
`
	redisPeers = `
networkPolicy:
  egress:
    redis:
      to:
        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: data}}
          podSelector: {matchLabels: {app.kubernetes.io/name: redis}}
`
	redisValues = redisStore + redisPeers
)

// apiOn turns the capability API on, which takes revocations.
const apiOn = `
http:
  enabled: true
  apiToken:
    existingSecret: extauthz-api-token
`

// oneReplica is what a file store needs.
const oneReplica = `
replicaCount: 1
autoscaling: {enabled: false}
`

var apiArgs = []string{
	"--container-id-from=context-extension:outbound_container_id",
	"--http-addr=:8181",
	"--api-token-file=/etc/extauthz/api-token/api-token",
}

// revocationCases are the good combinations of the API and the revocation
// store; TestChartRenders renders each with the other cases.
var revocationCases = []chartCase{
	{
		name: "API with Redis over TLS, password and CA from Secrets, HPA on",
		values: apiOn + `
revocation:
  store: redis
  redis:
    url: rediss://extauthz@redis.data.svc:6380/2
    password: {existingSecret: extauthz-redis}
    ca: {existingSecret: extauthz-redis-ca, secretKey: ca.pem}
` + strings.TrimPrefix(redisPeers, "\n"),
		args: append(slices.Clone(apiArgs),
			"--revocation-store=rediss://extauthz@redis.data.svc:6380/2",
			"--revocation-store-password-file=/etc/extauthz/redis-password/password",
			"--revocation-store-ca-file=/etc/extauthz/redis-ca/ca.pem"),
		mounts: map[string]string{"keys": "/etc/extauthz/keys", "api-token": "/etc/extauthz/api-token",
			"redis-password": "/etc/extauthz/redis-password", "redis-ca": "/etc/extauthz/redis-ca"},
		secrets: map[string]string{"keys": "extauthz-keys", "api-token": "extauthz-api-token",
			"redis-password": "extauthz-redis", "redis-ca": "extauthz-redis-ca"},
		servicePorts:  map[string]int32{"grpc": 9191, "http": 8181, "http-admin": 9090},
		decisionPorts: []int32{9191, 8181},
		egress:        []string{dnsEgress, "TCP/6380"},
		check:         rollingUpdate,
	},
	{
		name:          "API with Redis, three fixed replicas",
		values:        apiOn + redisValues + "replicaCount: 3\nautoscaling: {enabled: false}\n",
		args:          append(slices.Clone(apiArgs), "--revocation-store=redis://redis.data.svc/0"),
		mounts:        map[string]string{"keys": "/etc/extauthz/keys", "api-token": "/etc/extauthz/api-token"},
		secrets:       map[string]string{"keys": "extauthz-keys", "api-token": "extauthz-api-token"},
		withoutKinds:  []string{"HorizontalPodAutoscaler"},
		servicePorts:  map[string]int32{"grpc": 9191, "http": 8181, "http-admin": 9090},
		decisionPorts: []int32{9191, 8181},
		egress:        []string{dnsEgress, "TCP/6379"},
		check: func(t *testing.T, r *render) {
			if rs := r.Deployment.Spec.Replicas; rs == nil || *rs != 3 {
				t.Errorf("replicas = %v; want 3", rs)
			}
			rollingUpdate(t, r)
		},
	},
	{
		name:   "API with a file on the chart's claim, one replica",
		values: apiOn + oneReplica + "revocation: {store: file, file: {size: 2Gi, storageClassName: fast-ssd}}\n",
		args:   append(slices.Clone(apiArgs), "--revocation-file=/var/lib/extauthz/revocations"),
		mounts: map[string]string{"keys": "/etc/extauthz/keys", "api-token": "/etc/extauthz/api-token",
			"revocations": "/var/lib/extauthz"},
		secrets:       map[string]string{"keys": "extauthz-keys", "api-token": "extauthz-api-token"},
		claims:        map[string]string{"revocations": "extauthz-revocations"},
		kinds:         []string{"PersistentVolumeClaim"},
		withoutKinds:  []string{"HorizontalPodAutoscaler"},
		servicePorts:  map[string]int32{"grpc": 9191, "http": 8181, "http-admin": 9090},
		decisionPorts: []int32{9191, 8181},
		check: func(t *testing.T, r *render) {
			oneWriter(t, r)
			pvc := r.Claim
			if pvc.Name != "extauthz-revocations" || pvc.Namespace != namespace {
				t.Errorf("claim %s/%s; want %s/extauthz-revocations", pvc.Namespace, pvc.Name, namespace)
			}
			if !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
				t.Errorf("claim access modes %v; want ReadWriteOnce", pvc.Spec.AccessModes)
			}
			if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse("2Gi")) != 0 {
				t.Errorf("claim size %v; want 2Gi", got.String())
			}
			if sc := pvc.Spec.StorageClassName; sc == nil || *sc != "fast-ssd" {
				t.Errorf("claim storage class %v; want fast-ssd", sc)
			}
			if pvc.Annotations["helm.sh/resource-policy"] != "keep" {
				t.Errorf("claim annotations %v; want helm.sh/resource-policy: keep (uninstalling must not drop the revocations)", pvc.Annotations)
			}
		},
	},
	{
		name:          "file on an existing claim, API off",
		values:        oneReplica + "revocation: {store: file, file: {existingClaim: revocations-2026}}\n",
		args:          []string{"--container-id-from=context-extension:outbound_container_id", "--revocation-file=/var/lib/extauthz/revocations"},
		mounts:        map[string]string{"keys": "/etc/extauthz/keys", "revocations": "/var/lib/extauthz"},
		secrets:       map[string]string{"keys": "extauthz-keys"},
		claims:        map[string]string{"revocations": "revocations-2026"},
		withoutKinds:  []string{"HorizontalPodAutoscaler"},
		servicePorts:  map[string]int32{"grpc": 9191, "http-admin": 9090},
		decisionPorts: []int32{9191},
		check:         oneWriter,
	},
	{
		name:          "tracing to an OTLP collector",
		values:        "tracing: {enabled: true, endpoint: 'http://otel-collector.observability.svc:4318', protocol: http/protobuf}\nnetworkPolicy: {egress: {otlp: {to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: observability}}, podSelector: {matchLabels: {app: otel-collector}}}]}}}\n",
		args:          []string{"--container-id-from=context-extension:outbound_container_id", "--tracing"},
		mounts:        keysMount,
		secrets:       map[string]string{"keys": "extauthz-keys"},
		servicePorts:  map[string]int32{"grpc": 9191, "http-admin": 9090},
		decisionPorts: []int32{9191},
		egress:        []string{dnsEgress, "TCP/4318"},
		check: func(t *testing.T, r *render) {
			env := map[string]string{}
			for _, e := range r.container(t).Env {
				env[e.Name] = e.Value
			}
			if env["OTEL_EXPORTER_OTLP_ENDPOINT"] != "http://otel-collector.observability.svc:4318" || env["OTEL_EXPORTER_OTLP_PROTOCOL"] != "http/protobuf" {
				t.Errorf("env = %v; want the OTLP endpoint and protocol", env)
			}
		},
	},
}

func init() { chartCases = append(chartCases, revocationCases...) }

// rollingUpdate: with a shared store (or none) the Deployment rolls.
func rollingUpdate(t *testing.T, r *render) {
	t.Helper()
	if s := r.Deployment.Spec.Strategy.Type; s != "" && s != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("strategy %s; want the default rolling update", s)
	}
}

// oneWriter: a file store runs one pod, and replaces it rather than rolling,
// so that two pods never write the file at once.
func oneWriter(t *testing.T, r *render) {
	t.Helper()
	if rs := r.Deployment.Spec.Replicas; rs == nil || *rs != 1 {
		t.Errorf("replicas = %v; want 1", rs)
	}
	if s := r.Deployment.Spec.Strategy.Type; s != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy %q; want Recreate: a rolling update would run two writers of the revocation file", s)
	}
}

// TestRevocationRefused: the chart refuses to render a store that would
// lose revocations (memory with the API on; a file with more than one pod),
// and a Redis setting that is wrong or puts a password in the values.
func TestRevocationRefused(t *testing.T) {
	for _, c := range []struct{ name, values, want string }{
		{"API on, memory (the default)", apiOn, "revocation.store memory with the capability API on"},
		{"API on, memory named", apiOn + "revocation: {store: memory}", "revocation.store memory with the capability API on"},
		{"API on, file, HPA on (the default)", apiOn + "revocation: {store: file}", "the HPA's 2 or more replicas (autoscaling.enabled)"},
		{"API on, file, HPA on, one replica", apiOn + "replicaCount: 1\nrevocation: {store: file}", "autoscaling.enabled"},
		{"API on, file, two replicas", apiOn + "replicaCount: 2\nautoscaling: {enabled: false}\nrevocation: {store: file}", "replicaCount 2 replicas"},
		{"API off, file, HPA on", "revocation: {store: file}", "revocation.store file keeps revocations in one pod's file"},
		{"unknown store", "revocation: {store: disk}", "at '/revocation/store'"},
		{"Redis without a URL", "revocation: {store: redis}" + redisPeers, "revocation.redis.url is required"},
		{"Redis URL with a password", "revocation: {store: redis, redis: {url: 'redis://:hunter2@redis:6379'}}" + redisPeers, "carries a password"},
		{"Redis URL with user and password", "revocation: {store: redis, redis: {url: 'rediss://extauthz:hunter2@redis:6379'}}" + redisPeers, "carries a password"},
		{"Redis URL with a password parameter", "revocation: {store: redis, redis: {url: 'redis://redis:6379/0?password=hunter2'}}" + redisPeers, "carries a password"},
		{"Redis URL of another scheme", "revocation: {store: redis, redis: {url: 'http://redis:6379'}}" + redisPeers, "revocation.redis.url: want redis://host:port"},
		{"Redis CA without TLS", "revocation: {store: redis, redis: {url: 'redis://redis:6379', ca: {existingSecret: redis-ca}}}" + redisPeers, "revocation.redis.ca needs a rediss://"},
		{"Redis password with memory", "revocation: {redis: {password: {existingSecret: extauthz-redis}}}", "revocation.redis needs revocation.store: redis (it is memory)"},
		{"claim without the file store", "revocation: {file: {existingClaim: revocations}}", "revocation.file.existingClaim needs revocation.store: file"},
		{"file size not a quantity", oneReplica + "revocation: {store: file, file: {size: lots}}", "at '/revocation/file/size'"},
		{"tracing without an endpoint", "tracing: {enabled: true}", "tracing.endpoint \"\": want the collector's URL"},
		{"tracing endpoint without a port", "tracing: {enabled: true, endpoint: 'http://otel-collector'}", "has no port"},
		{"endpoint with tracing off", "tracing: {endpoint: 'http://otel-collector:4317'}", "tracing.endpoint needs tracing.enabled"},
		{"tracing protocol", "tracing: {protocol: http/json}", "at '/tracing/protocol'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := failure(t, imageValues+c.values)
			if !strings.Contains(got, c.want) {
				t.Errorf("render failed with %q; want it to say %q", got, c.want)
			}
			if strings.Contains(got, "hunter2") {
				t.Errorf("the message repeats the password: %q", got)
			}
		})
	}
}
