#!/usr/bin/env bash
# The benchmark: ./scripts/bench.sh [--smoke|--scale]
#
# Builds the server and cmd/benchpeer, starts a redis-server of its own on a
# free loopback port, and drives with wrk (50 connections, 2 threads, all on
# this machine):
#
#   no session   benchpeer: the logged-in index page's bytes, nothing else
#   one GET      benchpeer: one session read through package store, same bytes
#   + N of CPU   benchpeer -burn: the no-session handler after burning N of
#                CPU per request on arithmetic (side-by-side tables only)
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
# Then, side by side, one table per endpoint (GET /auth/verify, the
# forward-auth check; GET / logged in): every system up at once, driven in
# BENCH_ROUNDS rounds (3) of alternating order, with the median req/s, its
# ratio to the ceiling and to oauth2-proxy, p50, p99, the server's CPU per
# request (/proc) and Redis commands per request. The check's peer is
# oauth2-proxy v7.15.6 on the same Redis (its Redis session store, htpasswd
# login, GET /oauth2/auth), built once with go install from the Go module
# proxy into /var/cache/loginsvc/oauth2-proxy-v7.15.6 (OAUTH2_PROXY_BIN
# names another binary).
#
# --smoke runs each step for about a second, one round, and skips
# oauth2-proxy (never built by the smoke, which the test command runs): it checks the harness, and
# fails only if a step cannot run (a process does not start, wrk is
# missing), never because of a figure. scripts/test.sh runs it.
#
# --scale (not part of the smoke, nor of the default run) is the scale
# figure instead: BENCH_SESSIONS (1,000,000) sessions of BENCH_USERS
# (100,000) users written straight into Redis in the service's format, with
# their per-user index entries (benchpeer seed | redis-cli --pipe), Redis
# memory per session (INFO memory before and after), then GET /auth/verify
# with each request naming one of them at random, SESSION_CACHE=on and off
# beside the ceiling, in alternating rounds. BENCH_HOT=N asks about N of
# them only (the sessions in use; the rest sit in Redis).
#
# Installs wrk (Debian package) when missing and run as root.
set -euo pipefail

# The server and benchpeer are built with the project's Go, the one go.mod's
# go line asks for: the machine's own go1.26.8 refuses the module (and
# would measure a standard library with known vulnerabilities). The go
# command fetches go1.27.3 from the Go module proxy once. Keep it equal to
# scripts/test.sh's.
export GOTOOLCHAIN=go1.27.3

cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
note() { printf '  %s\n' "$*" >&2; }

smoke=0 scale=0
case "${1:-}" in
--smoke) smoke=1 ;;
--scale) scale=1 ;;
"") ;;
*) die "usage: scripts/bench.sh [--smoke|--scale]" ;;
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
bench_script="$work/main.lua"
# --scale: each request names one of the seeded sessions at random (the
# tokens in BENCH_TOKENS, one a line), so the session cache holds what a
# replica's does under many users, not one hot session.
cat >"$work/random.lua" <<'LUA'
local tokens = {}
local file = os.getenv("BENCH_TOKENS") or ""
if file ~= "" then for line in io.lines(file) do tokens[#tokens + 1] = line end end
local n = #tokens
-- BENCH_HOT: only the first so many sessions are asked about (the ones in
-- use), the rest just sit in Redis.
local hot = tonumber(os.getenv("BENCH_HOT") or "")
if hot and hot > 0 and hot < n then n = hot end
local cookie = os.getenv("BENCH_COOKIE") or ""
function init(args)
  -- Each thread its own sequence.
  math.randomseed(os.time() + math.floor(os.clock() * 1e6) + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end
function request()
  -- The ceiling gets no cookie (BENCH_COOKIE empty), as in the other runs.
  if n == 0 or cookie == "" then return wrk.format() end
  return wrk.format(nil, nil, { Cookie = cookie .. tokens[math.random(n)] })
end
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

# ---------------------------------------------------------------------------
# The side-by-side runs (and --scale's): rounds of alternating order.
rounds="${BENCH_ROUNDS:-3}"
[ "$smoke" -eq 1 ] && rounds=1
o2p_version=v7.15.6
o2p_bin="${OAUTH2_PROXY_BIN:-/var/cache/loginsvc/oauth2-proxy-$o2p_version/oauth2-proxy}"

# cpu_ticks PID: user + system clock ticks the process has used.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# one_run FILE NAME URL COOKIE PID: one timed wrk run, as a line of FILE.
one_run() {
	local file="$1" name="$2" url="$3" cookie="$4" pid="$5" out line t0 t1 c0 c1 n
	if [ "$warmup" -gt 0 ]; then
		BENCH_COOKIE="$cookie" wrk -t"$threads" -c"$connections" -d1s -s "$bench_script" "$url" >/dev/null ||
			die "wrk warm-up of $url failed"
	fi
	c0="$(redis_calls)"
	t0="$(cpu_ticks "$pid")"
	out="$(BENCH_COOKIE="$cookie" wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$bench_script" "$url")" ||
		die "wrk $url failed: $out"
	t1="$(cpu_ticks "$pid")"
	c1="$(redis_calls)"
	line="$(grep '^BENCH ' <<<"$out")" || die "wrk printed no summary for $url: $out"
	n="$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")"
	# The INFO of "before" is one of the commands counted.
	awk -v name="$name" -v line="$line" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" -v n="$n" -v c0="$c0" -v c1="$c1" 'BEGIN {
		split(line, f, /[ =]/)
		for (i = 1; i < length(f); i++) v[f[i]] = f[i + 1]
		if (n == 0) n = 1
		printf "%s\t%s\t%s\t%s\t%s\t%.1f\t%.3f\n", name, v["rps"], v["p50_ms"], v["p99_ms"], v["errors"], (t1 - t0) / hz * 1e6 / n, (c1 - c0 - 1) / n
	}' >>"$file"
}

# side_table TITLE FILE CEILING PEER SYSTEM...: the rounds, then the table.
# A SYSTEM is NAME, URL, COOKIE and PID joined by the unit separator, \x1f (a cookie may hold
# "|": oauth2-proxy's does); CEILING and PEER name systems ("" for no peer).
side_table() {
	local title="$1" file="$2" ceiling="$3" peerName="$4" r i sys name url cookie pid
	shift 4
	local systems=("$@") order
	: >"$file"
	for r in $(seq "$rounds"); do
		order=()
		if [ $((r % 2)) -eq 1 ]; then
			for i in "${!systems[@]}"; do order+=("${systems[$i]}"); done
		else
			for ((i = ${#systems[@]} - 1; i >= 0; i--)); do order+=("${systems[$i]}"); done
		fi
		for sys in "${order[@]}"; do
			IFS=$'\x1f' read -r name url cookie pid <<<"$sys"
			printf '==> %s, round %d/%d: %s\n' "$title" "$r" "$rounds" "$name" >&2
			one_run "$file" "$name" "$url" "$cookie" "$pid"
		done
	done
	printf '\n%s: median of %d round(s), alternating order\n' "$title" "$rounds"
	printf '| %-34s | %9s | %9s | %9s | %7s | %7s | %6s | %9s | %9s |\n' system 'req/s' 'x ceiling' 'x o2proxy' 'p50 ms' 'p99 ms' errors 'CPU us/req' 'redis/req'
	printf '|%s|\n' '------------------------------------|-----------|-----------|-----------|---------|---------|--------|------------|-----------'
	local names=()
	for sys in "${systems[@]}"; do IFS=$'\x1f' read -r name _ <<<"$sys"; names+=("$name"); done
	for name in "${names[@]}"; do
		awk -F'\t' -v name="$name" -v ceil="$ceiling" -v peer="$peerName" '
			function median(a, k,   j, m, t) {
				for (j = 1; j <= k; j++) for (m = j + 1; m <= k; m++) if (a[m] < a[j]) { t = a[j]; a[j] = a[m]; a[m] = t }
				return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
			}
			{ k = ++cnt[$1]; rps[$1, k] = $2; p50[$1, k] = $3; p99[$1, k] = $4; err[$1] += $5; cpu[$1, k] = $6; cmd[$1, k] = $7 }
			END {
				split("", a); for (j = 1; j <= cnt[name]; j++) a[j] = rps[name, j]; mr = median(a, cnt[name])
				split("", a); for (j = 1; j <= cnt[ceil]; j++) a[j] = rps[ceil, j]; cr = median(a, cnt[ceil])
				pr = 0; if (peer != "" && cnt[peer] > 0) { split("", a); for (j = 1; j <= cnt[peer]; j++) a[j] = rps[peer, j]; pr = median(a, cnt[peer]) }
				split("", a); for (j = 1; j <= cnt[name]; j++) a[j] = p50[name, j]; m50 = median(a, cnt[name])
				split("", a); for (j = 1; j <= cnt[name]; j++) a[j] = p99[name, j]; m99 = median(a, cnt[name])
				split("", a); for (j = 1; j <= cnt[name]; j++) a[j] = cpu[name, j]; mc = median(a, cnt[name])
				split("", a); for (j = 1; j <= cnt[name]; j++) a[j] = cmd[name, j]; md = median(a, cnt[name])
				printf "| %-34s | %9.0f | %9s | %9s | %7.2f | %7.2f | %6d | %10.1f | %9.3f |\n", name, mr,
					(cr > 0 ? sprintf("%.2f", mr / cr) : "n/a"), (pr > 0 ? sprintf("%.2f", mr / pr) : "n/a"), m50, m99, err[name], mc, md
			}' "$file"
	done
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

# ---------------------------------------------------------------------------
# --scale: GET /auth/verify with BENCH_SESSIONS (1,000,000) live sessions in
# Redis, written directly (benchpeer seed | redis-cli --pipe) in the format
# the service stores, with their per-user index entries; Redis memory per
# session from INFO memory before and after; then the ceiling and the
# service with SESSION_CACHE=on and =off in alternating rounds, each request
# naming a session at random.
if [ "$scale" -eq 1 ]; then
	n_sessions="${BENCH_SESSIONS:-1000000}"
	n_users="${BENCH_USERS:-100000}"
	printf '==> scale: a session to copy the format of\n' >&2
	start_service off || die "the service did not start"
	login
	sv_off="http://127.0.0.1:$port" pid_off="$server_pid" metrics_off="$metrics_port"
	redis-cli -p "$redis_port" GET "scs:session:$hash" | head -c -1 >"$work/template.json"
	[ -s "$work/template.json" ] || die "the bench session is not at scs:session:$hash"
	used() { redis-cli -p "$redis_port" INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'; }
	keys0="$(redis-cli -p "$redis_port" DBSIZE | tr -d '\r')"
	mem0="$(used)"
	printf '==> scale: writing %d sessions of %d users into Redis\n' "$n_sessions" "$n_users" >&2
	t0=$SECONDS
	"$work/benchpeer" seed -template "$work/template.json" -n "$n_sessions" -users "$n_users" -tokens "$work/tokens" |
		redis-cli -p "$redis_port" --pipe >"$work/pipe.log" 2>&1 || die "redis-cli --pipe failed: $(tail -3 "$work/pipe.log")"
	grep -q 'errors: 0' "$work/pipe.log" || die "redis-cli --pipe reported errors: $(tail -3 "$work/pipe.log")"
	seed_s=$((SECONDS - t0))
	keys1="$(redis-cli -p "$redis_port" DBSIZE | tr -d '\r')"
	mem1="$(used)"
	sample="$(redis-cli -p "$redis_port" RANDOMKEY | tr -d '\r')"
	while [[ "$sample" != scs:session:* ]]; do sample="$(redis-cli -p "$redis_port" RANDOMKEY | tr -d '\r')"; done
	key_bytes="$(redis-cli -p "$redis_port" MEMORY USAGE "$sample" SAMPLES 0 | tr -d '\r')"
	doc_bytes="$(redis-cli -p "$redis_port" STRLEN "$sample" | tr -d '\r')"

	start_service on || die "the service did not start with SESSION_CACHE=on"
	sv_on="http://127.0.0.1:$port" pid_on="$server_pid" metrics_on="$metrics_port"
	: >"$work/empty"
	p_ceil="$(free_port)"
	"$work/benchpeer" serve -addr "127.0.0.1:$p_ceil" -body "$work/empty" >"$work/peer-ceiling.log" 2>&1 &
	pid_ceil=$!
	pids+=("$pid_ceil")
	wait_http "http://127.0.0.1:$p_ceil/" || die "benchpeer did not start"
	# Every seeded session answers: a sample through the service first.
	for tok in $(shuf -n 3 "$work/tokens"); do
		got="$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: session_id=$tok" "$sv_off/auth/verify")"
		[ "$got" = 200 ] || die "a seeded session is refused by /auth/verify: $got"
	done
	export BENCH_TOKENS="$work/tokens"
	bench_script="$work/random.lua"
	metrics_port="$metrics_on"
	hits0="$(metric loginsvc_session_cache_hits_total)" miss0="$(metric loginsvc_session_cache_misses_total)"
	asked="each request a random one"
	[ -z "${BENCH_HOT:-}" ] || asked="each request one of $BENCH_HOT of them at random"
	scale_table="$(side_table "GET /auth/verify, $n_sessions sessions, $asked" "$work/rounds-scale" \
		"Go handler, no session (ceiling)" "" \
		"Go handler, no session (ceiling)"$'\x1f'"http://127.0.0.1:$p_ceil/"$'\x1f'""$'\x1f'"$pid_ceil" \
		"service, SESSION_CACHE=on"$'\x1f'"$sv_on/auth/verify"$'\x1f'"session_id="$'\x1f'"$pid_on" \
		"service, SESSION_CACHE=off"$'\x1f'"$sv_off/auth/verify"$'\x1f'"session_id="$'\x1f'"$pid_off")"
	hits1="$(metric loginsvc_session_cache_hits_total)" miss1="$(metric loginsvc_session_cache_misses_total)"
	printf '%s\n' "$scale_table"
	awk -v h0="${hits0:-0}" -v h1="${hits1:-0}" -v m0="${miss0:-0}" -v m1="${miss1:-0}" \
		'BEGIN { h = h1 - h0; m = m1 - m0; if (h + m > 0) printf "session cache hit rate (SESSION_CACHE=on, all rounds): %.1f%%\n", 100 * h / (h + m) }'
	awk -v n="$n_sessions" -v k0="$keys0" -v k1="$keys1" -v m0="$mem0" -v m1="$mem1" -v kb="$key_bytes" -v db="$doc_bytes" -v s="$seed_s" 'BEGIN {
		printf "Redis: %d keys added (sessions and user indexes) in %ds; used_memory %.0f MB -> %.0f MB: %.0f bytes per session, index entries included\n", k1 - k0, s, m0 / 1048576, m1 / 1048576, (m1 - m0) / n
		printf "one session key: MEMORY USAGE %d bytes, its document %d bytes\n", kb, db
	}'
	printf 'load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf 'bench --scale took %ds\n' "$SECONDS"
	exit 0
fi

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

# ---------------------------------------------------------------------------
# Side by side: one table per endpoint, every system up at once and driven in
# turn, in rounds whose order alternates (a machine shared with others drifts:
# each system sees early and late slots), medians over the rounds. The server
# CPU per request is from /proc (utime + stime of the process that answered),
# steadier than req/s on a loaded machine.
printf '\n==> side by side: starting every system\n' >&2
: >"$work/empty"
p_ceil="$(free_port)"
"$work/benchpeer" serve -addr "127.0.0.1:$p_ceil" -body "$work/empty" >"$work/peer-ceiling.log" 2>&1 &
pid_ceil=$!
pids+=("$pid_ceil")
p_page="$(free_port)"
"$work/benchpeer" serve -addr "127.0.0.1:$p_page" -body "$work/page.html" >"$work/peer-page.log" 2>&1 &
pid_page=$!
pids+=("$pid_page")
# The burning yardsticks: the ceiling made to spend about the service's
# extra CPU per request on arithmetic alone (benchpeer -burn), so that the
# service's p99 can be set beside the p99 that much CPU gives by itself.
burn_check="${BENCH_BURN_CHECK:-20us}" burn_page="${BENCH_BURN_PAGE:-40us}"
p_burn_check="$(free_port)"
"$work/benchpeer" serve -addr "127.0.0.1:$p_burn_check" -body "$work/empty" -burn "$burn_check" >"$work/peer-burn-check.log" 2>&1 &
pid_burn_check=$!
pids+=("$pid_burn_check")
p_burn_page="$(free_port)"
"$work/benchpeer" serve -addr "127.0.0.1:$p_burn_page" -body "$work/page.html" -burn "$burn_page" >"$work/peer-burn-page.log" 2>&1 &
pid_burn_page=$!
pids+=("$pid_burn_page")
for p in "$p_ceil" "$p_page" "$p_burn_check" "$p_burn_page"; do wait_http "http://127.0.0.1:$p/" || die "benchpeer on $p did not start"; done

start_service on || die "the service did not start with SESSION_CACHE=on"
login
sv_on="http://127.0.0.1:$port" pid_on="$server_pid" tok_on="$token"
start_service off || die "the service did not start with SESSION_CACHE=off"
login
sv_off="http://127.0.0.1:$port" pid_off="$server_pid" tok_off="$token"
# The one-GET peer reads the session just made.
p_oneget="$(free_port)"
"$work/benchpeer" serve -addr "127.0.0.1:$p_oneget" -body "$work/page.html" -redis "$redis_url" -key "$hash" >"$work/peer-oneget.log" 2>&1 &
pid_oneget=$!
pids+=("$pid_oneget")
wait_http "http://127.0.0.1:$p_oneget/" || die "benchpeer one-GET did not start: $(cat "$work/peer-oneget.log")"

# The peer: oauth2-proxy, built once from the Go module proxy into a cache
# outside the repository, on the same Redis (its Redis session store) with
# an htpasswd login, so no identity provider is needed. Its check is
# GET /oauth2/auth (202 with the cookie of POST /oauth2/sign_in). The smoke
# run never builds it: the test command runs the smoke on every CI run.
o2p_row=()
if [ "$smoke" -eq 1 ]; then
	note "smoke: oauth2-proxy skipped (the full run builds it once into $(dirname "$o2p_bin"))"
else
	if [ ! -x "$o2p_bin" ]; then
		note "building oauth2-proxy $o2p_version into $(dirname "$o2p_bin") (once)"
		mkdir -p "$(dirname "$o2p_bin")"
		# The machine's own Go builds it, as it builds Traefik and Helm
		# (GOTOOLCHAIN=local; its go.mod asks for 1.26.0): a peer we merely
		# run, cached by its version alone, so a cached binary stays valid.
		GOTOOLCHAIN=local GOFLAGS=-mod=mod GOBIN="$(dirname "$o2p_bin")" go install "github.com/oauth2-proxy/oauth2-proxy/v7@$o2p_version" ||
			die "building oauth2-proxy failed"
	fi
	o2p_password="bench-$RANDOM-$RANDOM"
	# {SHA}: one of the two hash forms its htpasswd reader takes (bcrypt
	# is the other); the hash's cost is paid once, at sign-in.
	printf 'bench:{SHA}%s\n' "$(printf %s "$o2p_password" | openssl dgst -sha1 -binary | base64)" >"$work/htpasswd"
	p_o2p="$(free_port)"
	"$o2p_bin" --http-address="127.0.0.1:$p_o2p" --provider=google --client-id=bench --client-secret=bench \
		--cookie-secret="$(openssl rand -hex 16)" --cookie-secure=false --email-domain='*' \
		--htpasswd-file="$work/htpasswd" --upstream=static://200 --request-logging=true \
		--session-store-type=redis --redis-connection-url="$redis_url" >"$work/oauth2-proxy.log" 2>&1 &
	pid_o2p=$!
	pids+=("$pid_o2p")
	wait_http "http://127.0.0.1:$p_o2p/ping" || die "oauth2-proxy did not start: $(tail -5 "$work/oauth2-proxy.log")"
	o2p_cookie="$(curl -s -D - -o /dev/null --data-urlencode username=bench --data-urlencode "password=$o2p_password" \
		"http://127.0.0.1:$p_o2p/oauth2/sign_in" | tr -d '\r' | sed -nE 's/^[Ss]et-[Cc]ookie: (_oauth2_proxy=[^;]+).*/\1/p' | head -1)"
	[ -n "$o2p_cookie" ] || die "oauth2-proxy sign-in gave no cookie: $(tail -5 "$work/oauth2-proxy.log")"
	[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $o2p_cookie" "http://127.0.0.1:$p_o2p/oauth2/auth")" = 202 ] ||
		die "oauth2-proxy's /oauth2/auth does not accept its own cookie"
	o2p_row=("oauth2-proxy $o2p_version on Redis"$'\x1f'"http://127.0.0.1:$p_o2p/oauth2/auth"$'\x1f'"$o2p_cookie"$'\x1f'"$pid_o2p")
fi
o2p_name=""
[ "${#o2p_row[@]}" -eq 0 ] || o2p_name="oauth2-proxy $o2p_version on Redis"

check_tables="$(
	side_table "GET /auth/verify (forward-auth check)" "$work/rounds-verify" "Go handler, no session (ceiling)" "$o2p_name" \
		"Go handler, no session (ceiling)"$'\x1f'"http://127.0.0.1:$p_ceil/"$'\x1f'""$'\x1f'"$pid_ceil" \
		"ceiling + $burn_check of CPU"$'\x1f'"http://127.0.0.1:$p_burn_check/"$'\x1f'""$'\x1f'"$pid_burn_check" \
		"service, SESSION_CACHE=on"$'\x1f'"$sv_on/auth/verify"$'\x1f'"session_id=$tok_on"$'\x1f'"$pid_on" \
		"service, SESSION_CACHE=off"$'\x1f'"$sv_off/auth/verify"$'\x1f'"session_id=$tok_off"$'\x1f'"$pid_off" \
		"${o2p_row[@]}"
	side_table "GET / logged in (the page)" "$work/rounds-page" "Go handler, no session (ceiling)" "" \
		"Go handler, no session (ceiling)"$'\x1f'"http://127.0.0.1:$p_page/"$'\x1f'""$'\x1f'"$pid_page" \
		"ceiling + $burn_page of CPU"$'\x1f'"http://127.0.0.1:$p_burn_page/"$'\x1f'""$'\x1f'"$pid_burn_page" \
		"Go handler + one GET"$'\x1f'"http://127.0.0.1:$p_oneget/"$'\x1f'""$'\x1f'"$pid_oneget" \
		"service, SESSION_CACHE=on"$'\x1f'"$sv_on/"$'\x1f'"session_id=$tok_on"$'\x1f'"$pid_on" \
		"service, SESSION_CACHE=off"$'\x1f'"$sv_off/"$'\x1f'"session_id=$tok_off"$'\x1f'"$pid_off"
)"
printf '%s\n' "$check_tables"
if [ "$smoke" -eq 1 ]; then
	printf '(smoke: oauth2-proxy not run, so no x o2proxy column figures)\n'
fi
printf 'load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
cat <<'NOTE'
ceiling: a Go handler answering with no session (an empty 200 for the check,
the page's bytes for GET /). CPU us/req: the answering process's utime +
stime over wrk's requests. redis/req: INFO commandstats delta per request,
all systems share one Redis (the idle ones add their few health pings).
oauth2-proxy answers 202 with Gap-Auth, counted as success. ceiling + N of
CPU: the ceiling after burning about N of CPU per request on arithmetic
alone (no allocation, lock or I/O; BENCH_BURN_CHECK, BENCH_BURN_PAGE): the
p99 that much CPU gives by itself on this machine.
NOTE
printf 'bench took %ds\n' "$SECONDS"
