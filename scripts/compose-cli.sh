#!/usr/bin/env bash
# Installs the Docker Compose v2 CLI plugin (`docker compose`) when it is
# missing or not the wanted version, by building it from the Go module proxy:
# no release binary can be downloaded on the project's machines, and Debian's
# docker-compose package is v1, which rejects the compose spec's `name:`.
#
#   ./scripts/compose-cli.sh           # ensure it, print `docker compose version`
#
# `go install` refuses the module (its go.mod has exclude directives), so the
# module is downloaded and `go build ./cmd` runs in a writable copy of it.
# The built binary is cached in $COMPOSE_CACHE (default
# /var/cache/loginsvc/compose), keyed by version, so a second run on the same
# machine takes a second instead of minutes.
set -euo pipefail

COMPOSE_VERSION="${COMPOSE_VERSION:-v2.40.3}"
COMPOSE_CACHE="${COMPOSE_CACHE:-/var/cache/loginsvc/compose}"
PLUGIN_DIR="${DOCKER_CLI_PLUGIN_DIR:-/usr/local/lib/docker/cli-plugins}"

die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null || die "docker CLI not found"
command -v go >/dev/null || die "go not found"

want="${COMPOSE_VERSION#v}"
have="$(docker compose version --short 2>/dev/null || true)"
if [ "$have" = "$want" ]; then
	echo "docker compose $have already installed"
	exit 0
fi

cached="$COMPOSE_CACHE/docker-compose-$COMPOSE_VERSION"
if [ ! -x "$cached" ]; then
	echo "building docker compose $COMPOSE_VERSION from the Go module proxy (a few minutes on 2 cores)"
	start=$SECONDS
	work="$(mktemp -d)"
	trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
	# Outside any module, so no go.mod or go.sum is touched.
	dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
	[ -n "$dir" ] && [ -d "$dir" ] || die "go mod download github.com/docker/compose/v2@$COMPOSE_VERSION gave no directory"
	cp -r "$dir/." "$work/src"
	chmod -R u+w "$work/src"
	mkdir -p "$COMPOSE_CACHE"
	# The version string `docker compose version` prints comes from this
	# ldflag, as in upstream's Makefile.
	# GOTOOLCHAIN=local: the machine's own Go builds this tool we merely
	# run, not the project's go1.27.3 that scripts/test.sh exports, so the
	# binary, cached by the tool's version alone, stays valid.
	(cd "$work/src" && CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local \
		nice -n 10 go build -trimpath \
		-ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
		-o "$work/docker-compose" ./cmd) || die "go build docker compose $COMPOSE_VERSION"
	mv "$work/docker-compose" "$cached"
	echo "built in $((SECONDS - start))s, cached as $cached"
fi

mkdir -p "$PLUGIN_DIR"
install -m 0755 "$cached" "$PLUGIN_DIR/docker-compose"
got="$(docker compose version --short)" || die "docker compose does not run after install"
[ "$got" = "$want" ] || die "docker compose version $got, want $want"
echo "docker compose $got installed in $PLUGIN_DIR"
