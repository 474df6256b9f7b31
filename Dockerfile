# No `# syntax=` line: nothing here needs more than the Dockerfile frontend
# built into every BuildKit, and the line would make each build fetch
# docker/dockerfile from Docker Hub (failing offline or behind a mirror).

# ---- build stage -------------------------------------------------------------
FROM golang:1.27-bookworm AS build
WORKDIR /src

# go.mod's go line, 1.27.3, is the minimum Go that builds the service (older
# ones have standard-library vulnerabilities our code reaches). The image
# defaults to GOTOOLCHAIN=local, which fails the build when its Go is older;
# auto uses the image's Go when it is 1.27.3 or later, as the 1.27 image is
# once it has been pulled anew, and otherwise fetches exactly go1.27.3 from
# the Go module proxy: never an older standard library, never a failed build
# for a stale local copy of the image.
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
