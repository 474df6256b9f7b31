# No `# syntax=` line: nothing here needs more than the Dockerfile frontend
# built into every BuildKit, and the line would make each build fetch
# docker/dockerfile from Docker Hub (failing offline or behind a mirror).

# ---- build stage -------------------------------------------------------------
FROM golang:1.26-bookworm AS build
WORKDIR /src

# go.mod asks for go 1.26.8; if the 1.26 image ever lags behind it, let the go
# command fetch the exact toolchain instead of failing (the image defaults to
# GOTOOLCHAIN=local).
ENV GOTOOLCHAIN=auto

# Dependencies first, so this layer is cached until go.mod/go.sum change.
# The module and build caches are BuildKit cache mounts: kept by the builder
# between builds, never part of an image, so a rebuild after a source change
# compiles only what changed.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/server ./cmd/server

# ---- runtime stage -----------------------------------------------------------
# distroless/static: no shell, no package manager, no curl. The healthcheck
# therefore uses the binary's own `healthcheck` subcommand.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/server /server
USER nonroot:nonroot
ENV ADDR=:8080
EXPOSE 8080
# The server drains on SIGTERM (SHUTDOWN_DRAIN), which is Docker's default
# stop signal; stated here so nobody changes it by accident.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/server", "healthcheck"]
ENTRYPOINT ["/server"]
