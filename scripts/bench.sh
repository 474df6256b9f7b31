#!/usr/bin/env bash
# The benchmark: ./scripts/bench.sh [--smoke]
#
# Builds the server and cmd/benchpeer, starts a redis-server of its own on a
# free loopback port, and drives with wrk (50 connections, 2 threads, all on
# this machine):
#
#   no session   benchpeer: the logged-in index page's bytes, nothing else
#   one GET      benchpeer: one session read through package store, same bytes
#   service      the real server (SESSION_IDLE_TIMEOUT=30m, every production
#                middleware, request log on), logged-in GET /, once with
#                SESSION_CACHE=off and once with SESSION_CACHE=on
#
# and prints one table: req/s, p50, p99, errors, ratio to the no-session
# handler, Redis commands per request (INFO commandstats deltas), Set-Cookie
# count over a counting pass, bytes per session (MEMORY USAGE), session cache
# hit rate (from /metrics, when the server exports it), and a burst of 50
# concurrent logins (errors, p50, peak RSS of the server).
#
# --smoke runs each step for about a second: it checks the harness, and
# fails only if a step cannot run (a process does not start, wrk is
# missing), never because of a figure. scripts/test.sh runs it.
#
# Installs wrk (Debian package) when missing and run as root.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
note() { printf '  %s\n' "$*" >&2; }

smoke=0
case "${1:-}" in
--smoke) smoke=1 ;;
"") ;;
*) die "usage: scripts/bench.sh [--smoke]" ;;
esac
if [ "$smoke" -eq 1 ]; then
	duration=1 warmup=0 count_duration=1 burst_n=5
else
	duration="${BENCH_DURATION:-10}" warmup=2 count_duration=2
fi
connections=50
threads=2
burst_n="${burst_n:-50}"

for d in /usr/local/sbin /usr/sbin /sbin /usr/local/go/bin; do
	case ":$PATH:" in *":$d:"*) ;; *) [ -d "$d" ] && PATH="$PATH:$d" ;; esac
done
export PATH

# ---------------------------------------------------------------------------
# Tools.
if ! command -v wrk >/dev/null 2>&1; then
	[ "$(id -u)" -eq 0 ] || die "wrk is missing; run as root to install it, or: sudo apt-get install -y wrk"
	note "installing wrk"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1 ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; } ||
		die "apt-get install wrk failed"
fi
for t in wrk redis-server redis-cli curl openssl basenc go; do
	command -v "$t" >/dev/null 2>&1 || die "$t not found (scripts/test.sh installs redis-server and redis-cli)"
done

work="$(mktemp -d)"
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

# free_port: a loopback port nobody listens on now.
# Below Linux's ephemeral range (32768-60999): a port there can be the
# local end of some client's connection (wrk's, a test's), which a connect
# probe does not see but a bind does.
free_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 12000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# wait_http URL [STATUS]: until URL answers STATUS (200), or fail.
wait_http() {
	local url="$1" want="${2:-200}" got
	for _ in $(seq 300); do
		got="$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null || true)"
		[ "$got" = "$want" ] && return 0
		sleep 0.05
	done
	return 1
}

# redis_calls: commands Redis has run so far (the INFO that reads it included).
redis_calls() {
	redis-cli -p "$redis_port" INFO commandstats | tr -d '\r' |
		awk -F'[:=,]' '/^cmdstat_/ { s += $3 } END { print s + 0 }'
}

# metric SERIES: the value of one series (name and labels, as exported)
# at the server's /metrics, or nothing.
metric() {
	# Read whole, then searched: piped into an awk that exits at its match,
	# curl met a closed pipe once /metrics outgrew the pipe's buffer, and
	# pipefail turned that into a failed benchmark.
	local all
	all="$(curl -s "http://127.0.0.1:$metrics_port/metrics" 2>/dev/null)" || return 0
	awk -v n="$1" 'index($0, n " ") == 1 { print $NF; exit }' <<<"$all"
}

# served: logged-in page views the server has answered (its own count: wrk
# misses those still in flight when it stops).
served() { metric 'loginsvc_http_requests_total{route="GET /{$}",status="200"}'; }

# ---------------------------------------------------------------------------
printf '==> building server and benchpeer\n' >&2
go build -o "$work/server" ./cmd/server
go build -o "$work/benchpeer" ./cmd/benchpeer

redis_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
	>"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	redis-cli -p "$redis_port" PING 2>/dev/null | grep -q PONG && break
	sleep 0.05
done
redis-cli -p "$redis_port" PING 2>/dev/null | grep -q PONG || die "redis-server did not start: $(tail -5 "$work/redis.log")"
redis_url="redis://127.0.0.1:$redis_port/0"

bench_user=bench
# The login burst is 50 people logging in at once: 50 users (one user's
# concurrent attempts are bounded by LOGIN_MAX_FAILURES, by design), all
# from this machine's one address (hence LOGIN_MAX_FAILURES_PER_IP=1000).
burst_prefix=burst
bench_password="bench-password-$RANDOM-$RANDOM-$RANDOM"
# A common browser's User-Agent, so the session stored is a typical one.
ua='Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0'

cat >"$work/main.lua" <<'LUA'
-- Logged-in GET: the cookie (empty for the peers) on every request.
local cookie = os.getenv("BENCH_COOKIE") or ""
if cookie ~= "" then wrk.headers["Cookie"] = cookie end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d errors=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f\n",
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
# The counting pass parses every response in Lua, which slows wrk: it runs
# apart from the timed one.
cat >"$work/count.lua" <<'LUA'
local cookie = os.getenv("BENCH_COOKIE") or ""
if cookie ~= "" then wrk.headers["Cookie"] = cookie end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) cookies = 0; not200 = 0 end
function response(status, headers, body)
  if headers["Set-Cookie"] ~= nil then cookies = cookies + 1 end
  if status ~= 200 then not200 = not200 + 1 end
end
function done(summary, latency, requests)
  local c, n = 0, 0
  for _, t in ipairs(threads) do c = c + t:get("cookies"); n = n + t:get("not200") end
  io.write(string.format("COUNT requests=%d set_cookie=%d not200=%d\n", summary.requests, c, n))
end
LUA

# drive URL COOKIE [COUNTED]: warm-up, then the timed run; sets the r_*
# figures. COUNTED (a function) says how many requests the target served,
# for Redis commands per request; without it, wrk's count.
drive() {
	local url="$1" cookie="$2" counted="${3:-}" out before after served0="" served1=""
	if [ "$warmup" -gt 0 ]; then
		BENCH_COOKIE="$cookie" wrk -t"$threads" -c"$connections" -d"${warmup}s" -s "$work/main.lua" "$url" >/dev/null ||
			die "wrk warm-up of $url failed"
	fi
	[ -z "$counted" ] || served0="$("$counted")"
	before="$(redis_calls)"
	out="$(BENCH_COOKIE="$cookie" wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$work/main.lua" "$url")" ||
		die "wrk $url failed: $out"
	after="$(redis_calls)"
	[ -z "$counted" ] || served1="$("$counted")"
	local line
	line="$(grep '^BENCH ' <<<"$out")" || die "wrk printed no summary for $url: $out"
	r_requests="$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")"
	r_errors="$(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$line")"
	r_rps="$(sed -E 's/.*rps=([0-9.]+).*/\1/' <<<"$line")"
	r_p50="$(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$line")"
	r_p99="$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$line")"
	local n="$r_requests"
	if [ -n "$served0" ] && [ -n "$served1" ]; then
		n="$(awk -v a="$served1" -v b="$served0" 'BEGIN { printf "%d", a - b }')"
	fi
	# The INFO of "before" is one of the commands counted.
	r_cmds="$(awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN { if (n > 0) printf "%.3f", (a - b - 1) / n; else print "n/a" }')"
	out="$(BENCH_COOKIE="$cookie" wrk -t"$threads" -c"$connections" -d"${count_duration}s" -s "$work/count.lua" "$url")" ||
		die "wrk counting pass of $url failed: $out"
	line="$(grep '^COUNT ' <<<"$out")" || die "wrk printed no count for $url: $out"
	r_cookies="$(sed -E 's/.*set_cookie=([0-9]+).*/\1/' <<<"$line")/$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")"
	local not200
	not200="$(sed -E 's/.*not200=([0-9]+).*/\1/' <<<"$line")"
	r_errors=$((r_errors + not200))
}

rows=()
# row NAME CACHE BYTES HITRATE BURST [INVALIDATION]: one line of the table from r_*.
row() {
	local ratio="1.00"
	if [ -n "${base_rps:-}" ]; then
		ratio="$(awk -v a="$r_rps" -v b="$base_rps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
	fi
	rows+=("$(printf '| %-26s | %-5s | %9.0f | %5s | %7s | %7s | %6s | %9s | %-13s | %7s | %8s | %-44s | %-34s |' \
		"$1" "$2" "$r_rps" "$ratio" "$r_p50" "$r_p99" "$r_errors" "$r_cmds" "$r_cookies" "$3" "$4" "${6:--}" "$5")")
}

# ---------------------------------------------------------------------------
# The service, once per cache mode. The first run also yields the page the
# peers serve and the session they read.
# start_service MODE: the service with SESSION_CACHE=MODE; a port taken
# between probe and bind (another process's) is retried on new ports.
start_service() {
	local attempt
	for attempt in 1 2 3; do
		if start_service_once "$1"; then
			return 0
		fi
		grep -q 'address already in use' "$work/server-$1.log" || return 1
		note "a port was taken at start (attempt $attempt); trying others"
		wait "$server_pid" 2>/dev/null || true
	done
	return 1
}

start_service_once() {
	local mode="$1"
	port="$(free_port)"
	metrics_port="$(free_port)"
	ADDR="127.0.0.1:$port" METRICS_ADDR="127.0.0.1:$metrics_port" REDIS_URL="$redis_url" \
		SESSION_IDLE_TIMEOUT=30m SESSION_CACHE="$mode" INSTANCE_ID=bench SHUTDOWN_DRAIN=0s \
		LOGIN_MAX_FAILURES_PER_IP=1000 DEVICE_COOKIE_KEY="$device_key" \
		BOOTSTRAP_USER="$bench_user" BOOTSTRAP_PASSWORD="$bench_password" \
		"$work/server" >"$work/server-$mode.log" 2>&1 &
	server_pid=$!
	pids+=("$server_pid")
	if ! wait_http "http://127.0.0.1:$port/readyz"; then
		note "service with SESSION_CACHE=$mode did not become ready:"
		tail -5 "$work/server-$mode.log" >&2
		return 1
	fi
	for _ in $(seq 100); do
		grep -q 'bootstrap user' "$work/server-$mode.log" && break
		sleep 0.05
	done
	# What the start-up line says is in effect: "session cache on" or
	# "session cache off" (with its reason), whatever was asked for.
	cache_said="$(grep -m1 -oE 'session cache (on|off)' "$work/server-$mode.log" | awk '{print $3}' || true)"
	[ -n "$cache_said" ] || cache_said="?"
}

stop_service() {
	kill -TERM "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
}

# login: a session for the bench user; sets token and hash.
login() {
	local headers
	headers="$(curl -s -D - -o /dev/null -A "$ua" --data-urlencode "username=$bench_user" \
		--data-urlencode "password=$bench_password" "http://127.0.0.1:$port/login/")" || die "login request failed"
	token="$(tr -d '\r' <<<"$headers" | sed -nE 's/^[Ss]et-[Cc]ookie: session_id=([^;]+).*/\1/p' | head -1)"
	[ -n "$token" ] || die "login gave no session cookie: $headers"
	hash="$(printf %s "$token" | openssl dgst -sha256 -binary | basenc --base64url | tr -d =)"
}

# measure_service MODE: the timed runs and the login burst against the
# running service, as one row.
measure_service() {
	local mode="$1" bytes hits0 miss0 hits1 miss1 hitrate burst rss berr bp50
	bytes="$(redis-cli -p "$redis_port" MEMORY USAGE "scs:session:$hash" SAMPLES 0 | tr -d '\r')"
	hits0="$(metric loginsvc_session_cache_hits_total)"
	miss0="$(metric loginsvc_session_cache_misses_total)"
	drive "http://127.0.0.1:$port/" "session_id=$token" served
	hits1="$(metric loginsvc_session_cache_hits_total)"
	miss1="$(metric loginsvc_session_cache_misses_total)"
	hitrate=n/a
	if [ -n "$hits0" ] && [ -n "$hits1" ]; then
		hitrate="$(awk -v h0="$hits0" -v h1="$hits1" -v m0="${miss0:-0}" -v m1="${miss1:-0}" \
			'BEGIN { h = h1 - h0; m = m1 - m0; if (h + m > 0) printf "%.1f%%", 100 * h / (h + m); else print "n/a" }')"
	fi
	burst="$(BENCH_PASSWORD="$bench_password" "$work/benchpeer" burst -url "http://127.0.0.1:$port/login/" \
		-user-prefix "$burst_prefix" -n "$burst_n")" || die "login burst failed to run"
	rss="$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$server_pid/status")"
	berr="$(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$burst")"
	bp50="$(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$burst")"
	if grep -q 'last_error' <<<"$burst"; then note "login burst (SESSION_CACHE=$mode): $burst"; fi
	local inval="-"
	[ "$cache_said" = on ] && inval="$inval_delay"
	row "service, SESSION_CACHE=$mode" "$cache_said" "$bytes" "$hitrate" \
		"$berr err, p50 ${bp50} ms, peak RSS ${rss} MB" "$inval"
}

# peer NAME ARGS...: benchpeer serve with ARGS, driven, as one row.
peer() {
	local name="$1" p pid
	shift
	p="$(free_port)"
	"$work/benchpeer" serve -addr "127.0.0.1:$p" -body "$work/page.html" "$@" >"$work/peer-$name.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	wait_http "http://127.0.0.1:$p/" || die "benchpeer $name did not start: $(cat "$work/peer-$name.log")"
	drive "http://127.0.0.1:$p/" ""
	kill "$pid" 2>/dev/null || true
}

# add_burst_users: the burst's users, with the bench password.
add_burst_users() {
	local i
	for i in $(seq "$burst_n"); do
		printf '%s\n' "$bench_password" | REDIS_URL="$redis_url" "$work/server" user add "$burst_prefix$i" >/dev/null ||
			die "server user add $burst_prefix$i failed"
	done
}

# The first service run yields the page the peers serve and the session
# the one-GET peer reads; it idles while they run.
# Every replica of a real deployment shares one; the bench's is its own.
device_key="$(openssl rand -hex 32)"

# The invalidation delay: from a Delete returning on one store to another
# store (another replica) no longer finding the session in its cache, on
# a redis-server of its own; the session cache's Go benchmark measures it.
printf '==> session cache invalidation delay (go test -bench CacheInvalidationDelay)\n' >&2
tries=500
[ "$smoke" -eq 1 ] && tries=20
inval_out="$(go test -run '^$' -bench CacheInvalidationDelay -benchtime "${tries}x" ./internal/store 2>&1)" ||
	die "BenchmarkCacheInvalidationDelay failed: $inval_out"
inval_delay="$(grep -m1 -oE 'p50 [^,]+, p99 [^,]+, max [^ ]+' <<<"$inval_out")" ||
	die "BenchmarkCacheInvalidationDelay printed no figures: $inval_out"

printf '==> service, SESSION_CACHE=off: start, log in, fetch the page\n' >&2
start_service off || die "the service did not start"
login
curl -s -A "$ua" -H "Cookie: session_id=$token" -o "$work/page.html" "http://127.0.0.1:$port/" ||
	die "GET / logged in failed"
grep -q "$bench_user" "$work/page.html" || die "GET / with the session cookie does not show the user"
add_burst_users

printf '==> no-session handler\n' >&2
peer plain
base_rps="$r_rps"
row "Go handler, no session" - - - -
printf '==> one-GET handler\n' >&2
peer oneget -redis "$redis_url" -key "$hash"
row "Go handler + one GET" - - - -

printf '==> service, SESSION_CACHE=off\n' >&2
measure_service off
stop_service

printf '==> service, SESSION_CACHE=on\n' >&2
if start_service on; then
	login
	measure_service on
	stop_service
else
	[ "$smoke" -eq 0 ] || die "the service did not start with SESSION_CACHE=on"
	r_rps=0 r_p50=- r_p99=- r_errors=- r_cmds=- r_cookies=-
	row "service (did not start)" on - - -
fi

# ---------------------------------------------------------------------------
printf '\nloginsvc benchmark%s: wrk -t%d -c%d, %ss per row (after %ss warm-up), %s CPUs, %s, %s\n' \
	"$([ "$smoke" -eq 1 ] && echo ' (SMOKE: figures meaningless)')" "$threads" "$connections" "$duration" "$warmup" \
	"$(nproc)" "$(redis-server --version | awk '{ print $1 " " $3 }')" "$(go env GOVERSION)"
printf '| %-26s | %-5s | %9s | %5s | %7s | %7s | %6s | %9s | %-13s | %7s | %8s | %-44s | %-34s |\n' \
	server cache 'req/s' ratio 'p50 ms' 'p99 ms' errors 'redis/req' 'Set-Cookie' 'B/sess' 'hit rate' 'inval. delay' 'login burst (50 concurrent)'
printf '|%s|\n' "----------------------------|-------|-----------|-------|---------|---------|--------|-----------|---------------|---------|----------|----------------------------------------------|------------------------------------"
printf '%s\n' "${rows[@]}"
cat <<'NOTE'
ratio: req/s over the no-session handler's in this run. redis/req: INFO commandstats
delta per request. Set-Cookie: responses carrying one / responses, over a separate
counting pass. B/sess: MEMORY USAGE of the bench session's key. cache: what the
server's start-up line says is in effect ("session cache on|off"), "?" if it says nothing. hit rate:
from the server's /metrics (loginsvc_session_cache_hits_total over hits + misses).
inval. delay: from a logout (Delete) on one replica to another replica's cache
dropping the session, over the tries of BenchmarkCacheInvalidationDelay (internal/store).
NOTE
printf 'bench took %ds\n' "$SECONDS"
