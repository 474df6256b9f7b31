#!/usr/bin/env bash
# The project's single test command: ./scripts/test.sh [go test flags...]
#
# 1. Makes sure the native tools the tests run are installed (redis-server,
#    nginx, chromium, and gcc for -race), installing the missing ones with apt
#    when run as root.
# 2. gofmt, go vet, staticcheck, then go test -race over every package.
#
# Extra arguments go to `go test`, e.g. ./scripts/test.sh -run TestCluster -v
# Exits non-zero on the first failure. Nothing is skipped.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }
die() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

# nginx lives in /usr/sbin, which a non-login or CI environment may lack; the
# Go toolchain is in /usr/local/go/bin on this project's machines.
for d in /usr/local/sbin /usr/sbin /sbin /usr/local/go/bin; do
	case ":$PATH:" in
	*":$d:"*) ;;
	*) [ -d "$d" ] && PATH="$PATH:$d" ;;
	esac
done
export PATH

# ---------------------------------------------------------------------------
step "native tools: redis-server, redis-cli, nginx, chromium, gcc"

# tool -> Debian package
declare -A pkg_for=(
	[redis-server]=redis-server
	[redis-cli]=redis-tools # the embedded-Redis test reads sessions with it, as the README does
	[nginx]=nginx-light
	[chromium]=chromium
	[gcc]=gcc # go test -race needs cgo
)
tools=(redis-server redis-cli nginx chromium gcc)

missing_tools() {
	local t
	for t in "${tools[@]}"; do
		command -v "$t" >/dev/null 2>&1 || printf '%s\n' "$t"
	done
}

mapfile -t missing < <(missing_tools)

if [ "${#missing[@]}" -gt 0 ]; then
	echo "missing: ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		pkgs=()
		for t in "${missing[@]}"; do pkgs+=("${pkg_for[$t]}"); done
		die "not root, cannot install. Run: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${pkgs[*]}"
	fi

	apt-get update

	pkgs=()
	for t in "${missing[@]}"; do
		p="${pkg_for[$t]}"
		if [ "$p" = nginx-light ] && ! apt-cache show nginx-light >/dev/null 2>&1; then
			p=nginx-core
		fi
		pkgs+=("$p")
	done

	# Keep apt from starting a system nginx on :80 or a second redis: the
	# tests start their own, on loopback ports of their choosing.
	policy=/usr/sbin/policy-rc.d
	own_policy=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		own_policy=1
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	echo "installing: ${pkgs[*]}"
	install_rc=0
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" || install_rc=$?
	if [ "$own_policy" -eq 1 ]; then
		rm -f "$policy"
		trap - EXIT
	fi
	[ "$install_rc" -eq 0 ] || die "apt-get install ${pkgs[*]} failed (exit $install_rc)"

	mapfile -t missing < <(missing_tools)
	[ "${#missing[@]}" -eq 0 ] || die "still missing after install: ${missing[*]}"
fi
for t in "${tools[@]}"; do
	printf '  %-13s %s\n' "$t" "$(command -v "$t")"
done
[ -x /usr/bin/chromium ] || echo "  note: chromium is not at /usr/bin/chromium"

# ---------------------------------------------------------------------------
step "go version"
go version

step "gofmt"
unformatted="$(gofmt -l .)" || die "gofmt failed (syntax error?)"
if [ -n "$unformatted" ]; then
	printf '%s\n' "$unformatted" >&2
	die "files above are not gofmt'ed: run gofmt -w on them"
fi
echo "ok"

step "go vet ./..."
go vet ./... || die "go vet"

step "staticcheck ./..."
go tool staticcheck ./... || die "staticcheck"

step "go test -race -count=1 ./... $*"
go test -race -count=1 ./... "$@" || die "go test"

printf '\n==> all checks passed\n'
