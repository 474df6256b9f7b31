package main

import (
	"cmp"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"loginsvc/internal/activity"
	"loginsvc/internal/auth"
	"loginsvc/internal/logging"
	"loginsvc/internal/store"
)

// config is the whole configuration. Every field comes from a flag whose
// default is the environment variable of the same meaning.
type config struct {
	Addr                  string        // ADDR, default ":8080" with REDIS_URL, "127.0.0.1:8080" without
	AddrNote              string        // where Addr came from, for the start-up line: REDIS_URL widens the default
	RedisURL              string        // REDIS_URL, default "" (embedded in-memory Redis)
	RedisFailoverWait     time.Duration // REDIS_FAILOVER_WAIT, default 10s: how long a write waits for Sentinel or Cluster to promote a replica; 0: not at all
	SessionLifetime       time.Duration // SESSION_LIFETIME, default 24h, absolute from login
	SessionIdle           time.Duration // SESSION_IDLE_TIMEOUT, default 30m, 0 disables
	CookieName            string        // SESSION_COOKIE_NAME, default "session_id"
	CookieSecure          bool          // COOKIE_SECURE, default false; set true behind TLS
	LogLevel              slog.Level    // LOG_LEVEL, default info
	InstanceID            string        // INSTANCE_ID, default the host name
	TrustedProxies        []netip.Prefix
	ShutdownDrain         time.Duration // SHUTDOWN_DRAIN, default 5s
	BootstrapUser         string        // BOOTSTRAP_USER
	LoginMaxFailures      int           // LOGIN_MAX_FAILURES, default 10 per account per window
	LoginMaxFailuresPerIP int           // LOGIN_MAX_FAILURES_PER_IP, default 50 per address per window
	LoginWindow           time.Duration // LOGIN_WINDOW, default 15m
	MaxSessionsPerUser    int           // MAX_SESSIONS_PER_USER, default 100
	SessionCache          bool          // SESSION_CACHE, default on ("on" or "off"); off anyway where Redis cannot support it
	LogFormat             string        // LOG_FORMAT, default "text"; "json" for one JSON object a line
	GC                    gcSettings    // GOGC (default 400) and GOMEMLIMIT (default 80% of a cgroup limit): gc.go
	MetricsAddr           string        // METRICS_ADDR, default "127.0.0.1:9090"; "" when off
	MetricsAddrSet        bool          // METRICS_ADDR was given: not being able to listen on it is an error, not a warning
	Pprof                 bool          // PPROF, default off ("on" or "off"): serve Go's profiles at /debug/pprof/ on METRICS_ADDR
	BootstrapPassword     string        // BOOTSTRAP_PASSWORD
	LoginMaxAttemptsPerIP int           // LOGIN_MAX_ATTEMPTS_PER_IP, default 300 attempts (successful ones too) per address per window
	DeviceCookieKey       []byte        // DEVICE_COOKIE_KEY's first key (environment only): required with REDIS_URL; embedded mode: random
	OldDeviceCookieKeys   [][]byte      // DEVICE_COOKIE_KEY's further keys, comma-separated: still accepted, not used to sign
	AuthAllowedHosts      []string      // AUTH_ALLOWED_HOSTS, default none: hosts a login may return to
	AuthLoginURL          string        // AUTH_LOGIN_URL, default "/login/": where forward auth sends browsers
	CookieDomain          string        // COOKIE_DOMAIN, default "" (host-only cookie)
	RequireTwoFactor      bool          // REQUIRE_TWO_FACTOR, default false: every user must set up a second factor
	ReauthMaxAge          time.Duration // REAUTH_MAX_AGE, default 10m: how recent a full authentication a password or factor change needs
	AuthTwoFactorHosts    []string      // AUTH_TWO_FACTOR_HOSTS, default none: protected apps that accept only two-factor sessions
	TOTPIssuer            string        // TOTP_ISSUER, default "loginsvc": the name authenticator apps show
	WebAuthnRPID          string        // WEBAUTHN_RP_ID, default the host of an absolute AUTH_LOGIN_URL, else "" (each request's host)
	WebAuthnOrigins       []string      // WEBAUTHN_ORIGINS, default none: any origin on WEBAUTHN_RP_ID or a subdomain of it
	EventsStream          bool          // EVENTS_STREAM, default on: the service-wide stream of security events
	EventsMaxLen          int           // EVENTS_MAXLEN, default 100000: its cap (MAXLEN ~)
}

// defaultMetricsAddr is where /metrics listens unless METRICS_ADDR says
// otherwise: loopback, so that nothing outside the host scrapes or profiles
// a replica that was not configured for it.
const defaultMetricsAddr = "127.0.0.1:9090"

// helpRequested carries the usage text for -h/--help, which is an answer,
// not an error: run prints it and returns nil.
type helpRequested struct{ usage string }

func (h helpRequested) Error() string { return "help requested" }

// usageError is a configuration mistake: main prints it on one line and
// exits 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// parseEvents reads EVENTS_STREAM and EVENTS_MAXLEN, for the server and
// for the commands, which record events too (user add, sessions revoke).
func parseEvents(stream, maxLen string) (on bool, n int, err error) {
	switch stream {
	case "on":
		on = true
	case "off":
	default:
		return false, 0, badVar("EVENTS_STREAM", "on or off", stream)
	}
	if n, err = strconv.Atoi(maxLen); err != nil || n < 1000 || n > 100_000_000 {
		return false, 0, badVar("EVENTS_MAXLEN", "a whole number from 1000 to 100000000", maxLen)
	}
	return on, n, nil
}

func badVar(name, form, got string) error {
	return usageError{fmt.Sprintf("invalid %s %q: want %s", name, got, form)}
}

// parseConfig reads flags (args) with environment defaults (getenv) and
// validates everything, returning a usageError naming the first bad
// variable.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	env := func(name, def string) string {
		if v, ok := lookup(getenv, name); ok {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// Without REDIS_URL the server runs the embedded Redis and a demo user:
	// a single-machine trial, so it listens on loopback unless told to.
	defaultAddr := ":8080"
	if getenv("REDIS_URL") == "" && !hasFlag(args, "redis-url") {
		defaultAddr = "127.0.0.1:8080"
	}
	addr := kindFlag(fs, "addr", "host:port", env("ADDR", defaultAddr), "listen address (ADDR); without REDIS_URL loopback only, with it every interface")
	redisURL := kindFlag(fs, "redis-url", "url", env("REDIS_URL", ""), "redis://[user:pass@]host:port/db, redis+sentinel://[user:pass@]host:26379,.../MASTER[/db] or redis+cluster://[user:pass@]host:7000,... (REDIS_URL); rediss...:// for TLS; empty: embedded in-memory Redis")
	failoverWait := kindFlag(fs, "redis-failover-wait", "duration", env("REDIS_FAILOVER_WAIT", store.DefaultFailoverWait.String()), "how long a login, logout or other write waits for Sentinel or Cluster to promote a replica, 0 to 13s; 0: fail at once (REDIS_FAILOVER_WAIT)")
	lifetime := kindFlag(fs, "session-lifetime", "duration", env("SESSION_LIFETIME", "24h"), "absolute session lifetime from login (SESSION_LIFETIME)")
	idle := kindFlag(fs, "session-idle-timeout", "duration", env("SESSION_IDLE_TIMEOUT", "30m"), "idle timeout, 0 disables (SESSION_IDLE_TIMEOUT)")
	cookieName := kindFlag(fs, "session-cookie-name", "name", env("SESSION_COOKIE_NAME", "session_id"), "session cookie name (SESSION_COOKIE_NAME)")
	secure := boolFlag(fs, "cookie-secure", env("COOKIE_SECURE", "false"), "mark the cookie Secure; set true behind TLS (COOKIE_SECURE)")
	logLevel := kindFlag(fs, "log-level", "level", env("LOG_LEVEL", "info"), "debug, info, warn or error (LOG_LEVEL)")
	instance := kindFlag(fs, "instance-id", "name", env("INSTANCE_ID", ""), "replica name in X-Served-By (INSTANCE_ID), default the host name")
	proxies := kindFlag(fs, "trusted-proxies", "CIDRs", env("TRUSTED_PROXIES", ""), "comma-separated CIDRs (your load balancer, your forward-auth proxy) whose X-Forwarded-For, -Proto, -Host and -Uri are believed (TRUSTED_PROXIES)")
	drain := kindFlag(fs, "shutdown-drain", "duration", env("SHUTDOWN_DRAIN", "5s"), "how long to keep serving after SIGTERM with /readyz at 503 (SHUTDOWN_DRAIN)")
	maxFailures := kindFlag(fs, "login-max-failures", "int", env("LOGIN_MAX_FAILURES", "10"), "failed logins per account per window (LOGIN_MAX_FAILURES)")
	maxFailuresIP := kindFlag(fs, "login-max-failures-per-ip", "int", env("LOGIN_MAX_FAILURES_PER_IP", "50"), "failed logins per client address per window (LOGIN_MAX_FAILURES_PER_IP)")
	window := kindFlag(fs, "login-window", "duration", env("LOGIN_WINDOW", "15m"), "sliding window for failed logins (LOGIN_WINDOW)")
	maxAttemptsIP := kindFlag(fs, "login-max-attempts-per-ip", "int", env("LOGIN_MAX_ATTEMPTS_PER_IP", "300"), "login attempts, successful ones too, per client address per window (LOGIN_MAX_ATTEMPTS_PER_IP)")
	maxSessions := kindFlag(fs, "max-sessions-per-user", "int", env("MAX_SESSIONS_PER_USER", "100"), "live sessions per user; a login past it ends the oldest (MAX_SESSIONS_PER_USER)")
	allowedHosts := kindFlag(fs, "auth-allowed-hosts", "hosts", env("AUTH_ALLOWED_HOSTS", ""), "comma-separated hosts (host or host:port) a login may return to, besides this one (AUTH_ALLOWED_HOSTS)")
	loginURL := kindFlag(fs, "auth-login-url", "url", env("AUTH_LOGIN_URL", "/login/"), "where forward auth sends a browser to log in: a path, or this service's absolute URL (AUTH_LOGIN_URL)")
	cookieDomain := kindFlag(fs, "cookie-domain", "domain", env("COOKIE_DOMAIN", ""), "Domain of the session cookie, shared by sibling subdomains; default host-only (COOKIE_DOMAIN)")
	sessionCache := kindFlag(fs, "session-cache", "on|off", env("SESSION_CACHE", "on"), "on or off: serve recently read sessions from memory while Redis reports their changes (SESSION_CACHE)")
	logFormat := kindFlag(fs, "log-format", "text|json", env("LOG_FORMAT", "text"), "text or json, one line per event (LOG_FORMAT)")
	metricsAddr := kindFlag(fs, "metrics-addr", "host:port", env("METRICS_ADDR", defaultMetricsAddr), "listen address of /metrics (and /debug/pprof/ with PPROF=on), never the public one; off disables (METRICS_ADDR)")
	pprof := kindFlag(fs, "pprof", "on|off", env("PPROF", "off"), "on or off: serve Go's profiles at /debug/pprof/ on METRICS_ADDR, unauthenticated to whoever reaches it (PPROF)")
	requireTwoFactor := boolFlag(fs, "require-two-factor", env("REQUIRE_TWO_FACTOR", "false"), "true: every user must set up a second factor before using the service (REQUIRE_TWO_FACTOR)")
	reauthMaxAge := kindFlag(fs, "reauth-max-age", "duration", env("REAUTH_MAX_AGE", "10m"), "how recent the last full sign-in must be to change a password or a second factor (REAUTH_MAX_AGE)")
	twoFactorHosts := kindFlag(fs, "auth-two-factor-hosts", "hosts", env("AUTH_TWO_FACTOR_HOSTS", ""), "comma-separated protected apps' hosts (host or host:port) whose forward-auth checks accept two-factor sessions only (AUTH_TWO_FACTOR_HOSTS)")
	totpIssuer := kindFlag(fs, "totp-issuer", "name", env("TOTP_ISSUER", auth.DefaultTOTPIssuer), "the name authenticator apps show above this service's codes (TOTP_ISSUER)")
	eventsStream := kindFlag(fs, "events-stream", "on|off", env("EVENTS_STREAM", "on"), "on or off: also write every security event to the service-wide stream `events` (one Redis key; users' own streams are always written) (EVENTS_STREAM)")
	eventsMaxLen := kindFlag(fs, "events-maxlen", "int", env("EVENTS_MAXLEN", strconv.Itoa(activity.DefaultServiceWide)), "about how many events the service-wide stream keeps (MAXLEN ~) (EVENTS_MAXLEN)")
	rpID := kindFlag(fs, "webauthn-rp-id", "domain", env("WEBAUTHN_RP_ID", ""), "passkeys' relying party: a domain such as example.com; default the host of an absolute AUTH_LOGIN_URL, else each request's host (WEBAUTHN_RP_ID)")
	origins := kindFlag(fs, "webauthn-origins", "origins", env("WEBAUTHN_ORIGINS", ""), "comma-separated origins passkeys may be used on, such as https://auth.example.com; default any on WEBAUTHN_RP_ID or its subdomains (WEBAUTHN_ORIGINS)")
	version := fs.Bool("version", false, "print the module version and VCS revision, then exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			var b strings.Builder
			b.WriteString("usage: server [flags]   (every flag also reads the environment variable named in its description)\n")
			b.WriteString("       server user add|passwd|delete|unlock NAME | user list | user mfa status NAME [--json] | user mfa reset NAME [--yes]\n")
			b.WriteString("       server sessions list [--user NAME] [--json] | show ID [--json] | revoke ID | revoke --user NAME | count [--by-user]\n")
			b.WriteString("       server events tail [--user NAME] [--json] [--follow] [-n N]\n")
			b.WriteString("       server healthcheck\n")
			b.WriteString("Each command's --help gives its arguments, what it changes and an example: server user add --help.\n")
			b.WriteString("The user, sessions and events commands work on the Redis at REDIS_URL; unknown users and ids exit 1.\n")
			b.WriteString("BOOTSTRAP_USER and BOOTSTRAP_PASSWORD are read from the environment only, so the password stays out of ps.\n")
			b.WriteString("DEVICE_COOKIE_KEY (environment only; required with REDIS_URL): base64 or hex of at least 32 random bytes, the same on every replica;\n")
			b.WriteString("  a comma-separated list: the first key signs, every listed key is accepted; rotate with OLD,NEW then NEW,OLD then NEW.\n\nflags:\n")
			// A flag's default is its variable's value: a REDIS_URL
			// with a password would be printed as it is.
			if f := fs.Lookup("redis-url"); f != nil {
				f.DefValue = maskURL(f.DefValue)
			}
			printFlags(&b, fs)
			return config{}, helpRequested{b.String()}
		}
		return config{}, usageError{"invalid flags: " + err.Error()}
	}
	if *version {
		return config{}, helpRequested{versionText()}
	}
	if fs.NArg() > 0 {
		return config{}, usageError{fmt.Sprintf("unexpected argument %q: want no arguments, or a subcommand (user, sessions, events, healthcheck)", fs.Arg(0))}
	}

	c := config{
		Addr:              *addr,
		RedisURL:          *redisURL,
		CookieName:        *cookieName,
		InstanceID:        *instance,
		BootstrapUser:     getenv("BOOTSTRAP_USER"),
		BootstrapPassword: getenv("BOOTSTRAP_PASSWORD"),
	}
	switch {
	case getenv("ADDR") != "" || hasFlag(args, "addr"):
		c.AddrNote = "ADDR"
	case c.RedisURL != "":
		// Silently going from loopback to every interface surprised
		// people trying REDIS_URL on a laptop: the start-up line says so.
		c.AddrNote = "default with REDIS_URL: all interfaces (without REDIS_URL 127.0.0.1:8080); set ADDR=127.0.0.1:8080 for loopback only"
	default:
		c.AddrNote = "default with the embedded Redis: loopback only"
	}
	var err error
	if _, port, e := net.SplitHostPort(c.Addr); e != nil || port == "" {
		return c, badVar("ADDR", "host:port or :port", c.Addr)
	}
	if c.RedisURL != "" {
		if _, e := store.ParseURL(c.RedisURL); e != nil {
			// ParseURL's message names the form and never the URL.
			return c, usageError{fmt.Sprintf("invalid REDIS_URL %q: %v", maskURL(c.RedisURL), e)}
		}
	}
	// Below the HTTP server's 15s write timeout, with room for the
	// operation's own deadline: a request that waited must still answer.
	if c.RedisFailoverWait, err = time.ParseDuration(*failoverWait); err != nil || c.RedisFailoverWait < 0 || c.RedisFailoverWait > 13*time.Second {
		return c, badVar("REDIS_FAILOVER_WAIT", "a Go duration from 0 to 13s such as 10s (Sentinel's down-after-milliseconds plus an election)", *failoverWait)
	}
	if c.SessionLifetime, err = time.ParseDuration(*lifetime); err != nil || c.SessionLifetime <= 0 {
		return c, badVar("SESSION_LIFETIME", "a positive Go duration such as 24h or 90m", *lifetime)
	}
	if *idle == "0" {
		c.SessionIdle = 0
	} else if c.SessionIdle, err = time.ParseDuration(*idle); err != nil || c.SessionIdle < 0 {
		return c, badVar("SESSION_IDLE_TIMEOUT", "a Go duration such as 30m, or 0 to disable", *idle)
	}
	if !validCookieName(c.CookieName) {
		return c, badVar("SESSION_COOKIE_NAME", "1-64 letters, digits, '-' or '_'", c.CookieName)
	}
	if c.CookieSecure, err = strconv.ParseBool(*secure); err != nil {
		return c, badVar("COOKIE_SECURE", "true or false", *secure)
	}
	if !c.CookieSecure && strings.HasPrefix(c.CookieName, "__Host-") {
		// Browsers silently drop a __Host- cookie that is not Secure:
		// nobody could log in.
		return c, badVar("SESSION_COOKIE_NAME", "a name without the __Host- prefix unless COOKIE_SECURE=true", c.CookieName)
	}
	if !c.CookieSecure && strings.HasPrefix(c.CookieName, "__Secure-") {
		// Browsers drop a __Secure- cookie that is not Secure, too.
		return c, badVar("SESSION_COOKIE_NAME", "a name without the __Secure- prefix unless COOKIE_SECURE=true", c.CookieName)
	}
	if c.CookieDomain, err = parseCookieDomain(*cookieDomain); err != nil {
		return c, badVar("COOKIE_DOMAIN", "a host name with at least one dot such as example.com, or empty", *cookieDomain)
	}
	if c.CookieDomain != "" && strings.HasPrefix(c.CookieName, "__Host-") {
		// Browsers drop a __Host- cookie that has a Domain.
		return c, badVar("SESSION_COOKIE_NAME", "a name without the __Host- prefix when COOKIE_DOMAIN is set", c.CookieName)
	}
	if c.CookieSecure && c.CookieDomain != "" && !strings.HasPrefix(c.CookieName, "__Secure-") {
		// __Host- forbids a Domain; __Secure- still makes browsers refuse
		// the cookie unless it is Secure, so a plain-http page cannot set it.
		c.CookieName = "__Secure-" + c.CookieName
	}
	if c.CookieSecure && c.CookieDomain == "" && !strings.HasPrefix(c.CookieName, "__Host-") {
		// The __Host- prefix makes browsers refuse the cookie unless it
		// is Secure, Path=/ and has no Domain: no subdomain can plant it.
		c.CookieName = "__Host-" + c.CookieName
	}
	for _, h := range strings.Split(*allowedHosts, ",") {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		if !validAllowedHost(h) {
			return c, badVar("AUTH_ALLOWED_HOSTS", "comma-separated host names or host:port, such as app.example.com,wiki.example.com:8443", *allowedHosts)
		}
		c.AuthAllowedHosts = append(c.AuthAllowedHosts, h)
	}
	for _, h := range strings.Split(*twoFactorHosts, ",") {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		if !validAllowedHost(h) {
			return c, badVar("AUTH_TWO_FACTOR_HOSTS", "comma-separated host names or host:port, such as admin.example.com,wiki.example.com:8443", *twoFactorHosts)
		}
		c.AuthTwoFactorHosts = append(c.AuthTwoFactorHosts, h)
	}
	if c.RequireTwoFactor, err = strconv.ParseBool(*requireTwoFactor); err != nil {
		return c, badVar("REQUIRE_TWO_FACTOR", "true or false", *requireTwoFactor)
	}
	if c.ReauthMaxAge, err = time.ParseDuration(*reauthMaxAge); err != nil || c.ReauthMaxAge < time.Second || c.ReauthMaxAge > 24*time.Hour {
		return c, badVar("REAUTH_MAX_AGE", "a Go duration from 1s to 24h such as 10m", *reauthMaxAge)
	}
	c.TOTPIssuer = strings.TrimSpace(*totpIssuer)
	if c.TOTPIssuer == "" || len(c.TOTPIssuer) > 64 || strings.ContainsAny(c.TOTPIssuer, ":\x00\r\n") {
		return c, badVar("TOTP_ISSUER", "a short name without ':' such as \"Example Corp\"", *totpIssuer)
	}
	c.AuthLoginURL = *loginURL
	if err := c.parseWebAuthn(*rpID, *origins); err != nil {
		return c, err
	}
	if c.EventsStream, c.EventsMaxLen, err = parseEvents(*eventsStream, *eventsMaxLen); err != nil {
		return c, err
	}
	if u, e := url.Parse(c.AuthLoginURL); e != nil || u.User != nil || u.Fragment != "" ||
		!(strings.HasPrefix(c.AuthLoginURL, "/") && !strings.HasPrefix(c.AuthLoginURL, "//") && u.Host == "" ||
			(u.Scheme == "https" || u.Scheme == "http") && u.Host != "") {
		return c, badVar("AUTH_LOGIN_URL", "a path such as /login/ or an absolute http(s) URL such as https://auth.example.com/login/", c.AuthLoginURL)
	}
	if err := c.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return c, badVar("LOG_LEVEL", "debug, info, warn or error", *logLevel)
	}
	if c.InstanceID == "" {
		c.InstanceID, _ = os.Hostname()
	}
	for _, p := range strings.Split(*proxies, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return c, badVar("TRUSTED_PROXIES", "comma-separated CIDRs such as 10.0.0.0/8,127.0.0.1/32", *proxies)
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		c.TrustedProxies = append(c.TrustedProxies, prefix.Masked())
	}
	if c.ShutdownDrain, err = time.ParseDuration(*drain); err != nil || c.ShutdownDrain < 0 {
		return c, badVar("SHUTDOWN_DRAIN", "a Go duration such as 5s", *drain)
	}
	if c.LoginMaxFailures, err = strconv.Atoi(*maxFailures); err != nil || c.LoginMaxFailures < 1 || c.LoginMaxFailures > 100 {
		return c, badVar("LOGIN_MAX_FAILURES", "a whole number from 1 to 100", *maxFailures)
	}
	if c.LoginMaxFailuresPerIP, err = strconv.Atoi(*maxFailuresIP); err != nil || c.LoginMaxFailuresPerIP < 1 {
		return c, badVar("LOGIN_MAX_FAILURES_PER_IP", "a whole number of at least 1", *maxFailuresIP)
	}
	if c.LoginWindow, err = time.ParseDuration(*window); err != nil || c.LoginWindow < time.Second || c.LoginWindow > time.Hour {
		return c, badVar("LOGIN_WINDOW", "a Go duration from 1s to 1h such as 15m", *window)
	}
	// ASVS 2.2.1: at most 100 failed attempts per account per hour, so a
	// short window must come with a proportionally small limit.
	if perHour := float64(c.LoginMaxFailures) * float64(time.Hour) / float64(c.LoginWindow); perHour > 100 {
		return c, usageError{fmt.Sprintf("invalid LOGIN_MAX_FAILURES %d per LOGIN_WINDOW %s: want at most 100 failures per hour (e.g. 10 per 15m)", c.LoginMaxFailures, c.LoginWindow)}
	}
	if c.MaxSessionsPerUser, err = strconv.Atoi(*maxSessions); err != nil || c.MaxSessionsPerUser < 1 || c.MaxSessionsPerUser > 10000 {
		return c, badVar("MAX_SESSIONS_PER_USER", "a whole number from 1 to 10000", *maxSessions)
	}
	if c.LoginMaxAttemptsPerIP, err = strconv.Atoi(*maxAttemptsIP); err != nil || c.LoginMaxAttemptsPerIP < 1 {
		return c, badVar("LOGIN_MAX_ATTEMPTS_PER_IP", "a whole number of at least 1", *maxAttemptsIP)
	}
	if raw := getenv("DEVICE_COOKIE_KEY"); raw != "" || c.RedisURL != "" {
		// Every replica must accept the device cookies the others issue,
		// so outside the embedded mode the key is configuration, never
		// random. The value is never echoed: it is a secret.
		if raw == "" {
			return c, usageError{fmt.Sprintf("DEVICE_COOKIE_KEY is not set: required with REDIS_URL (the same on every replica); want base64 or hex of at least %d random bytes, e.g. `openssl rand -base64 32`",
				auth.MinDeviceKeyBytes)}
		}
		// NEW[,OLD...]: neither alphabet has a comma.
		for i, part := range strings.Split(raw, ",") {
			key := decodeKey(strings.TrimSpace(part))
			if len(key) < auth.MinDeviceKeyBytes {
				return c, usageError{fmt.Sprintf("invalid DEVICE_COOKIE_KEY (not shown; key %d of the comma-separated list, %d bytes decoded): want base64 or hex of at least %d random bytes, e.g. `openssl rand -base64 32`; required with REDIS_URL",
					i+1, len(key), auth.MinDeviceKeyBytes)}
			}
			if i == 0 {
				c.DeviceCookieKey = key
			} else {
				c.OldDeviceCookieKeys = append(c.OldDeviceCookieKeys, key)
			}
		}
	}
	switch *sessionCache {
	case "on":
		c.SessionCache = true
	case "off":
	default:
		return c, badVar("SESSION_CACHE", "on or off", *sessionCache)
	}
	if c.LogFormat = *logFormat; c.LogFormat != logging.FormatText && c.LogFormat != logging.FormatJSON {
		return c, badVar("LOG_FORMAT", "text or json", *logFormat)
	}
	// Off by default: a CPU profile or trace costs the replica while it
	// runs, and anyone who reaches METRICS_ADDR could start one.
	switch *pprof {
	case "on":
		c.Pprof = true
	case "off":
	default:
		return c, badVar("PPROF", "on or off", *pprof)
	}
	c.MetricsAddrSet = getenv("METRICS_ADDR") != "" || hasFlag(args, "metrics-addr")
	switch c.MetricsAddr = *metricsAddr; c.MetricsAddr {
	case "", "off":
		c.MetricsAddr = ""
	default:
		if _, port, e := net.SplitHostPort(c.MetricsAddr); e != nil || port == "" {
			return c, badVar("METRICS_ADDR", "host:port, :port or off", c.MetricsAddr)
		}
	}
	if (c.BootstrapUser == "") != (c.BootstrapPassword == "") {
		return c, usageError{"invalid BOOTSTRAP_USER/BOOTSTRAP_PASSWORD: want both set or both empty"}
	}
	if c.BootstrapUser != "" {
		// Checked here, not when the user is created, so a replica never
		// starts without the user it was told to create.
		if _, err := auth.NormalizeUsername(c.BootstrapUser); err != nil {
			return c, usageError{fmt.Sprintf("invalid BOOTSTRAP_USER %q: %v", c.BootstrapUser, err)}
		}
		if err := auth.CheckNewPassword(c.BootstrapPassword); err != nil {
			return c, usageError{"invalid BOOTSTRAP_PASSWORD (not shown): " + err.Error()}
		}
	}
	return c, nil
}

// rawFlag is a flag kept as the text given, so that parseConfig's checks
// can name the variable on one line (exit 2) as they always did, while
// --help shows what kind of value it takes: kind, or nothing for a
// boolean, which may be given alone (--cookie-secure).
type rawFlag struct {
	text    string
	kind    string // "duration", "int", "host:port"; "" for a boolean
	boolean bool
}

func (f *rawFlag) String() string {
	if f == nil {
		return ""
	}
	return f.text
}

func (f *rawFlag) Set(v string) error { f.text = v; return nil }

// IsBoolFlag lets a boolean be given without a value.
func (f *rawFlag) IsBoolFlag() bool { return f.boolean }

// kindFlag defines a flag whose --help line names kind ("duration",
// "int", "host:port"), as flag.Duration's would, and returns its text.
func kindFlag(fs *flag.FlagSet, name, kind, def, usage string) *string {
	f := &rawFlag{text: def, kind: kind}
	fs.Var(f, name, usage)
	return &f.text
}

// boolFlag defines a boolean flag (true or false, or alone for true) and
// returns its text.
func boolFlag(fs *flag.FlagSet, name, def, usage string) *string {
	f := &rawFlag{text: def, boolean: true}
	fs.Var(f, name, usage)
	return &f.text
}

// printFlags is flag.PrintDefaults with each flag's kind (rawFlag.kind)
// after its name, where PrintDefaults would say "value", and the default
// stated once, by the flag package's rule: the environment's value.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		line := "  -" + f.Name
		if rf, ok := f.Value.(*rawFlag); ok && rf.kind != "" {
			line += " " + rf.kind
		}
		line += "\n    \t" + f.Usage
		isBool := false
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok {
			isBool = b.IsBoolFlag()
		}
		if f.DefValue != "" && !(isBool && f.DefValue == "false") {
			line += " (default " + f.DefValue + ")"
		}
		_, _ = io.WriteString(w, line+"\n")
	})
}

// versionText is --version's answer: the module version and the VCS
// revision the binary was built from (go build stamps both), and Go's.
func versionText() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "server: no build information\n"
	}
	version, revision, modified := bi.Main.Version, "unknown (built without VCS stamping)", ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.time":
			revision += " " + s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = " (modified)"
			}
		}
	}
	return fmt.Sprintf("%s %s revision %s%s %s\n", cmp.Or(bi.Main.Path, "loginsvc"), cmp.Or(version, "(devel)"), revision, modified, bi.GoVersion)
}

// decodeKey reads a key given as hex or base64 (standard or URL alphabet,
// padded or not); anything else decodes to nothing.
func decodeKey(s string) []byte {
	if b, err := hex.DecodeString(s); err == nil {
		return b
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b
		}
	}
	return nil
}

// hasFlag reports whether args set the flag name (as -name or --name, with
// or without =value).
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// parseCookieDomain checks a COOKIE_DOMAIN value: a lower-cased host name
// of at least two labels (a cookie for a whole top-level domain is
// refused by browsers), without the leading dot some write. "" is off.
func parseCookieDomain(s string) (string, error) {
	s = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), ".")
	if s == "" {
		return "", nil
	}
	if len(s) > 253 || !strings.Contains(s, ".") || !validHostName(s) {
		return "", errors.New("not a host name")
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return "", errors.New("an IP address cannot be a cookie domain")
	}
	return s, nil
}

// validAllowedHost reports whether h is host or host:port with a plain
// ASCII host name or IP address.
func validAllowedHost(h string) bool {
	name, port := h, ""
	if host, p, err := net.SplitHostPort(h); err == nil {
		name, port = host, p
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return false
		}
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return !strings.Contains(name, ":") || port != "" // an IPv6 address needs [] and a port
	}
	return validHostName(name)
}

// validHostName reports whether s is dot-separated labels of letters,
// digits and inner dashes: ASCII only, so an IDN must be given in its
// xn-- form.
func validHostName(s string) bool {
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func validCookieName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// maskURL hides a password in a Redis URL, for logs and error messages.
// Everything before the last '@' after the scheme is credentials; a URL
// mistyped badly enough to have no "://" loses everything before the '@',
// so a typo never prints the password.
func maskURL(raw string) string {
	raw = maskQueryPasswords(raw)
	at := strings.LastIndex(raw, "@")
	if at < 0 {
		return raw
	}
	if i := strings.Index(raw, "://"); i >= 0 && i+3 <= at {
		if user, _, ok := strings.Cut(raw[i+3:at], ":"); ok {
			return raw[:i+3] + user + ":***" + raw[at:]
		}
		return raw[:i+3] + "***" + raw[at:]
	}
	return "***" + raw[at:]
}

// maskQueryPasswords hides the value of every query parameter whose name
// ends in "password" (sentinel_password=...), keeping the rest of the URL
// as written.
func maskQueryPasswords(raw string) string {
	base, query, ok := strings.Cut(raw, "?")
	if !ok {
		return raw
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		if name, _, ok := strings.Cut(p, "="); ok && strings.HasSuffix(strings.ToLower(name), "password") {
			params[i] = name + "=***"
		}
	}
	return base + "?" + strings.Join(params, "&")
}

// forwardAuthWithoutProxy reports whether forward auth is configured
// (AUTH_ALLOWED_HOSTS, AUTH_TWO_FACTOR_HOSTS or an absolute
// AUTH_LOGIN_URL) while no proxy is trusted (TRUSTED_PROXIES empty): the
// setup the nginx snippet of docs/forward-auth.md fails silently in.
func (c config) forwardAuthWithoutProxy() bool {
	absoluteLogin := c.AuthLoginURL != "" && !strings.HasPrefix(c.AuthLoginURL, "/")
	return len(c.TrustedProxies) == 0 && (len(c.AuthAllowedHosts) > 0 || len(c.AuthTwoFactorHosts) > 0 || absoluteLogin)
}

// logAttrs is the effective configuration for the start-up log line, with
// secrets masked.
func (c config) logAttrs() []any {
	redisURL := maskURL(c.RedisURL)
	if redisURL == "" {
		redisURL = "(embedded)"
	}
	proxies := make([]string, len(c.TrustedProxies))
	for i, p := range c.TrustedProxies {
		proxies[i] = p.String()
	}
	return []any{
		"addr", c.Addr, "addr_from", c.AddrNote, "redis_url", redisURL,
		"session_lifetime", c.SessionLifetime.String(), "session_idle_timeout", c.SessionIdle.String(),
		"cookie_name", c.CookieName, "cookie_secure", c.CookieSecure, "log_level", c.LogLevel.String(),
		"instance_id", c.InstanceID, "trusted_proxies", strings.Join(proxies, ","),
		"shutdown_drain", c.ShutdownDrain.String(),
		"redis_failover_wait", c.RedisFailoverWait.String(),
		"login_max_failures", c.LoginMaxFailures, "login_max_failures_per_ip", c.LoginMaxFailuresPerIP, "login_window", c.LoginWindow.String(),
		// What is wanted; the "session cache on|off" line after says what
		// the topology allows.
		"max_sessions_per_user", c.MaxSessionsPerUser, "session_cache_wanted", onOff(c.SessionCache), "bootstrap_user", c.BootstrapUser,
		"log_format", c.LogFormat, "metrics_addr", cmp.Or(c.MetricsAddr, "off"), "pprof", onOff(c.Pprof),
		"bootstrap_password", mask(c.BootstrapPassword),
		"login_max_attempts_per_ip", c.LoginMaxAttemptsPerIP, "device_cookie_key", maskBytes(c.DeviceCookieKey), "old_device_cookie_keys", len(c.OldDeviceCookieKeys),
		"auth_allowed_hosts", strings.Join(c.AuthAllowedHosts, ","), "auth_login_url", c.AuthLoginURL, "cookie_domain", c.CookieDomain,
		"require_two_factor", c.RequireTwoFactor, "reauth_max_age", c.ReauthMaxAge.String(),
		"auth_two_factor_hosts", strings.Join(c.AuthTwoFactorHosts, ","), "totp_issuer", c.TOTPIssuer,
		"webauthn_rp_id", cmp.Or(c.WebAuthnRPID, "(each request's host)"), "webauthn_origins", strings.Join(c.WebAuthnOrigins, ","),
		"events_stream", onOff(c.EventsStream), "events_maxlen", c.EventsMaxLen,
		"gogc", cmp.Or(c.GC.gogc, "(runtime)"), "gomemlimit", cmp.Or(c.GC.gomemlimit, "(runtime)"),
	}
}

func maskBytes(b []byte) string {
	if len(b) == 0 {
		return "(random)"
	}
	return "***"
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func mask(s string) string {
	if s == "" {
		return ""
	}
	return "***"
}

// parseWebAuthn checks WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS (after
// AUTH_LOGIN_URL, whose host is the RP ID's default). A relying party is a
// domain, never an IP address or a host with a port, and every origin must
// be on it or a subdomain of it: the browser refuses anything else, so a
// configuration that cannot work stops the server here.
func (c *config) parseWebAuthn(rpID, origins string) error {
	rpID = strings.ToLower(strings.TrimSpace(rpID))
	if rpID == "" {
		if u, err := url.Parse(c.AuthLoginURL); err == nil && u.Host != "" {
			if _, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err != nil {
				rpID = strings.ToLower(u.Hostname())
			}
		}
	} else if !validAllowedHost(rpID) || strings.Contains(rpID, ":") || strings.HasPrefix(rpID, "[") {
		return badVar("WEBAUTHN_RP_ID", "a domain such as example.com (no scheme, port or path)", rpID)
	} else if _, err := netip.ParseAddr(rpID); err == nil {
		return badVar("WEBAUTHN_RP_ID", "a domain such as example.com: an IP address cannot be a WebAuthn relying party (use localhost locally)", rpID)
	}
	c.WebAuthnRPID = rpID
	for _, o := range strings.Split(origins, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			return badVar("WEBAUTHN_ORIGINS", "comma-separated origins such as https://auth.example.com (scheme and host, no path)", origins)
		}
		host := strings.ToLower(u.Hostname())
		if c.WebAuthnRPID == "" {
			return usageError{"invalid WEBAUTHN_ORIGINS: needs WEBAUTHN_RP_ID (or an absolute AUTH_LOGIN_URL) to name the domain they belong to"}
		}
		if host != c.WebAuthnRPID && !strings.HasSuffix(host, "."+c.WebAuthnRPID) {
			return usageError{fmt.Sprintf("invalid WEBAUTHN_ORIGINS %q: %s is not on WEBAUTHN_RP_ID %s or a subdomain of it", origins, host, c.WebAuthnRPID)}
		}
		c.WebAuthnOrigins = append(c.WebAuthnOrigins, strings.ToLower(u.Scheme+"://"+u.Host))
	}
	return nil
}
