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
{{- end -}}

{{/* The decision ports: gRPC, and HTTP when enabled. */}}
{{- define "extauthz.decisionPorts" -}}
{{- $ports := list .Values.grpc.port -}}
{{- if .Values.http.enabled -}}
{{- $ports = append $ports .Values.http.port -}}
{{- end -}}
{{- toJson $ports -}}
{{- end -}}
