#!/usr/bin/env bash
# Makes the Traefik v3 binary that deploy's forward-auth tests put in front
# of the replicas with deploy/traefik-forward-auth.yml, by building it from
# the Go module proxy: no release binary can be downloaded on the project's
# machines, and Debian ships no traefik package.
#
#   ./scripts/traefik-cli.sh   # ensure it; prints the binary's path on stdout
#
# Progress goes to stderr, so that `TRAEFIK_BIN="$(./scripts/traefik-cli.sh)"`
# works. The binary is cached in $TRAEFIK_CACHE/traefik-$TRAEFIK_VERSION
# (default /var/cache/loginsvc/traefik-v3.6.12/traefik), outside the
# repository, so a second run on the same machine is instant.
#
# The version is pinned to v3.6.12 because v3.7.x cannot be built from the
# proxy: its go.mod replaces a nested module (./pkg/config/dynamic/ext) that
# its module zip lacks, and the proxy refuses several of its dependencies.
# `go install pkg@version` refuses a module with replace directives, so the
# module is downloaded and `go build ./cmd/traefik` runs in a writable copy.
# The first build is long: 10 to 18 CPU-minutes (less with a warm Go build
# cache), about 10 minutes wall on 2 idle cores and 26 on a busy shared
# one, peak 3.2 GB of memory, a 170 MiB binary (stripped: -s -w). It runs
# under nice so a shared machine stays usable.
set -euo pipefail

TRAEFIK_VERSION="${TRAEFIK_VERSION:-v3.6.12}"
TRAEFIK_CACHE="${TRAEFIK_CACHE:-/var/cache/loginsvc}"

die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go not found"

cached="$TRAEFIK_CACHE/traefik-$TRAEFIK_VERSION/traefik"
if [ ! -x "$cached" ]; then
	echo "building traefik $TRAEFIK_VERSION from the Go module proxy (about 10 minutes on 2 cores)" >&2
	start=$SECONDS
	work="$(mktemp -d)"
	trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
	mkdir -p "$TRAEFIK_CACHE/traefik-$TRAEFIK_VERSION"
	# Outside any module, so no go.mod or go.sum of this repository is touched.
	dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
	[ -n "$dir" ] && [ -d "$dir" ] || die "go mod download github.com/traefik/traefik/v3@$TRAEFIK_VERSION gave no directory"
	cp -r "$dir/." "$work/src"
	chmod -R u+w "$work/src"
	# The version `traefik version` prints comes from this ldflag, as in
	# upstream's Makefile.
	# GOTOOLCHAIN=local: the machine's own Go builds this tool we merely
	# run, not the project's go1.27.3 that scripts/test.sh exports, so the
	# binary, cached by the tool's version alone, stays valid.
	(cd "$work/src" && CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local \
		nice -n 10 go build -trimpath \
		-ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" \
		-o "$work/traefik" ./cmd/traefik) >&2 || die "go build traefik $TRAEFIK_VERSION"
	# Moved in whole, so an interrupted build never leaves a half binary
	# that the -x test above would take for a good one.
	mv "$work/traefik" "$cached.tmp"
	mv "$cached.tmp" "$cached"
	echo "built in $((SECONDS - start))s, cached as $cached" >&2
fi

got="$("$cached" version | sed -n 's/^Version:[[:space:]]*//p')" || die "$cached does not run"
[ "$got" = "$TRAEFIK_VERSION" ] || die "$cached says version '$got', want $TRAEFIK_VERSION"
echo "traefik $got at $cached" >&2
printf '%s\n' "$cached"
