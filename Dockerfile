# syntax=docker/dockerfile:1
#
# extauthz: a static, CGO-free Go binary on a distroless, non-root base.
#
#   docker build -t extauthz .                    # the server (the last stage)
#   docker run --rm extauthz version
#
# The other targets build the compose demo's helpers from the same builder
# stage (deploy/compose/docker-compose.yaml builds them for you):
#   --target echo-upstream    the echo upstream (cmd/echo-upstream)
#   --target sandbox-client   the demo sandbox (cmd/sandbox-client)
#   --target demo-init        extauthz plus a busybox shell, for the init job

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Static binaries: no libc in the final image.
ENV CGO_ENABLED=0
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/extauthz ./cmd/extauthz \
 && go build -trimpath -ldflags "-s -w" -o /out/echo-upstream ./cmd/echo-upstream \
 && go build -trimpath -ldflags "-s -w" -o /out/sandbox-client ./cmd/sandbox-client

# Demo only: the init job needs a shell to write the key and capability files.
# The compose file mounts deploy/compose/demo-init.sh at /deploy/demo-init.sh.
FROM gcr.io/distroless/static-debian13:debug-nonroot AS demo-init
COPY --from=build /out/extauthz /extauthz
ENTRYPOINT ["/busybox/sh", "/deploy/demo-init.sh"]

FROM gcr.io/distroless/static-debian13:nonroot AS echo-upstream
COPY --from=build /out/echo-upstream /echo-upstream
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/echo-upstream"]

FROM gcr.io/distroless/static-debian13:nonroot AS sandbox-client
COPY --from=build /out/sandbox-client /sandbox-client
USER nonroot:nonroot
ENTRYPOINT ["/sandbox-client"]

# The server. Last, so that a plain `docker build .` produces it.
FROM gcr.io/distroless/static-debian13:nonroot AS extauthz
COPY --from=build /out/extauthz /extauthz
USER nonroot:nonroot
# gRPC ext_authz, HTTP authorization, admin (/healthz, /readyz, /metrics).
EXPOSE 9191 8181 9090
ENTRYPOINT ["/extauthz"]
CMD ["serve"]
