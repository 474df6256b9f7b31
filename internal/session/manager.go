package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/alexedwards/scs/v2"

	"loginsvc/internal/activity"
	"loginsvc/internal/store"
)

// Config configures a Manager.
type Config struct {
	// Lifetime is the absolute session lifetime, counted from login.
	// Default 24h.
	Lifetime time.Duration
	// IdleTimeout ends a session unused for this long; 0 disables it.
	IdleTimeout time.Duration
	// CookieName is the session cookie's name. Default "session_id".
	CookieName string
	// CookieSecure marks the cookie Secure. Set it behind TLS.
	CookieSecure bool
	// MaxPerUser caps a user's live sessions; a login past it ends the
	// user's oldest session. Default 100.
	MaxPerUser int
	// CookieDomain, when set, is the cookie's Domain attribute, so that
	// sibling subdomains share the login. Default "": a host-only cookie.
	CookieDomain string
	// Events, if set, is told of sessions started and ended (metrics).
	Events Events
	// Activity, if set, records sign-outs and revocations (security
	// events).
	Activity *activity.Log
	// RequireTwoFactor (REQUIRE_TWO_FACTOR) makes a one-factor session
	// good only for setting up a second factor (see Check). Default off.
	RequireTwoFactor bool
}

func (c Config) withDefaults() Config {
	if c.Lifetime <= 0 {
		c.Lifetime = 24 * time.Hour
	}
	if c.CookieName == "" {
		c.CookieName = "session_id"
	}
	if c.MaxPerUser <= 0 {
		c.MaxPerUser = 100
	}
	if c.Events == nil {
		c.Events = noEvents{}
	}
	return c
}

// Manager starts, loads, saves and ends sessions.
type Manager struct {
	cfg      Config
	scs      *scs.SessionManager
	sessions *store.SessionStore
	codec    JSONCodec
	devices  devices
	log      *slog.Logger
}

// New returns the manager for sessions kept in sessions: scs with the JSON
// codec, tokens hashed before they reach Redis, and an HttpOnly
// SameSite=Lax cookie that persists only when the user asks to be
// remembered.
func New(sessions *store.SessionStore, cfg Config, log *slog.Logger) *Manager {
	cfg = cfg.withDefaults()
	codec := JSONCodec{Lifetime: cfg.Lifetime, memo: newDocMemo()}
	sm := scs.New()
	sm.Store = scsStore{sessions: sessions, max: cfg.MaxPerUser, idle: cfg.IdleTimeout, codec: codec}
	sm.Codec = codec
	sm.Lifetime = cfg.Lifetime
	// scs's own idle timeout rewrites the whole session on every request.
	// The idle rule lives here instead: touch saves at most once per
	// touchEvery, and the store sets each save's expiry to now + idle.
	sm.IdleTimeout = 0
	sm.HashTokenInStore = true
	sm.Cookie.Name = cfg.CookieName
	sm.Cookie.HttpOnly = true
	sm.Cookie.Path = "/"
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Secure = cfg.CookieSecure
	sm.Cookie.Domain = cfg.CookieDomain
	sm.Cookie.Persist = false
	return &Manager{cfg: cfg, scs: sm, sessions: sessions, codec: codec, devices: newDevices(), log: log}
}

// DescribeUserAgent is a one-line summary of a user agent ("Firefox 133
// on Linux (Desktop)"), for security events.
func (m *Manager) DescribeUserAgent(ua string) string {
	if ua == "" {
		return ""
	}
	return m.devices.describe(ua).String()
}

// Device is what rec's user agent says about its device, for a page
// that shows it: the request's own record (Current) leaves it out.
func (m *Manager) Device(rec Record) Device {
	if rec.Device != (Device{}) {
		return rec.Device
	}
	return m.devices.describe(rec.UserAgent)
}

// CookieName is the session cookie's name.
func (m *Manager) CookieName() string { return m.cfg.CookieName }

// Lifetime is the absolute session lifetime.
func (m *Manager) Lifetime() time.Duration { return m.cfg.Lifetime }

// IdleTimeout is the idle timeout; 0 means none.
func (m *Manager) IdleTimeout() time.Duration { return m.cfg.IdleTimeout }

// tokenLen is the length of an scs token: 32 random bytes, base64url.
const tokenLen = 43

// ValidToken reports whether s has the shape of an scs token. Anything
// else (empty, oversized, binary, forged by hand) is treated as no cookie
// without asking Redis.
func ValidToken(s string) bool { return isBase64URLOfLen(s, tokenLen) }

// maxTokens bounds how many session cookies of one request are looked up:
// each costs a Redis read, and a browser sends several only when another
// service on the host planted some.
const maxTokens = 8

// Token returns the first well-formed session cookie of r, or "": enough
// to tell whether a browser still holds one. Load takes Tokens.
func (m *Manager) Token(r *http.Request) string {
	if t := m.Tokens(r); len(t) > 0 {
		return t[0]
	}
	return ""
}

// Tokens returns r's well-formed session cookies, each once, in the order
// the browser sent them, at most maxTokens of them. Usually there is one;
// more than one means another service on the same host set a cookie of
// the same name (the browser sends the one with the narrower Path first),
// and Load picks the live session among them.
func (m *Manager) Tokens(r *http.Request) []string {
	var tokens []string
	for _, c := range r.CookiesNamed(m.cfg.CookieName) {
		if ValidToken(c.Value) && !slices.Contains(tokens, c.Value) {
			tokens = append(tokens, c.Value)
			if len(tokens) == maxTokens {
				break
			}
		}
	}
	return tokens
}

// Load loads the session named by tokens (cookie values; none for no
// cookie) into the returned context, which every other verb takes. Only a
// Redis failure is an error (wrapping store.ErrUnavailable); tokens that
// name no live, readable session mean "not logged in".
//
// One token costs one Redis read. Of several, each is read. When the live
// sessions they name all belong to one user, the request gets the most
// recently created of them, so a cookie planted before the real one can
// neither hide it nor stand in for it. When they belong to different
// users, the request is anonymous: someone who can plant a cookie (a
// sibling subdomain, another port on the host) and logs into his own
// account after the victim did would otherwise have the victim work
// inside his account, and no rule can tell which of two users the browser
// means. Either way End ends every session they name.
func (m *Manager) Load(ctx context.Context, tokens ...string) (context.Context, error) {
	switch len(tokens) {
	case 0:
		return m.load(ctx, "", false)
	case 1:
		return m.load(ctx, tokens[0], false)
	}
	var (
		best     context.Context
		bestAt   time.Time
		siblings []storedSession
		users    []string
	)
	now := time.Now()
	for _, token := range tokens {
		loaded, err := m.scs.Load(context.WithValue(ctx, requestKey{}, &request{}), token)
		if errors.Is(err, store.ErrUnavailable) {
			return nil, err
		}
		if err != nil {
			m.log.Warn("unreadable session treated as logged out", "err", err)
			continue
		}
		if m.scs.Token(loaded) == "" || m.isAPI(loaded) {
			continue // no such session, or a bearer token sent as a cookie: as no cookie
		}
		r := requestOf(loaded)
		r.mu.Lock()
		hash := r.loaded
		r.mu.Unlock()
		user := m.scs.GetString(loaded, fieldUsername)
		siblings = append(siblings, storedSession{hash: hash, user: user})
		if user != "" && m.scs.Deadline(loaded).After(now) && !slices.Contains(users, user) {
			users = append(users, user)
		}
		at, _ := timeValue(m.values(loaded), fieldLoginAt)
		if best == nil || at.After(bestAt) {
			best, bestAt = loaded, at
		}
	}
	if len(users) > 1 {
		m.log.Warn("session cookies of different users: request treated as not logged in", "users", users)
		best = nil
	}
	if best == nil {
		anon, err := m.load(ctx, "", false)
		if err != nil {
			return nil, err
		}
		if r := requestOf(anon); r != nil {
			r.mu.Lock()
			r.siblings = siblings
			r.mu.Unlock()
		}
		return anon, nil
	}
	r := requestOf(best)
	r.mu.Lock()
	for _, s := range siblings {
		if s.hash != r.loaded {
			r.siblings = append(r.siblings, s)
		}
	}
	r.mu.Unlock()
	return m.loaded(best)
}

// load is Load of one token, sent as a cookie or, when bearer, as a
// bearer token (LoadToken).
func (m *Manager) load(parent context.Context, token string, bearer bool) (context.Context, error) {
	ctx := context.WithValue(parent, requestKey{}, &request{bearer: bearer})
	loaded, err := m.scs.Load(ctx, token)
	if errors.Is(err, store.ErrUnavailable) {
		return nil, err
	}
	if err != nil {
		m.log.Warn("unreadable session treated as logged out", "err", err)
		return m.scs.Load(ctx, "")
	}
	if m.scs.Token(loaded) == "" {
		return loaded, nil
	}
	if m.isAPI(loaded) != bearer {
		// A bearer token sent as a cookie, or a browser's cookie sent as
		// a bearer token: neither names a session that way, so a page
		// cannot ride a script's token, nor a script a browser's cookie.
		return m.scs.Load(context.WithValue(parent, requestKey{}, &request{bearer: bearer}), "")
	}
	return m.loaded(loaded)
}

// isAPI reports whether the loaded session is an API session.
func (m *Manager) isAPI(ctx context.Context) bool {
	if _, d := m.stored(ctx); d != nil {
		return d.base.API
	}
	return m.scs.GetString(ctx, fieldKind) == kindAPI
}

// stored is the request's decoded document (see request.doc) while scs
// holds it unchanged, else nil: then only scs knows the session's values.
func (m *Manager) stored(ctx context.Context) (*request, *doc) {
	r := requestOf(ctx)
	if r == nil {
		return nil, nil
	}
	r.mu.Lock()
	d := r.doc
	r.mu.Unlock()
	if d == nil || m.scs.Status(ctx) != scs.Unmodified {
		return r, nil
	}
	return r, d
}

// loaded applies the session rules to a session just read: its user is
// recorded for the index, a session past its deadline or from before the
// index ends now, and a live one is touched.
func (m *Manager) loaded(loaded context.Context) (context.Context, error) {
	// Known before anything deletes the session, so that it also leaves
	// its user's index.
	r, d := m.stored(loaded)
	var (
		user     string
		deadline time.Time
		indexed  bool
	)
	if d != nil {
		user, deadline, indexed = d.base.User, d.deadline, d.indexed
	} else {
		user, deadline = m.scs.GetString(loaded, fieldUsername), m.scs.Deadline(loaded)
		_, indexed = timeValue(m.values(loaded), fieldExpiresAt)
	}
	if r != nil {
		r.mu.Lock()
		r.user = user
		r.presented = m.scs.Token(loaded)
		r.mu.Unlock()
	}
	if !deadline.After(time.Now()) {
		// Past its absolute lifetime (for example after SESSION_LIFETIME
		// was shortened): end it now rather than serve it once more.
		if err := m.scs.Destroy(loaded); err != nil {
			return nil, fmt.Errorf("end expired session: %w", err)
		}
		m.cfg.Events.SessionsEnded("expired", 1)
		return loaded, nil
	}
	if user != "" && !indexed {
		// A login stored before the per-user index existed (or by plain
		// scs/redisstore): no index knows it, so a password change,
		// delete or "sign out everywhere" could not end it. It ends now,
		// once, and its user logs in again.
		m.log.Info("session from before the per-user index ended; its user logs in again", "user", user)
		if err := m.scs.Destroy(loaded); err != nil {
			return nil, fmt.Errorf("end unindexed session: %w", err)
		}
		return loaded, nil
	}
	if user != "" {
		m.touch(loaded)
	}
	return loaded, nil
}

// RequireTwoFactor reports whether REQUIRE_TWO_FACTOR is on.
func (m *Manager) RequireTwoFactor() bool { return m.cfg.RequireTwoFactor }

// touch records this request as the session's last seen time, which
// also moves its idle deadline (the save it causes sets the key's expiry
// to now + idle timeout), but at most once per touchEvery: a steady page
// view costs one Redis read and no write.
func (m *Manager) touch(ctx context.Context) {
	now := time.Now().UTC()
	var seen time.Time
	if _, d := m.stored(ctx); d != nil {
		seen = d.lastSeen
	} else {
		seen, _ = timeValue(m.values(ctx), fieldLastSeenAt)
	}
	if !seen.IsZero() && now.Sub(seen) < m.touchEvery() {
		return
	}
	m.scs.Put(ctx, fieldLastSeenAt, now.Format(time.RFC3339Nano))
	forget(ctx)
}

// touchEvery is how stale last seen, and so the idle deadline, may get:
// LastSeenEvery, or a tenth of the idle timeout if that is shorter, so a
// session in use never idles out and one left alone ends between 90% and
// 100% of the idle timeout after its last request.
func (m *Manager) touchEvery() time.Duration {
	if idle := m.cfg.IdleTimeout; idle > 0 && idle/10 < LastSeenEvery {
		return idle / 10
	}
	return LastSeenEvery
}

func (m *Manager) values(ctx context.Context) map[string]any {
	v := map[string]any{}
	for _, k := range m.scs.Keys(ctx) {
		v[k] = m.scs.Get(ctx, k)
	}
	return v
}

// Save stores what this request changed and sets or clears the cookie on
// w. It must run before anything is written to the client; the web layer
// buffers the response for it. A session that was ended while the request
// ran stays ended, and gets no cookie.
func (m *Manager) Save(ctx context.Context, w http.ResponseWriter) error {
	switch m.scs.Status(ctx) {
	case scs.Modified:
		if m.scs.Token(ctx) == "" && len(m.scs.Keys(ctx)) == 0 {
			return nil // an anonymous visit with nothing to keep
		}
		token, _, err := m.scs.Commit(ctx)
		if errors.Is(err, store.ErrSessionGone) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("save session: %w", err)
		}
		if r := requestOf(ctx); r == nil || r.presentedToken() != token {
			// The cookie lives as long as the session could (its absolute
			// deadline); Redis enforces the idle timeout on the server
			// side. The same token as the browser sent has that same
			// deadline (a touch, a flash): its cookie stands as it is.
			m.scs.WriteSessionCookie(ctx, w, token, m.scs.Deadline(ctx))
		}
		w.Header().Set("Cache-Control", "no-store")
	case scs.Destroyed:
		m.scs.WriteSessionCookie(ctx, w, "", time.Time{})
		w.Header().Set("Cache-Control", "no-store")
	}
	return nil
}
