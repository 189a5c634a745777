#!/bin/bash
# Compose healthcheck for the demo Envoy: healthy once Envoy's own active health
# checks see the extauthz cluster (gRPC grpc.health.v1 SERVING, i.e. keys
# loaded) and the echo cluster up. Uses bash's /dev/tcp because the Envoy image
# ships no HTTP client.
set -euo pipefail
exec 3<>/dev/tcp/127.0.0.1/9901
printf 'GET /clusters HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
out=$(timeout 3 cat <&3)
for cluster in extauthz echo; do
  grep -q "^${cluster}::.*::health_flags::healthy" <<<"$out"
done
