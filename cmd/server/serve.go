package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"time"

	"loginsvc/internal/activity"
	"loginsvc/internal/auth"
	"loginsvc/internal/backend"
	"loginsvc/internal/logging"
	"loginsvc/internal/metrics"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
	"loginsvc/internal/web"
)

// composeDemoPassword is the BOOTSTRAP_PASSWORD that docker-compose.yml
// falls back to, for a demo on 127.0.0.1 only.
const composeDemoPassword = "change-me-now"

// composeDemoDeviceKey is the DEVICE_COOKIE_KEY that docker-compose.yml
// falls back to: hex of "compose-demo-key-change-me-now!!", public like
// the demo password.
const composeDemoDeviceKey = "636f6d706f73652d64656d6f2d6b65792d6368616e67652d6d652d6e6f772121"

// serve wires the service and runs it until ctx ends, then shuts down:
// readiness fails first, the server keeps serving for the drain period so
// the load balancer notices, then in-flight requests finish.
func serve(ctx context.Context, cfg config, stdout io.Writer) error {
	// Every line goes through one buffer, flushed a few times a second and
	// when serve returns: a request's log line costs it no system call.
	out := logging.NewWriter(stdout, logging.FlushEvery)
	defer func() { _ = out.Close() }()
	log, err := logging.New(out, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return usageError{"invalid LOG_FORMAT: " + err.Error()}
	}

	redisURL := cfg.RedisURL
	embedded := redisURL == ""
	if embedded {
		e, err := store.StartEmbedded()
		if err != nil {
			return err
		}
		defer e.Close()
		redisURL = e.URL()
		log.Warn(fmt.Sprintf("no REDIS_URL: using embedded in-memory Redis at %s; single instance only, data is lost on exit", e.Addr()))
		log.Info("for redis-cli and the user commands", "redis_cli", "redis-cli -p "+e.Port(), "REDIS_URL", redisURL)
	}
	cfg.GC.apply()
	log.Info("starting", cfg.logAttrs()...)
	if cfg.forwardAuthWithoutProxy() {
		// Every forward-auth setup has a proxy in front; without trusting
		// it, the app's URL is unknown and every client is the proxy.
		log.Warn("forward auth is configured (AUTH_ALLOWED_HOSTS, AUTH_TWO_FACTOR_HOSTS or an absolute AUTH_LOGIN_URL) but TRUSTED_PROXIES is empty: the proxy's X-Forwarded-* headers are ignored, logins cannot return to the app, AUTH_TWO_FACTOR_HOSTS asks two factors everywhere, and the login throttle sees one client, the proxy. Set TRUSTED_PROXIES to the proxy's address")
	}
	if cfg.BootstrapPassword == composeDemoPassword {
		// Everyone who has read docker-compose.yml knows this password.
		log.Warn("WARNING: BOOTSTRAP_PASSWORD is the demo default of docker-compose.yml; anyone can log in as the bootstrap user. Set BOOTSTRAP_PASSWORD before exposing the site, and change an existing user with `server user passwd`",
			"bootstrap_user", cfg.BootstrapUser)
	}
	demoKey := string(decodeKey(composeDemoDeviceKey))
	if slices.ContainsFunc(append([][]byte{cfg.DeviceCookieKey}, cfg.OldDeviceCookieKeys...), func(k []byte) bool { return string(k) == demoKey }) {
		// Anyone who has read docker-compose.yml can forge device cookies
		// and so escape the account lockout, also while the demo key is
		// only the old one of a rotation.
		log.Warn("WARNING: DEVICE_COOKIE_KEY is or lists the demo default of docker-compose.yml; anyone can forge device cookies and bypass the account lockout. Set DEVICE_COOKIE_KEY (e.g. `openssl rand -base64 32`) to keys of your own, without the demo one, before exposing the site")
	}
	if len(cfg.DeviceCookieKey) == 0 {
		log.Info("no DEVICE_COOKIE_KEY: device cookies are signed with a random key, valid until this process exits (fine for the embedded single instance)")
	}

	m := metrics.New(cfg.InstanceID)
	be, err := backend.Open(backend.Config{
		RedisURL: redisURL,
		Timeouts: store.Timeouts{FailoverWait: failoverWait(cfg.RedisFailoverWait)},
		Sessions: session.Config{
			Lifetime:     cfg.SessionLifetime,
			IdleTimeout:  cfg.SessionIdle,
			CookieName:   cfg.CookieName,
			CookieSecure: cfg.CookieSecure,
			MaxPerUser:   cfg.MaxSessionsPerUser,
			CookieDomain: cfg.CookieDomain,
			Events:       m,
		},
		Auth: auth.Config{
			Limits:        auth.Limits{PerUser: cfg.LoginMaxFailures, PerIP: cfg.LoginMaxFailuresPerIP, AttemptsPerIP: cfg.LoginMaxAttemptsPerIP, Window: cfg.LoginWindow},
			DeviceKey:     cfg.DeviceCookieKey,
			OldDeviceKeys: cfg.OldDeviceCookieKeys,
			TOTPIssuer:    cfg.TOTPIssuer,
		},
		Activity: activity.Config{Replica: cfg.InstanceID, ServiceWide: serviceWide(cfg), Observe: m},
		Log:      log,
	})
	if err != nil {
		return err
	}
	defer func() { _ = be.Close() }() // at exit: nothing is left to tell
	rdb, sessions, authSvc := be.Redis, be.Sessions, be.Auth
	be.Activity.Start()
	rdb.SetLogger(log)
	log.Info("redis topology", "topology", rdb.Topology())
	startSessionCache(log, rdb, cfg, embedded)

	if err := m.Register(rdb.Instrument()...); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := m.WatchCache(func() metrics.CacheCounters {
		s := rdb.CacheStats()
		return metrics.CacheCounters{
			Hits: s.Hits, Misses: s.Misses, Invalidations: s.Invalidations, Flushes: s.Flushes,
			Bypassed: s.Bypassed, Entries: s.Entries, Live: s.Live(),
		}
	}); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}

	// /readyz waits for prepareRedis: a login sent on its first 200 must
	// find the bootstrap user.
	prepared := make(chan struct{})
	app, err := web.New(web.Config{
		InstanceID:      cfg.InstanceID,
		CookieSecure:    cfg.CookieSecure,
		TrustedProxies:  cfg.TrustedProxies,
		AllowedHosts:    cfg.AuthAllowedHosts,
		LoginURL:        cfg.AuthLoginURL,
		Observer:        m,
		TwoFactorHosts:  cfg.AuthTwoFactorHosts,
		WebAuthnRPID:    cfg.WebAuthnRPID,
		WebAuthnOrigins: cfg.WebAuthnOrigins,
		ReauthMaxAge:    cfg.ReauthMaxAge,
		Started:         prepared,
	}, log, sessions, authSvc, rdb)
	if err != nil {
		return err
	}

	srv := &http.Server{
		Handler:           app.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	metricsSrv, err := serveMetrics(cfg, m, log)
	if err != nil {
		return err
	}
	if metricsSrv != nil {
		// Closed when serve returns, after the public server's shutdown,
		// so a scrape during the drain still answers.
		defer func() { _ = metricsSrv.Close() }()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (set ADDR or --addr to use another): %w", cfg.Addr, err)
	}
	log.Info("listening", "addr", ln.Addr().String(), "url", "http://"+browsable(ln.Addr()))

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	go func() {
		defer close(prepared)
		prepareRedis(ctx, log, rdb, authSvc, cfg, embedded, out)
	}()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	app.StartDraining()
	drain, why := cfg.ShutdownDrain, "SHUTDOWN_DRAIN"
	switch {
	case embedded:
		drain, why = 0, "embedded: nothing balances onto a single instance"
	case !app.WasReady():
		// Redis never answered: a balancer that checks /readyz has sent
		// this replica nothing, so there is nothing to drain.
		drain, why = 0, "never ready"
	}
	log.Info("shutting down", "drain", drain.String(), "why", why)
	time.Sleep(drain)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// serviceWide is the cap of the service-wide event stream, 0 when
// EVENTS_STREAM=off.
func serviceWide(cfg config) int {
	if !cfg.EventsStream {
		return 0
	}
	return cfg.EventsMaxLen
}

// mutexProfileFraction is the share of contention events the mutex
// profile records with PPROF=on: 1 in mutexProfileFraction.
const mutexProfileFraction = 100

// serveMetrics serves /metrics, and /debug/pprof/ with PPROF=on, on
// METRICS_ADDR, a listener of their own, and returns its server (nil when off). The
// default address is a convenience: when it is taken (another replica on
// the host, a local Prometheus on 9090) the service runs without metrics
// and says so. An address the operator chose must work.
func serveMetrics(cfg config, m *metrics.Metrics, log *slog.Logger) (*http.Server, error) {
	if cfg.MetricsAddr == "" {
		log.Info("metrics off (METRICS_ADDR=off)")
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil && cfg.MetricsAddrSet {
		return nil, fmt.Errorf("listen for metrics on %s (set METRICS_ADDR to another address, or off): %w", cfg.MetricsAddr, err)
	}
	if err != nil {
		log.Warn("metrics not served: the default METRICS_ADDR is taken; set METRICS_ADDR to another address, or off", "addr", cfg.MetricsAddr, "err", err)
		return nil, nil
	}
	if cfg.Pprof {
		// Without a sampling rate /debug/pprof/mutex is always empty, so
		// lock contention (the session cache, the log's writer) could not
		// be looked at. Sampling adds work only to an unlock that had
		// waiters, one in 100 of them; the rate is the process's, set
		// once here.
		runtime.SetMutexProfileFraction(mutexProfileFraction)
	}
	srv := &http.Server{
		Handler:           m.Handler(cfg.Pprof),
		ReadHeaderTimeout: 5 * time.Second,
		// Long enough for a 60-second CPU profile or trace.
		WriteTimeout: 65 * time.Second,
		IdleTimeout:  60 * time.Second,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("metrics listening", "addr", ln.Addr().String(), "url", "http://"+browsable(ln.Addr())+"/metrics")
	return srv, nil
}

// prepareRedis waits for Redis with backoff, then creates the bootstrap
// user (or, on the embedded Redis, a demo user). The server already
// listens meanwhile: /healthz is 200 and /readyz stays 503 until this
// returns (serve closes web.Config.Started then), so ready means that
// the bootstrap user can log in. A user that could not be created is
// logged as an error; the replica still becomes ready for the others.
func prepareRedis(ctx context.Context, log *slog.Logger, rdb *store.Redis, authSvc *auth.Service, cfg config, embedded bool, stdout io.Writer) {
	if err := authSvc.WarmUp(); err != nil {
		log.Error("dummy password hash not made: the first login of an unknown name will take longer", "err", err)
	}
	if err := rdb.WaitReady(ctx, log); err != nil {
		return
	}
	// Users created before look-alike names were refused get their claim,
	// so that a look-alike of theirs is refused too. A SCAN over the users,
	// once per start; a failure costs only that protection.
	alike, err := authSvc.ClaimSkeletons(ctx)
	if err != nil {
		log.Warn("look-alike claims of existing users not checked", "err", err)
	}
	for _, pair := range alike {
		log.Warn("existing users with look-alike names", "user", pair[0], "looks_like", pair[1])
	}
	name, password := cfg.BootstrapUser, cfg.BootstrapPassword
	if embedded && name == "" {
		name, password = "demo", randomPassword()
	}
	if name == "" {
		return
	}
	created, err := authSvc.EnsureUser(ctx, name, password)
	switch {
	case err != nil:
		log.Error("bootstrap user not created", "user", name, "err", err)
	case created && embedded && cfg.BootstrapUser == "":
		// The demo password is shown once on the terminal, outside the log
		// stream, because there is no other way to learn it.
		if _, err := fmt.Fprintf(stdout, "\n  demo user created: username %q, password %q\n\n", name, password); err != nil {
			log.Error("demo user created, but its password could not be shown", "user", name, "err", err)
		}
	case created:
		log.Info("bootstrap user created", "user", name)
	default:
		log.Info("bootstrap user already exists", "user", name)
	}
}

func randomPassword() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// browsable turns a listen address such as [::]:8080 into one a browser can
// open.
func browsable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// failoverWait is REDIS_FAILOVER_WAIT as store.Timeouts takes it, where
// zero means the default: 0 (no waiting) becomes negative.
func failoverWait(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
