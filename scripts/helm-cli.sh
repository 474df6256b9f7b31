#!/usr/bin/env bash
# Makes the Helm v4 CLI that lints and renders deploy/helm/loginsvc, by
# building it from the Go module proxy: no release binary can be downloaded
# on the project's machines, and Debian ships no helm package.
#
#   ./scripts/helm-cli.sh      # ensure it; prints the binary's path on stdout
#
# Progress goes to stderr, so that `HELM_BIN="$(./scripts/helm-cli.sh)"`
# works. The binary is cached in $HELM_CACHE/helm-$HELM_VERSION (default
# /var/cache/loginsvc/helm-v4.3.2/helm), outside the repository, so a second
# run on the same machine is instant. The version is pinned: a newer chart
# renderer could change what the checks see.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v4.3.2}"
HELM_CACHE="${HELM_CACHE:-/var/cache/loginsvc}"

die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go not found"

cached="$HELM_CACHE/helm-$HELM_VERSION/helm"
if [ ! -x "$cached" ]; then
	echo "building helm $HELM_VERSION from the Go module proxy (a few minutes on 2 cores)" >&2
	start=$SECONDS
	work="$(mktemp -d)"
	trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
	mkdir -p "$HELM_CACHE/helm-$HELM_VERSION"
	# helm.sh/helm/v4 has no replace or exclude directives, so `go install
	# pkg@version` builds it as released, from outside any module: no
	# go.mod or go.sum of this repository is touched. The version string
	# `helm version` prints comes from this ldflag, as in upstream's Makefile.
	# GOTOOLCHAIN=local: the machine's own Go builds this tool we merely
	# run, not the project's go1.27.3 that scripts/test.sh exports, so the
	# binary, cached by the tool's version alone, stays valid.
	(cd "$work" && CGO_ENABLED=0 GOBIN="$work/bin" GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local \
		nice -n 10 go install -trimpath \
		-ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
		"helm.sh/helm/v4/cmd/helm@$HELM_VERSION") >&2 || die "go install helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
	# Moved in whole, so an interrupted build never leaves a half binary
	# that the -x test above would take for a good one.
	mv "$work/bin/helm" "$cached.tmp"
	mv "$cached.tmp" "$cached"
	echo "built in $((SECONDS - start))s, cached as $cached" >&2
fi

got="$("$cached" version --template '{{.Version}}')" || die "$cached does not run"
case "$got" in
"$HELM_VERSION" | "$HELM_VERSION"+*) ;;
*) die "$cached says version $got, want $HELM_VERSION" ;;
esac
echo "helm $got at $cached" >&2
printf '%s\n' "$cached"
