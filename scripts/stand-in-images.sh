#!/usr/bin/env bash
# Builds local STAND-INS for the third-party images that docker-compose.yml
# and the Dockerfile name, because the project's machines reach no container
# registry: nothing can be pulled and the engine starts with no images.
#
#   ./scripts/stand-in-images.sh        # build the missing or outdated ones
#
# They are NOT the upstream images. Each is a root filesystem assembled from
# Debian bookworm packages (apt-get download, then dpkg -x: no maintainer
# scripts run) and loaded with `docker import`, tagged with the upstream name
# so that the repository's compose file and Dockerfile run unchanged:
#
#   redis:7.4-alpine       Debian's redis-server and redis-cli (7.0), user redis
#   haproxy:2.6            Debian's haproxy 2.6 and bash, user haproxy, config
#                          read from /usr/local/etc/haproxy/haproxy.cfg as
#                          upstream's
#   golang:1.27-bookworm   Go go1.27.3, the project's toolchain (the one the go
#                          command fetches for GOTOOLCHAIN=go1.27.3 into the
#                          module cache), on a Debian userland (dash, bash,
#                          coreutils)
#   gcr.io/distroless/static-debian12:nonroot
#                          no shell: /etc/passwd with nonroot (65532), CA
#                          certificates, tzdata, netbase, as distroless's
#   prom/prometheus:v3.5.0 Debian's prometheus (2.42), user nobody, /bin/prometheus
#                          with upstream's config and data paths
#                          (/etc/prometheus/prometheus.yml, /prometheus);
#                          for docker-compose.yml's monitoring profile
#
# Every image carries this machine's CA bundle (/etc/ssl/certs), which on the
# project's machines includes the CA of the egress proxy: `go mod download`
# inside `docker compose build` reaches the Go module proxy through it.
#
# Each image is labelled with a digest of this script, the package versions
# and the Go version; an image whose label matches is kept, so a second run
# takes seconds. Downloaded packages are kept in $STANDIN_CACHE (default
# /var/cache/loginsvc/debs). Needs root (dpkg -x ownership, docker); runs
# `apt-get update` when the package lists cannot serve the download.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CACHE="${STANDIN_CACHE:-/var/cache/loginsvc/debs}"
LABEL=org.loginsvc.stand-in

die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "stand-in images are assembled as root (file ownership inside the images)"
command -v docker >/dev/null || die "docker CLI not found"
command -v apt-get >/dev/null || die "apt-get not found: stand-ins are built from Debian packages"
# The golang image carries the project's Go, go1.27.3 (go.mod's go line;
# scripts/test.sh exports the same GOTOOLCHAIN), not the machine's own: the
# Dockerfile's build stage must build what the tests and govulncheck ran on.
# Named here too, so the script gives the same image when run on its own.
GOROOT="$(GOTOOLCHAIN=go1.27.3 go env GOROOT)" || die "go not found, or it cannot fetch go1.27.3"
GOVERSION="$(GOTOOLCHAIN=go1.27.3 go env GOVERSION)"
[ "${GOVERSION%.*}" = go1.27 ] || die "golang:1.27-bookworm needs a go1.27.x, got $GOVERSION from $GOROOT"
[ -f /etc/ssl/certs/ca-certificates.crt ] || die "no /etc/ssl/certs/ca-certificates.crt on this machine"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# debs NAME PKG...: downloads PKG and everything they depend on (an empty
# dpkg status makes apt resolve the whole closure) into $CACHE, and prints
# the .deb paths of that closure, one a line.
debs() {
	local name="$1"
	shift
	local st="$work/$name.status"
	: >"$st"
	mkdir -p "$CACHE/partial"
	local get=(apt-get install -qq -y --no-install-recommends --download-only
		-o Dir::State::status="$st" -o Dir::Cache::archives="$CACHE" -o Debug::NoLocking=1 "$@")
	if ! "${get[@]}" >/dev/null 2>&1; then
		# Package lists missing or older than the mirror: refresh once.
		apt-get update -qq >&2 || die "apt-get update failed"
		"${get[@]}" >/dev/null || die "apt-get cannot download $* and their dependencies"
	fi
	# The closure, as apt would install it on an empty system.
	apt-get install -s -qq -y --no-install-recommends \
		-o Dir::State::status="$st" -o Dir::Cache::archives="$CACHE" -o Debug::NoLocking=1 \
		"$@" | awk '$1 == "Inst" { print $2 " " $3 }' | tr -d '()[]' |
		while read -r pkg ver; do
			local f
			f="$(ls "$CACHE/${pkg}_"*"_"*.deb 2>/dev/null | while read -r d; do
				[ "$(dpkg-deb -f "$d" Version)" = "$ver" ] && echo "$d"
			done | head -1)"
			[ -n "$f" ] || die "no downloaded .deb for $pkg $ver"
			echo "$f"
		done
}

# rootfs DIR DEB...: extracts the packages into DIR and adds what their
# maintainer scripts would have made and every image needs.
rootfs() {
	local dir="$1"
	shift
	mkdir -p "$dir"
	local d
	for d in "$@"; do
		dpkg-deb -x "$d" "$dir" || die "dpkg-deb -x $d"
	done
	mkdir -p "$dir/etc/ssl/certs" "$dir/tmp" "$dir/root"
	chmod 1777 "$dir/tmp"
	cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
}

# users DIR LINE...: writes /etc/passwd and /etc/group from
# "name:uid:gid:home:shell" lines (root first).
users() {
	local dir="$1"
	shift
	: >"$dir/etc/passwd"
	: >"$dir/etc/group"
	local u name uid gid home shell
	for u in "root:0:0:/root:/bin/sh" "$@"; do
		IFS=: read -r name uid gid home shell <<<"$u"
		echo "$name:x:$uid:$gid:$name:$home:$shell" >>"$dir/etc/passwd"
		echo "$name:x:$gid:" >>"$dir/etc/group"
	done
}

# digest FN ARG...: of everything an image is made of (the code that makes
# it, its packages), for its label: changing one image rebuilds only that one.
digest() {
	local fn="$1"
	shift
	{ declare -f rootfs users import "$fn"; printf '%s\n' "$@"; } | sha256sum | cut -c1-16
}

# import NAME DIGEST DIR CHANGE...: docker import of DIR as NAME.
import() {
	local name="$1" dg="$2" dir="$3"
	shift 3
	local args=(--change "LABEL $LABEL=$dg" --change "LABEL org.loginsvc.stand-in.note=\"Debian bookworm build, not the upstream image\"")
	local c
	for c in "$@"; do args+=(--change "$c"); done
	local old
	old="$(docker image inspect -f '{{.Id}}' "$name" 2>/dev/null || true)"
	tar --numeric-owner -C "$dir" -c . | docker import "${args[@]}" - "$name" >/dev/null ||
		die "docker import $name"
	# The previous build, now untagged: removed unless a container uses it.
	[ -z "$old" ] || docker rmi "$old" >/dev/null 2>&1 || true
}

# current NAME DIGEST: the image exists with this digest.
current() {
	[ "$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true)" = "$2" ]
}

# build NAME FN PKG...: builds image NAME with FN DIR unless current.
build() {
	local name="$1" fn="$2"
	shift 2
	local start=$SECONDS list dg
	list="$(debs "$fn" "$@")"
	dg="$(digest "$fn" "$name" "$GOVERSION" "$list")"
	if current "$name" "$dg"; then
		printf '  %-45s up to date (%s)\n' "$name" "$dg"
		return
	fi
	local dir="$work/$fn"
	# shellcheck disable=SC2086
	rootfs "$dir" $list
	"$fn" "$dir" "$name" "$dg"
	printf '  %-45s built in %ds (%s)\n' "$name" $((SECONDS - start)) "$dg"
}

redis_image() {
	local dir="$1"
	users "$dir" "redis:999:999:/data:/usr/sbin/nologin"
	mkdir -p "$dir/data" "$dir/usr/local/bin"
	chown 999:999 "$dir/data"
	# Upstream's image is built with protected mode off (its container is
	# reached over Docker networks, not loopback); Debian's binary has it
	# on, which refuses every other container. The entrypoint, like
	# upstream's docker-entrypoint.sh, adds the setting to redis-server.
	cat >"$dir/usr/local/bin/docker-entrypoint.sh" <<-'SH'
		#!/bin/sh
		# Stand-in entrypoint: redis-server as upstream's image runs it.
		if [ "${1:-}" = redis-server ]; then
			shift
			exec redis-server "$@" --protected-mode no
		fi
		exec "$@"
	SH
	chmod 755 "$dir/usr/local/bin/docker-entrypoint.sh"
	import "$2" "$3" "$dir" \
		"ENV PATH=/usr/local/bin:/usr/bin:/bin" \
		"USER redis" "WORKDIR /data" "VOLUME /data" "EXPOSE 6379" \
		'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["redis-server"]'
}

haproxy_image() {
	local dir="$1"
	# uid/gid 99 as upstream's haproxy image.
	users "$dir" "haproxy:99:99:/var/lib/haproxy:/usr/sbin/nologin"
	mkdir -p "$dir/usr/local/etc/haproxy" "$dir/var/lib/haproxy" "$dir/run/haproxy"
	chown 99:99 "$dir/var/lib/haproxy" "$dir/run/haproxy"
	# The package's example config, so the image starts without a mount.
	cp "$dir/etc/haproxy/haproxy.cfg" "$dir/usr/local/etc/haproxy/haproxy.cfg"
	import "$2" "$3" "$dir" \
		"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		"USER haproxy" "WORKDIR /var/lib/haproxy" \
		'CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]'
}

golang_image() {
	local dir="$1"
	users "$dir"
	mkdir -p "$dir/usr/local" "$dir/go/bin" "$dir/go/src"
	# The toolchain without its own tests and API lists, which no build uses
	# (the module proxy's toolchain has neither).
	local base
	base="$(basename "$GOROOT")"
	tar -C "$GOROOT/.." --exclude="$base/test" --exclude="$base/api" -c "$base" |
		tar -C "$dir/usr/local" -x
	[ "$base" = go ] || mv "$dir/usr/local/$base" "$dir/usr/local/go"
	# The module cache's copy is read-only; upstream's GOROOT is not.
	chmod -R u+w "$dir/usr/local/go"
	chmod 1777 "$dir/go"
	import "$2" "$3" "$dir" \
		"ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		"ENV GOLANG_VERSION=${GOVERSION#go}" "ENV GOPATH=/go" "ENV GOTOOLCHAIN=local" \
		"WORKDIR /go" 'CMD ["bash"]'
}

distroless_image() {
	local dir="$1"
	# Only the data files: distroless/static has no shell and no libc.
	rm -rf "$dir/usr/share/doc" "$dir/usr/share/man" "$dir/usr/share/lintian"
	users "$dir" "nobody:65534:65534:/nonexistent:/sbin/nologin" "nonroot:65532:65532:/home/nonroot:/sbin/nologin"
	mkdir -p "$dir/home/nonroot"
	chown 65532:65532 "$dir/home/nonroot"
	chmod 700 "$dir/home/nonroot"
	import "$2" "$3" "$dir" \
		"ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin" \
		"ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
		"USER 65532" "WORKDIR /home/nonroot"
}

prometheus_image() {
	local dir="$1"
	users "$dir" "nobody:65534:65534:/nonexistent:/usr/sbin/nologin"
	# Upstream's layout: the binary at /bin/prometheus, data in /prometheus
	# owned by nobody (a new named volume takes that ownership).
	mkdir -p "$dir/bin" "$dir/prometheus"
	ln -sf /usr/bin/prometheus "$dir/bin/prometheus"
	chown 65534:65534 "$dir/prometheus"
	import "$2" "$3" "$dir" \
		"ENV PATH=/bin:/usr/bin:/usr/sbin:/sbin" \
		"USER nobody" "WORKDIR /prometheus" "VOLUME /prometheus" "EXPOSE 9090" \
		'ENTRYPOINT ["/bin/prometheus"]' \
		'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]'
}

echo "stand-in images (Debian bookworm builds of the same programs, NOT the upstream images):"
build redis:7.4-alpine redis_image redis-server redis-tools dash
build haproxy:2.6 haproxy_image haproxy bash
build golang:1.27-bookworm golang_image dash bash coreutils
build gcr.io/distroless/static-debian12:nonroot distroless_image tzdata netbase
build prom/prometheus:v3.5.0 prometheus_image prometheus
