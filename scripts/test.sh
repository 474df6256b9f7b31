#!/usr/bin/env bash
# The project's single test command: ./scripts/test.sh [go test flags...]
#
# 1. Makes sure the native tools the tests run are installed (redis-server,
#    haproxy, chromium, nginx, caddy, and gcc for -race), installing the
#    missing ones with apt when run as root. Builds Traefik v3 from the Go
#    module proxy (scripts/traefik-cli.sh, cached in
#    /var/cache/loginsvc/traefik-VERSION; about 10 minutes the first time,
#    in the background while the Docker steps run) and exports it as
#    TRAEFIK_BIN: deploy's forward-auth tests run nginx, Traefik and Caddy
#    with the README's snippets.
# 2. Makes the Docker Engine ready for deploy's TestComposeStack, which runs
#    the real `docker compose up --build`: builds the Compose v2 CLI plugin
#    (scripts/compose-cli.sh) and the local STAND-IN images for the upstream
#    ones the compose file names (scripts/stand-in-images.sh: Debian builds
#    of the same programs, not the upstream images; no registry is reachable).
#    Both are cached under /var/cache/loginsvc and in the engine. Builds the
#    Helm v4 CLI the same way (scripts/helm-cli.sh, cached in
#    /var/cache/loginsvc/helm-VERSION) and exports it as HELM_BIN for
#    deploy's Helm tests: helm lint and helm template of deploy/helm/loginsvc
#    with the default values and every example values file, decoded strictly
#    into the Kubernetes API types. No cluster runs here.
# 3. gofmt, go vet, staticcheck, golangci-lint (pinned in go.mod, configured
#    in .golangci.yml), govulncheck v1.9.0 against a vulnerability database
#    built offline from a pinned golang.org/x/vulndb (scripts/vulndb.sh,
#    cached in /var/cache/loginsvc/vulndb-VERSION; a reachable vulnerability
#    fails the run), then go test -race over every package, then the
#    Redis-facing packages again against Valkey 8 (bookworm-backports).
# 4. A smoke run of the benchmark (scripts/bench.sh --smoke), which must
#    run end to end; its figures are not judged.
#
# Extra arguments go to `go test`, e.g. ./scripts/test.sh -run TestCluster -v
# Exits non-zero on the first failure. Nothing is skipped.
#
# Everything runs on Go go1.27.3 (GOTOOLCHAIN below), which the go command
# fetches from the Go module proxy once; the tools we merely build and run
# (Traefik, Helm, compose, the vulnerability database) stay on the machine's
# own Go.
set -euo pipefail

# go.mod's go line is 1.27.3: go1.26.8, this machine's own Go, has 13
# standard-library vulnerabilities reachable from our code (issue 17). The
# machine's go ignores go.mod's version under its default GOTOOLCHAIN=local
# and refuses the module instead, so this names the approved toolchain,
# which the go command downloads once from the Go module proxy as a module
# (golang.org/toolchain, about 76 MB) into the module cache. Keep it equal
# to go.mod's go line: bump both together (grep -rn go1.27.3 .).
export GOTOOLCHAIN=go1.27.3

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }
die() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

# haproxy lives in /usr/sbin, which a non-login or CI environment may lack; the
# Go toolchain is in /usr/local/go/bin on this project's machines.
for d in /usr/local/sbin /usr/sbin /sbin /usr/local/go/bin; do
	case ":$PATH:" in
	*":$d:"*) ;;
	*) [ -d "$d" ] && PATH="$PATH:$d" ;;
	esac
done
export PATH

# Fetched now, before half an hour of other steps, and checked: a machine
# that cannot get it fails here, saying why.
step "go toolchain: GOTOOLCHAIN=$GOTOOLCHAIN"
go version || die "cannot run Go $GOTOOLCHAIN: the go command fetches it from the Go module proxy (golang.org/toolchain); is the proxy reachable?"

# ---------------------------------------------------------------------------
step "native tools: redis-server, redis-cli, haproxy, chromium, gcc, nginx, caddy, wrk, curl, openssl"

# tool -> Debian package
declare -A pkg_for=(
	[redis-server]=redis-server
	[redis-cli]=redis-tools # the embedded-Redis test reads sessions with it, as the README does
	[haproxy]=haproxy # the native cluster's load balancer, with deploy/haproxy.cfg
	[chromium]=chromium
	[gcc]=gcc # go test -race needs cgo
	[nginx]=nginx # forward auth (auth_request) in front of replicas, with deploy/nginx-forward-auth.conf
	[caddy]=caddy # forward auth (forward_auth) in front of replicas, with deploy/Caddyfile.forward-auth
	[wrk]=wrk # scripts/bench.sh, whose smoke runs below; it also uses curl and openssl
	[curl]=curl
	[openssl]=openssl
)
tools=(redis-server redis-cli haproxy chromium gcc nginx caddy wrk curl openssl)

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
		pkgs+=("${pkg_for[$t]}")
	done

	# Keep apt from starting a system haproxy, nginx, caddy or a second
	# redis: the tests start their own, on loopback ports of their choosing.
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
# Chromium draws the Chinese pages of the browser tests (and their
# screenshots) with a CJK font; without one every character is a box, and
# TestBrowserTwoStepLogin fails.
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then
	[ "$(id -u)" -eq 0 ] || die "no CJK font for chromium. Run: sudo apt-get update && sudo apt-get install -y --no-install-recommends fonts-wqy-zenhei"
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends fonts-wqy-zenhei || die "apt-get install fonts-wqy-zenhei failed"
	fc-list :lang=zh | grep -q . || die "still no CJK font after installing fonts-wqy-zenhei"
fi
printf '  %-13s %s\n' "CJK font" "$(fc-list :lang=zh family | head -n 1)"

# ---------------------------------------------------------------------------
# Traefik's first build is the longest step (about 10 minutes on 2 cores):
# it starts now, under nice, and runs while Valkey, the images and the
# compose and helm CLIs are made; it is waited for before the tests.
traefik_log="$(mktemp)"
./scripts/traefik-cli.sh >"$traefik_log.bin" 2>"$traefik_log" &
traefik_pid=$!

# ---------------------------------------------------------------------------
step "Valkey 8 (bookworm-backports): valkey-server, valkey-cli"
# The Redis-facing tests run a second time against Valkey (step 3). Debian
# has it in bookworm-backports only, so that source is added, and only these
# two packages are taken from it (-t): nothing else on the machine changes.
if ! command -v valkey-server >/dev/null 2>&1 || ! command -v valkey-cli >/dev/null 2>&1; then
	[ "$(id -u)" -eq 0 ] || die "not root, cannot install Valkey. Run as root, or: echo 'deb http://deb.debian.org/debian bookworm-backports main' | sudo tee /etc/apt/sources.list.d/bookworm-backports.list && sudo apt-get update && sudo apt-get install -y -t bookworm-backports valkey-server valkey-tools"
	backports=/etc/apt/sources.list.d/bookworm-backports.list
	if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
		echo 'deb http://deb.debian.org/debian bookworm-backports main' >"$backports"
	fi
	apt-get update
	# As above: no system valkey is started; the tests start their own.
	policy=/usr/sbin/policy-rc.d
	own_policy=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		own_policy=1
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	install_rc=0
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -t bookworm-backports valkey-server valkey-tools || install_rc=$?
	if [ "$own_policy" -eq 1 ]; then
		rm -f "$policy"
		trap - EXIT
	fi
	[ "$install_rc" -eq 0 ] || die "apt-get install -t bookworm-backports valkey-server valkey-tools failed (exit $install_rc)"
fi
printf '  %-13s %s (%s)\n' valkey-server "$(command -v valkey-server)" "$(valkey-server --version | cut -d' ' -f1-3)"
printf '  %-13s %s\n' valkey-cli "$(command -v valkey-cli)"

# ---------------------------------------------------------------------------
step "docker engine"
command -v docker >/dev/null 2>&1 || die "docker CLI not found: this project's machines have a Docker Engine"
docker info --format 'engine {{.ServerVersion}}, storage {{.Driver}}, cgroup v{{.CgroupVersion}}' ||
	die "the Docker daemon does not answer (docker info)"

[ "$(id -u)" -eq 0 ] || die "not root: the compose plugin and the stand-in images are installed as root"
# The compose build is CPU, the stand-ins mostly downloads and copies: on a
# fresh machine they overlap, minutes sooner.
compose_log="$(mktemp)"
./scripts/compose-cli.sh >"$compose_log" 2>&1 &
compose_pid=$!

step "stand-in images (Debian builds of the same programs, NOT the upstream images)"
standin_rc=0
./scripts/stand-in-images.sh || standin_rc=$?

step "docker compose v2 (built from the Go module proxy, cached)"
compose_rc=0
wait "$compose_pid" || compose_rc=$?
cat "$compose_log"
rm -f "$compose_log"
[ "$standin_rc" -eq 0 ] || die "stand-in images"
[ "$compose_rc" -eq 0 ] || die "docker compose v2 CLI"

# ---------------------------------------------------------------------------
step "helm v4 (built from the Go module proxy, cached): HELM_BIN for deploy's Helm tests"
HELM_BIN="$(./scripts/helm-cli.sh)" || die "helm CLI (scripts/helm-cli.sh)"
export HELM_BIN

# ---------------------------------------------------------------------------
step "traefik v3 (built from the Go module proxy, cached): TRAEFIK_BIN for deploy's forward-auth tests"
traefik_rc=0
wait "$traefik_pid" || traefik_rc=$?
cat "$traefik_log"
TRAEFIK_BIN="$(cat "$traefik_log.bin")"
rm -f "$traefik_log" "$traefik_log.bin"
[ "$traefik_rc" -eq 0 ] && [ -x "$TRAEFIK_BIN" ] || die "traefik (scripts/traefik-cli.sh)"
export TRAEFIK_BIN

# ---------------------------------------------------------------------------
# GOTOOLCHAIN switches the go command only: the gofmt on PATH is the
# machine's, so the one beside go1.27.3's go is named.
gofmt="$(go env GOROOT)/bin/gofmt"
step "gofmt ($gofmt)"
unformatted="$("$gofmt" -l .)" || die "gofmt failed (syntax error?)"
if [ -n "$unformatted" ]; then
	printf '%s\n' "$unformatted" >&2
	die "files above are not gofmt'ed: run \"\$(go env GOROOT)/bin/gofmt\" -w on them"
fi
echo "ok"

step "go vet ./..."
go vet ./... || die "go vet"

step "staticcheck ./..."
go tool staticcheck ./... || die "staticcheck"

step "golangci-lint run ./... (errcheck, gosec, govet, ineffassign, staticcheck, unused: .golangci.yml)"
go tool golangci-lint run ./... || die "golangci-lint"

# govulncheck reports only the vulnerabilities whose code our packages can
# reach (symbol level), in our dependencies and in the standard library of
# the Go that runs it, go1.27.3 here. Pinned by version in the command, not
# as a go.mod tool: go install pkg@version builds it with its own go.mod's
# dependencies, so it moves none of ours. Installed, not `go run`, because
# go run turns every exit code into 1, and govulncheck's 3 (it found some)
# is what tells a finding from a failure to run.
step "govulncheck v1.9.0 ./... (database built offline from golang.org/x/vulndb: scripts/vulndb.sh)"
vulndb_dir="$(./scripts/vulndb.sh)" || die "vulnerability database (scripts/vulndb.sh)"
govulncheck_dir="$(mktemp -d)"
GOBIN="$govulncheck_dir" go install golang.org/x/vuln/cmd/govulncheck@v1.9.0 || die "go install golang.org/x/vuln/cmd/govulncheck@v1.9.0"
govulncheck_rc=0
"$govulncheck_dir/govulncheck" -db "file://$vulndb_dir" ./... || govulncheck_rc=$?
rm -rf "$govulncheck_dir"
case "$govulncheck_rc" in
0) ;;
3) die "govulncheck: our code reaches the vulnerabilities above. A standard-library one: move to a Go that fixes it (GOTOOLCHAIN here, in .ci/run and the other scripts, and go.mod's go line); a module's: go get MODULE@FIXED-VERSION (\"Fixed in\") and go mod tidy" ;;
*) die "govulncheck could not run (exit $govulncheck_rc)" ;;
esac

# go test's default -timeout is 10m per package binary, and deploy (compose
# stack, Helm, the browser and proxy tests, the clusters) has passed 600 s
# alone on a busy shared machine, failing the whole run for nothing. 25m is
# over twice that run: room for a slower machine, still a bound on a hung
# test (go test then prints every goroutine). Each package's time is the
# "ok  PKG  NNN.NNNs" line go test prints per package: its output is never
# filtered or piped here, so those lines stay visible. A -timeout among the
# extra arguments comes later on the command line and wins.
go_test_timeout=25m
step "go test -race -count=1 -timeout $go_test_timeout ./... $*"
go test -race -count=1 -timeout "$go_test_timeout" ./... "$@" || die "go test"

# The same binary must run on Valkey: the store, session, web and cmd/server
# integration tests (and redistest, which checks it really is Valkey) again,
# with every test server a valkey-server.
valkey_pkgs=(./internal/redistest/ ./internal/store/ ./internal/session/ ./internal/web/ ./cmd/server/)
# Not deploy: these take minutes, but the same margin costs nothing and a
# busy machine slows them as it slows deploy.
step "go test -race -count=1 -timeout $go_test_timeout against Valkey (REDISTEST_SERVER=valkey-server) ${valkey_pkgs[*]} $*"
REDISTEST_SERVER=valkey-server go test -race -count=1 -timeout "$go_test_timeout" "${valkey_pkgs[@]}" "$@" || die "go test against Valkey"
step "benchmark smoke (scripts/bench.sh --smoke: the harness runs; its figures are not judged)"
./scripts/bench.sh --smoke || die "scripts/bench.sh --smoke"

printf '\n==> all checks passed\n'
