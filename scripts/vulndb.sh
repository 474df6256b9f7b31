#!/usr/bin/env bash
# Makes the Go vulnerability database that govulncheck reads in the test
# command, offline: the project's machines cannot reach vuln.go.dev, but the
# Go module proxy serves golang.org/x/vulndb, the repository that database is
# generated from (its data/osv holds one OSV report per vulnerability), and
# that repository's own cmd/indexdb writes the database from it.
#
#   ./scripts/vulndb.sh      # ensure it; prints the database's directory on stdout
#
# Progress goes to stderr, so that `db="$(./scripts/vulndb.sh)"` works; use
# it as `govulncheck -db "file://$db" ./...`. The database is cached in
# $VULNDB_CACHE/vulndb-$VULNDB_VERSION (default /var/cache/loginsvc), outside
# the repository, so a second run on the same machine is instant.
#
# The version is pinned: the test command's verdict changes only when a
# commit changes it. To take in newer reports, set VULNDB_VERSION below to a
# newer pseudo-version of golang.org/x/vulndb (it has no tagged versions;
# `go list -m golang.org/x/vulndb@latest`, outside this module, names the
# newest the proxy serves, and the date in it is the snapshot's) and run
# ./scripts/test.sh: the new database is built once, the old folder can be
# deleted.
set -euo pipefail

VULNDB_VERSION="${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}"
VULNDB_CACHE="${VULNDB_CACHE:-/var/cache/loginsvc}"

die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go not found"

db="$VULNDB_CACHE/vulndb-$VULNDB_VERSION"
if [ ! -f "$db/index/db.json" ]; then
	echo "building the vulnerability database from golang.org/x/vulndb@$VULNDB_VERSION (a minute or two the first time)" >&2
	start=$SECONDS
	mkdir -p "$VULNDB_CACHE"
	# Beside its final place, so that the rename below stays on one file
	# system and is atomic: an interrupted build leaves a temporary folder,
	# never a half database that the test above would take for a good one.
	work="$(mktemp -d "$VULNDB_CACHE/.vulndb-build.XXXXXX")"
	trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
	# Outside any module, so no go.mod or go.sum of this repository is
	# touched; the module cache's copy is read-only, indexdb runs in a
	# writable one.
	dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
	[ -n "$dir" ] && [ -d "$dir/data/osv" ] || die "go mod download golang.org/x/vulndb@$VULNDB_VERSION gave no directory with data/osv"
	cp -r "$dir/." "$work/src"
	chmod -R u+w "$work/src"
	# indexdb is a tool we merely run, like Traefik or Helm: the machine's
	# own Go builds it (GOTOOLCHAIN=local; vulndb's go.mod asks for 1.26.0),
	# not the project's go1.27.3. What it writes is data, the same whichever
	# Go wrote it.
	(cd "$work/src" && GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local \
		nice -n 10 go run ./cmd/indexdb -vulns data/osv -out "$work/db") >&2 ||
		die "go run ./cmd/indexdb of golang.org/x/vulndb@$VULNDB_VERSION"
	[ -f "$work/db/index/db.json" ] || die "indexdb wrote no index/db.json"
	# mv -T fails rather than moving into a folder that a concurrent run
	# has put in place meanwhile; that run's database is as good.
	if ! mv -T "$work/db" "$db" 2>/dev/null; then
		[ -f "$db/index/db.json" ] || die "cannot move the database to $db"
	fi
	echo "built in $((SECONDS - start))s, cached as $db" >&2
fi

# indexdb dates nothing (every "modified" is zero): the version's date and
# the newest report's ID say how recent the database is.
reports="$(grep -o '"id":"GO-[0-9-]*"' "$db/index/vulns.json" | cut -d'"' -f4 | sort)"
echo "vulnerability database golang.org/x/vulndb@$VULNDB_VERSION: $(wc -l <<<"$reports") reports, newest $(tail -n 1 <<<"$reports"), at $db" >&2
echo "$db"
