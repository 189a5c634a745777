{{/* The release's full name, at most 63 characters. */}}
{{- define "extauthz.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "extauthz.serviceAccountName" -}}
{{- default (include "extauthz.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* Labels that select the pods: never change them on upgrade. */}}
{{- define "extauthz.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "extauthz.labels" -}}
{{ include "extauthz.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "extauthz.image" -}}
{{- $repo := required "image.repository is required: no public image is published; build one from the repository's Dockerfile, push it, and set image.repository and image.tag (or image.digest)" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (required "image.tag (or image.digest) is required: no public image is published, so there is no default tag" .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
extauthz.validate fails the render on values the server would refuse or that
would leave it open: each message names the value to set.
*/}}
{{- define "extauthz.validate" -}}
{{- $v := .Values -}}
{{- if not (regexMatch "^(context-extension|principal|header):.+" $v.containerIdFrom) -}}
{{- fail (printf "containerIdFrom %q: want context-extension:KEY, principal:REGEX or header:NAME" $v.containerIdFrom) -}}
{{- end -}}
{{- if not (has $v.upstreamScheme (list "" "http" "https")) -}}
{{- fail (printf "upstreamScheme %q: want https, http or empty" $v.upstreamScheme) -}}
{{- end -}}
{{- if not $v.keys.existingSecret -}}
{{- fail "keys.existingSecret is required: the name of the Secret holding the key file (kubectl create secret generic extauthz-keys --from-file=keys=./keys)" -}}
{{- end -}}
{{- if $v.http.enabled -}}
{{- if not (or $v.http.containerIdHeader $v.http.apiToken.existingSecret) -}}
{{- fail "http.enabled serves nothing without http.containerIdHeader (HTTP authorization) or http.apiToken.existingSecret (capability API): set one or both" -}}
{{- end -}}
{{- else if or $v.http.containerIdHeader $v.http.apiToken.existingSecret -}}
{{- fail "http.containerIdHeader and http.apiToken.existingSecret need http.enabled: true (the HTTP listener is off)" -}}
{{- end -}}
{{- if and $v.tls.clientCA.existingSecret (not $v.tls.existingSecret) -}}
{{- fail "tls.clientCA needs tls.existingSecret: mTLS needs the server's own certificate too" -}}
{{- end -}}
{{- if and $v.tls.clientCA.existingSecret (not $v.tls.clientIdentities) -}}
{{- fail "tls.clientIdentities is required with tls.clientCA: list the client certificates allowed (uri:NAME, dns:NAME, uri:~REGEX, dns:~REGEX); a CA alone admits every certificate it signed, sandboxes' included" -}}
{{- end -}}
{{- if and $v.tls.clientIdentities (not $v.tls.clientCA.existingSecret) -}}
{{- fail "tls.clientIdentities needs tls.clientCA.existingSecret: without a client CA no client certificate is asked for" -}}
{{- end -}}
{{- range $v.tls.clientIdentities -}}
{{- if not (regexMatch "^(uri|dns):.+" .) -}}
{{- fail (printf "tls.clientIdentities %q: want uri:NAME, dns:NAME, uri:~REGEX or dns:~REGEX" .) -}}
{{- end -}}
{{- end -}}
{{- $d := $v.drain -}}
{{- if le (int $d.terminationGracePeriodSeconds) (add $d.drainDelaySeconds $d.shutdownTimeoutSeconds | int) -}}
{{- fail (printf "drain.terminationGracePeriodSeconds (%v) must exceed drain.drainDelaySeconds + drain.shutdownTimeoutSeconds (%v): the kubelet would kill the pod mid-drain" $d.terminationGracePeriodSeconds (add $d.drainDelaySeconds $d.shutdownTimeoutSeconds)) -}}
{{- end -}}
{{- if $v.networkPolicy.enabled -}}
{{- if not $v.networkPolicy.proxies -}}
{{- fail "networkPolicy.proxies is empty: name the proxy's pods (podSelector, and namespaceSelector for another namespace); a rule without peers would admit every pod" -}}
{{- end -}}
{{- range $v.networkPolicy.proxies -}}
{{- if not (or (dig "podSelector" "matchLabels" (dict) .) (dig "podSelector" "matchExpressions" (list) .)) -}}
{{- fail "networkPolicy.proxies: every entry needs a non-empty podSelector, so that only the proxy's pods, not a whole namespace, reach the decision ports" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $v.istio.enabled (not $v.istio.callerPrincipals) -}}
{{- fail "istio.callerPrincipals is empty: name the egress gateway's principal (an ALLOW policy without it would refuse every caller)" -}}
{{- end -}}
{{- include "extauthz.validateRevocation" . -}}
{{- include "extauthz.validateProfiles" . -}}
{{- include "extauthz.validateTracing" . -}}
{{- include "extauthz.validateEgress" . -}}
{{- end -}}

{{/*
extauthz.validateRevocation: the API on (http.apiToken) takes revocations, so
the store must keep them for every replica: never memory, and a file only
for one pod. A file is one pod's in any case (a ReadWriteOnce volume, one
writer). The Redis URL carries no password: that comes from a Secret.
*/}}
{{- define "extauthz.validateRevocation" -}}
{{- $v := .Values -}}
{{- $r := $v.revocation -}}
{{- $api := and $v.http.enabled $v.http.apiToken.existingSecret -}}
{{- if and $api (eq $r.store "memory") -}}
{{- fail "revocation.store memory with the capability API on (http.apiToken.existingSecret): a revocation would live in the memory of the one pod that took it, lost when it restarts and unseen by the other replicas. Set revocation.store: redis (revocation.redis.url; shared by every replica) or file (one replica)" -}}
{{- end -}}
{{- if and (eq $r.store "file") (or $v.autoscaling.enabled (gt (int $v.replicaCount) 1)) -}}
{{- fail (printf "revocation.store file keeps revocations in one pod's file on a ReadWriteOnce volume, but this would run %s: set replicaCount: 1 and autoscaling.enabled: false, or use revocation.store: redis for many replicas" (ternary "the HPA's 2 or more replicas (autoscaling.enabled)" (printf "replicaCount %v replicas" $v.replicaCount) $v.autoscaling.enabled)) -}}
{{- end -}}
{{- if eq $r.store "redis" -}}
{{- if not $r.redis.url -}}
{{- fail "revocation.redis.url is required with revocation.store redis: redis://host:port[/db] or rediss://host:port[/db]" -}}
{{- end -}}
{{- if or (regexMatch "^[a-z]+://[^/@]*:[^/@]*@" $r.redis.url) (regexMatch "(?i)[?&]password=" $r.redis.url) -}}
{{- fail "revocation.redis.url carries a password: values are not secret. Put the password in a Secret and name it in revocation.redis.password.existingSecret (an ACL user name may stay in the URL: redis://user@host:port)" -}}
{{- end -}}
{{- if not (regexMatch (include "extauthz.urlPattern" "rediss?") $r.redis.url) -}}
{{- fail "revocation.redis.url: want redis://host:port[/db] or rediss://host:port[/db]" -}}
{{- end -}}
{{- if and $r.redis.ca.existingSecret (not (hasPrefix "rediss://" $r.redis.url)) -}}
{{- fail "revocation.redis.ca needs a rediss:// revocation.redis.url: the CA verifies the server's TLS certificate" -}}
{{- end -}}
{{- else if or $r.redis.url $r.redis.password.existingSecret $r.redis.ca.existingSecret -}}
{{- fail (printf "revocation.redis needs revocation.store: redis (it is %s)" $r.store) -}}
{{- end -}}
{{- if and (ne $r.store "file") $r.file.existingClaim -}}
{{- fail (printf "revocation.file.existingClaim needs revocation.store: file (it is %s)" $r.store) -}}
{{- end -}}
{{- end -}}

{{/*
extauthz.validateProfiles: profiles on come from somewhere; every file the
chart writes is one the server reads (a ConfigMap key ending .yaml or .yml)
and holds something.
*/}}
{{- define "extauthz.validateProfiles" -}}
{{- $p := .Values.profiles -}}
{{- if $p.enabled -}}
{{- if not (or $p.files $p.existingConfigMap) -}}
{{- fail "profiles.enabled needs profiles.files (profile files in the values) or profiles.existingConfigMap (a ConfigMap of them), or both: e.g. --set-file 'profiles.files.providers\\.yaml=profiles/providers.yaml'" -}}
{{- end -}}
{{- range $name, $content := $p.files -}}
{{- if not (regexMatch "^[A-Za-z0-9_][-._A-Za-z0-9]*\\.ya?ml$" $name) -}}
{{- fail (printf "profiles.files %q: want a file name of letters, digits, '-', '_' and '.' ending .yaml or .yml (extauthz reads only those from the directory)" $name) -}}
{{- end -}}
{{- if not (and (kindIs "string" $content) (trim $content)) -}}
{{- fail (printf "profiles.files %q: want the file's YAML as a string (--set-file, or a | block)" $name) -}}
{{- end -}}
{{- end -}}
{{- else if or $p.files $p.existingConfigMap -}}
{{- fail "profiles.files and profiles.existingConfigMap need profiles.enabled: true" -}}
{{- end -}}
{{- end -}}

{{/* The ConfigMap the chart renders from profiles.files. */}}
{{- define "extauthz.profilesConfigMap" -}}
{{- printf "%s-profiles" (include "extauthz.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* extauthz.validateTracing: the OTLP endpoint is a URL with its port. */}}
{{- define "extauthz.validateTracing" -}}
{{- $t := .Values.tracing -}}
{{- if $t.enabled -}}
{{- if not (regexMatch (include "extauthz.urlPattern" "https?") $t.endpoint) -}}
{{- fail (printf "tracing.endpoint %q: want the collector's URL with its port, e.g. http://otel-collector.observability.svc:4317" $t.endpoint) -}}
{{- end -}}
{{- if not (include "extauthz.urlPort" $t.endpoint) -}}
{{- fail (printf "tracing.endpoint %q has no port: name it (4317 for grpc, 4318 for http/protobuf)" $t.endpoint) -}}
{{- end -}}
{{- else if $t.endpoint -}}
{{- fail "tracing.endpoint needs tracing.enabled: true" -}}
{{- end -}}
{{- end -}}

{{/*
extauthz.validateEgress: every egress rule the pods need has peers; an
empty "to" would allow every destination.
*/}}
{{- define "extauthz.validateEgress" -}}
{{- $v := .Values -}}
{{- if $v.networkPolicy.enabled -}}
{{- $e := $v.networkPolicy.egress -}}
{{- if not $e.dns.to -}}
{{- fail "networkPolicy.egress.dns.to is empty: the pods could resolve no name. Name the cluster's DNS pods (kube-dns) or address (ipBlock)" -}}
{{- end -}}
{{- if and (eq $v.revocation.store "redis") (not $e.redis.to) -}}
{{- fail "networkPolicy.egress.redis.to is empty with revocation.store redis: name the Redis pods (podSelector, namespaceSelector) or address (ipBlock) the pods may connect to" -}}
{{- end -}}
{{- if and $v.tracing.enabled (not $e.otlp.to) -}}
{{- fail "networkPolicy.egress.otlp.to is empty with tracing.enabled: name the OTLP collector's pods (podSelector, namespaceSelector) or address (ipBlock)" -}}
{{- end -}}
{{- if and $v.istio.enabled (not $e.istiod.to) -}}
{{- fail "networkPolicy.egress.istiod.to is empty with istio.enabled: the sidecar could not reach istiod for its configuration. Name istiod's pods" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
extauthz.urlPattern: a URL of the scheme pattern given (lower case), with an
optional user name, a host (name, IPv4 or bracketed IPv6), an optional port
and an optional path; extauthz.urlPort reads its port ("" when absent).
*/}}
{{- define "extauthz.urlPattern" -}}
^(?:{{ . }})://(?:[^@/?#:]+@)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?(?:[/?][^#\s]*)?$
{{- end -}}

{{- define "extauthz.urlPort" -}}
{{- regexReplaceAll (include "extauthz.urlPattern" "[a-z]+") . "${1}" -}}
{{- end -}}

{{/* The port Redis listens on, for the NetworkPolicy. */}}
{{- define "extauthz.redisPort" -}}
{{- $e := .Values.networkPolicy.egress.redis -}}
{{- if $e.port -}}
{{- $e.port -}}
{{- else -}}
{{- default "6379" (include "extauthz.urlPort" .Values.revocation.redis.url) -}}
{{- end -}}
{{- end -}}

{{/* The port the OTLP collector listens on, for the NetworkPolicy. */}}
{{- define "extauthz.otlpPort" -}}
{{- $e := .Values.networkPolicy.egress.otlp -}}
{{- if $e.port -}}
{{- $e.port -}}
{{- else -}}
{{- include "extauthz.urlPort" .Values.tracing.endpoint -}}
{{- end -}}
{{- end -}}

{{/* The revocation file's volume: an existing claim, or the chart's. */}}
{{- define "extauthz.revocationClaim" -}}
{{- default (printf "%s-revocations" (include "extauthz.fullname" .)) .Values.revocation.file.existingClaim -}}
{{- end -}}

{{/* The decision ports: gRPC, and HTTP when enabled. */}}
{{- define "extauthz.decisionPorts" -}}
{{- $ports := list .Values.grpc.port -}}
{{- if .Values.http.enabled -}}
{{- $ports = append $ports .Values.http.port -}}
{{- end -}}
{{- toJson $ports -}}
{{- end -}}
