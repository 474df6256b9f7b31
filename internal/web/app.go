package web

import (
	"log/slog"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/redis/go-redis/v9"

	"loginsvc/internal/auth"
	"loginsvc/internal/store"
)

// Config holds what the HTTP layer needs to know about its deployment.
type Config struct {
	// InstanceID names this replica in the X-Served-By header.
	InstanceID string
	// CookieSecure marks the session cookie Secure and turns on HSTS. Set it
	// behind TLS.
	CookieSecure bool
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// Timeouts bound the readiness probe's Redis ping.
	Timeouts store.Timeouts
}

// App holds the dependencies of the handlers.
type App struct {
	cfg       Config
	log       *slog.Logger
	sessions  *scs.SessionManager
	auth      *auth.Service
	redis     redis.UniversalClient
	templates *Templates

	// draining is set when shutdown begins: readiness fails at once so the
	// load balancer stops sending new requests while in-flight ones finish.
	draining atomic.Bool
}

// New returns the web application.
func New(cfg Config, log *slog.Logger, sessions *scs.SessionManager, authSvc *auth.Service, rdb redis.UniversalClient, t *Templates) *App {
	return &App{cfg: cfg, log: log, sessions: sessions, auth: authSvc, redis: rdb, templates: t}
}

// StartDraining makes /readyz answer 503 from now on.
func (a *App) StartDraining() { a.draining.Store(true) }

// SessionConfig configures the session manager.
type SessionConfig struct {
	// Lifetime is the absolute session lifetime, counted from login.
	Lifetime time.Duration
	// IdleTimeout ends a session unused for this long; 0 disables it.
	IdleTimeout time.Duration
	// CookieName is the session cookie's name.
	CookieName string
	// CookieSecure marks the cookie Secure.
	CookieSecure bool
}

// NewSessionManager returns the scs manager for this service: JSON codec,
// tokens hashed before they reach Redis, HttpOnly SameSite=Lax cookie that
// persists only when the user asks to be remembered.
func NewSessionManager(st scs.Store, codec store.JSONCodec, cfg SessionConfig) *scs.SessionManager {
	sm := scs.New()
	sm.Store = st
	sm.Codec = codec
	sm.Lifetime = cfg.Lifetime
	sm.IdleTimeout = cfg.IdleTimeout
	sm.HashTokenInStore = true
	sm.Cookie.Name = cfg.CookieName
	sm.Cookie.HttpOnly = true
	sm.Cookie.Path = "/"
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Secure = cfg.CookieSecure
	sm.Cookie.Persist = false
	return sm
}
