package web

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"loginsvc/internal/auth"
	"loginsvc/internal/logging"
	"loginsvc/internal/session"
	"loginsvc/templates"
)

// Config holds what the HTTP layer needs to know about its deployment.
type Config struct {
	// InstanceID names this replica in the X-Served-By header.
	InstanceID string
	// CookieSecure marks the service's own cookies Secure and turns on
	// HSTS. Set it behind TLS.
	CookieSecure bool
	// TrustedProxies are the peers whose X-Forwarded-For is believed, and
	// whose X-Forwarded-Proto, -Host and -Uri name the original URL of a
	// forward-auth request.
	TrustedProxies []netip.Prefix
	// AllowedHosts (AUTH_ALLOWED_HOSTS) are the hosts besides this one
	// that a login may return to: "host" (default port) or "host:port".
	// Default none.
	AllowedHosts []string
	// LoginURL (AUTH_LOGIN_URL) is where forward auth sends a browser to
	// log in: a path on the protected app's host, or an absolute URL of
	// this service, whose host may then be returned to. Default "/login/".
	LoginURL string
	// Observer, if set, is told of every request and login (metrics).
	Observer Observer
	// TwoFactorHosts (AUTH_TWO_FACTOR_HOSTS) are the protected apps'
	// hosts, in AllowedHosts' grammar, whose forward-auth checks accept
	// only sessions that stand on two factors. Default none.
	TwoFactorHosts []string
	// WebAuthnRPID (WEBAUTHN_RP_ID) is the passkeys' relying party, a
	// domain; "" takes the host each request reached (fine for one host;
	// an IP address cannot be one, so passkeys are then off there).
	WebAuthnRPID string
	// WebAuthnOrigins (WEBAUTHN_ORIGINS) are the origins a passkey
	// ceremony may run on; empty: any on WebAuthnRPID or a subdomain.
	WebAuthnOrigins []string
	// ReauthMaxAge (REAUTH_MAX_AGE) is how recent the last full
	// authentication must be before a sensitive action (a password or
	// factor change). Default DefaultReauthMaxAge.
	ReauthMaxAge time.Duration
	// Started, if set, is closed when the start-up work that logins need
	// is done (cmd/server: the bootstrap user exists); /readyz answers 503
	// until then, so a balancer or compose never sends a login that must
	// fail. Nil: nothing to wait for.
	Started <-chan struct{}
}

// DefaultReauthMaxAge is REAUTH_MAX_AGE's default: long enough to change
// a password and set up an app after a login, short enough that a
// borrowed, unlocked computer is not enough to change them later.
const DefaultReauthMaxAge = 10 * time.Minute

// Pinger reports whether the session backend answers; it backs /readyz.
type Pinger interface {
	Ping(ctx context.Context) error
}

// App holds the dependencies of the handlers.
type App struct {
	cfg Config
	log *slog.Logger
	// requestLog is log's handler when it is the service's own
	// (logging.New), whose LogAttrs writes the request line without
	// slog's Record and handler; nil for another logger (a test's).
	requestLog *logging.Handler
	sessions   *session.Manager
	auth       *auth.Service
	backend    Pinger
	templates  *Templates
	// static is the static folder alone, served under /static/: the
	// templates and catalogs beside it are not public. Tests swap it to
	// make a handler panic.
	static fs.FS
	// returnHosts are the hosts a login may send the browser back to.
	returnHosts returnHosts
	// twoFactorHosts are the apps that need two factors (TwoFactorHosts).
	twoFactorHosts returnHosts
	// buffers hold pages while they are rendered and until their session
	// is saved.
	buffers bufferPool

	// draining is set when shutdown begins: readiness fails at once so the
	// load balancer stops sending new requests while in-flight ones finish.
	draining atomic.Bool
	// wasReady is set the first time /readyz answers 200: a replica that
	// never did has had no traffic from a balancer to drain.
	wasReady atomic.Bool
	// untrustedWarnedAt is when (Unix ns) this replica last warned of
	// X-Forwarded-* headers from a peer outside TRUSTED_PROXIES (see
	// noteUntrustedForwarding); 0 before the first warning.
	untrustedWarnedAt atomic.Int64
}

// New returns the web application with the embedded templates. Serve its
// Handler.
func New(cfg Config, log *slog.Logger, sessions *session.Manager, authSvc *auth.Service, backend Pinger) (*App, error) {
	t, err := ParseTemplates(templates.FS)
	if err != nil {
		return nil, fmt.Errorf("new web app: %w", err)
	}
	static, err := fs.Sub(templates.FS, "static")
	if err != nil {
		return nil, fmt.Errorf("new web app: static files: %w", err)
	}
	if cfg.LoginURL == "" {
		cfg.LoginURL = "/login/"
	}
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	if cfg.ReauthMaxAge <= 0 {
		cfg.ReauthMaxAge = DefaultReauthMaxAge
	}
	hosts := newReturnHosts(cfg.AllowedHosts...)
	if u, err := url.Parse(cfg.LoginURL); err == nil && u.Host != "" {
		hosts[strings.ToLower(u.Host)] = true
	}
	requestLog, _ := log.Handler().(*logging.Handler)
	return &App{cfg: cfg, log: log, requestLog: requestLog, sessions: sessions, auth: authSvc, backend: backend, templates: t, static: static, returnHosts: hosts, twoFactorHosts: newReturnHosts(cfg.TwoFactorHosts...)}, nil
}

// StartDraining makes /readyz answer 503 from now on.
func (a *App) StartDraining() { a.draining.Store(true) }

// WasReady reports whether /readyz has ever answered 200: whether a load
// balancer that checks it may have sent this replica traffic.
func (a *App) WasReady() bool { return a.wasReady.Load() }
