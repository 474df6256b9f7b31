package web

import (
	"net/http"
	"net/url"
	"strings"

	"loginsvc/internal/session"
)

// Forward auth: a reverse proxy (nginx auth_request, Traefik ForwardAuth,
// Caddy forward_auth) asks, for every request to an app it protects, who
// is logged in. The answer is one session read (none with a session
// cache), touches the session like a page view, and never sets a cookie:
// the proxy does not pass this response's cookies on.

// Headers of a forward-auth answer. The proxy copies the identity headers
// onto the request it sends to the app, having deleted any the client
// sent; it copies the login URL into the redirect of a 401.
const (
	headerRemoteUser  = "Remote-User"
	headerRequestUser = "X-Auth-Request-User"
	headerSessionID   = "X-Auth-Session-Id"
	headerLoginURL    = "X-Auth-Login-URL"
	// headerAuthMethods lists how the user authenticated, RFC 8176
	// names separated by spaces ("pwd otp"), for apps with rules of their
	// own.
	headerAuthMethods = "Remote-Auth-Methods"
)

// verify serves GET /auth/verify, for nginx auth_request: 200 with the
// identity headers when the request's session cookie or bearer token
// names a live session, else 401 with the login URL in X-Auth-Login-URL.
// Never a 3xx: nginx turns any status but 2xx, 401 and 403 into a 500.
func (a *App) verify(w http.ResponseWriter, r *http.Request) {
	a.forwardAuth(w, r, false)
}

// forward serves GET /auth/forward, for Traefik ForwardAuth and Caddy
// forward_auth, which pass a non-2xx answer to the client as it is: the
// same as verify, except that a browser (Accept: text/html) without a
// session gets a 302 to the login form, which returns to the original URL.
func (a *App) forward(w http.ResponseWriter, r *http.Request) {
	a.forwardAuth(w, r, true)
}

// envoy serves /auth/envoy/{path...}, any method, for Envoy's external
// authorization over HTTP (Envoy Gateway's SecurityPolicy extAuth.http
// with path /auth/envoy): Envoy sends the check to that prefix plus the
// request's own path and query, with the request's own method and Host.
// From a trusted proxy that path and Host are the original URL (as
// X-Forwarded-Uri and -Host are for the others); the answer is /auth/forward's.
func (a *App) envoy(w http.ResponseWriter, r *http.Request) {
	if a.trusted(parseAddr(r.RemoteAddr)) {
		r = r.Clone(r.Context())
		uri := strings.TrimPrefix(r.URL.EscapedPath(), "/auth/envoy")
		if r.URL.RawQuery != "" {
			uri += "?" + r.URL.RawQuery
		}
		r.Header.Set("X-Forwarded-Uri", uri)
		if r.Header.Get("X-Forwarded-Host") == "" {
			r.Header.Set("X-Forwarded-Host", r.Host)
		}
	}
	a.forwardAuth(w, r, true)
}

// varyCredentials is every forward-auth answer's Vary: see constHeader.
var varyCredentials = constHeader("Cookie, Authorization")

func (a *App) forwardAuth(w http.ResponseWriter, r *http.Request, redirectBrowsers bool) {
	h := w.Header()
	h["Vary"] = varyCredentials
	cur, verdict, err := a.verifySession(r, session.Need{TwoFactor: a.twoFactorApp(r)})
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	switch verdict {
	case session.Allowed:
	case session.NeedsSecondFactor:
		// Logged in, but with one factor where the app (or the service's
		// policy) asks two: the step-up page, which asks for the second
		// factor alone and returns to the app.
		a.sendToLogin(w, r, a.stepUpURL(r, !redirectBrowsers), codeSecondFactorRequired, redirectBrowsers)
		return
	default:
		a.sendToLogin(w, r, a.loginURL(r, !redirectBrowsers), codeUnauthorized, redirectBrowsers)
		return
	}
	// The 200 has no body and is the proxy's alone: nginx's auth_request
	// reads it in a subrequest, Traefik, Caddy and Envoy copy the named
	// identity headers into the app's request, and none passes a 2xx
	// answer on to the browser. The headers that govern how a browser
	// renders, frames, sniffs or leaves a document (CSP, X-Frame-Options,
	// nosniff, Referrer-Policy) have no document to act on, so they go,
	// which spares net/http copying and sorting them on every check. A
	// browser that opens /auth/verify itself gets the same empty 200.
	// Kept: HSTS (it is about the host, not a document), no-store, Vary,
	// X-Served-By, X-Request-Id. Every other answer here (401 with a JSON
	// body, which Traefik and Caddy do pass on, the 302, the errors)
	// keeps them all. docs/security.md, "Caching and security headers".
	delete(h, "Content-Security-Policy")
	delete(h, "X-Frame-Options")
	delete(h, "X-Content-Type-Options")
	delete(h, "Referrer-Policy")
	// The names are in canonical form; one array backs the four values.
	v := [...]string{cur.User, cur.ID, joinMethods(cur.AMR)}
	h[headerRemoteUser] = v[0:1:1]
	h[headerRequestUser] = v[0:1:1]
	h[headerSessionID] = v[1:2:2]
	h[headerAuthMethods] = v[2:3:3]
	w.WriteHeader(http.StatusOK)
}

// sendToLogin answers a forward-auth check that cannot pass: 401 with
// the page that can make it pass in X-Auth-Login-URL, or, for a browser
// on /auth/forward, a 302 to that page. Never a 3xx without Location:
// with no page to name, the browser gets the 401 too.
func (a *App) sendToLogin(w http.ResponseWriter, r *http.Request, login, code string, redirectBrowsers bool) {
	w.Header().Set(headerLoginURL, login)
	if redirectBrowsers && login != "" && strings.Contains(r.Header.Get("Accept"), "text/html") {
		http.Redirect(w, r, login, http.StatusFound) //nolint:gosec // G710: login is AUTH_LOGIN_URL plus a next= that safeReturn checked (loginURL)
		return
	}
	writeJSONError(w, http.StatusUnauthorized, code)
}

// twoFactorApp reports whether the app the proxy asks about is one of
// AUTH_TWO_FACTOR_HOSTS. When some are configured and the app's host is
// unknown (X-Forwarded-Host missing, or sent by a peer outside
// TRUSTED_PROXIES) it fails closed: two factors.
func (a *App) twoFactorApp(r *http.Request) bool {
	if len(a.twoFactorHosts) == 0 {
		return false
	}
	u, err := url.Parse(a.originalURL(r))
	if err != nil || u.Host == "" {
		return true
	}
	return a.twoFactorHosts.allows(u.Scheme, u.Host)
}

// verifySession checks the session the request names against need (and
// stores its idle touch when one is due): by a bearer token of this
// service's shape if it carries one (which alone then decides), else by
// its session cookies. An Authorization header of another shape is the
// app's own business and leaves the cookie to decide. The session
// package's read-only check: no scs session is loaded for it.
func (a *App) verifySession(r *http.Request, need session.Need) (session.Record, session.Verdict, error) {
	if token, ok := bearerToken(r); ok {
		return a.sessions.VerifyToken(r.Context(), need, token)
	}
	return a.sessions.Verify(r.Context(), need, a.sessions.Tokens(r)...)
}

// bearerToken returns the token of an "Authorization: Bearer TOKEN"
// header when TOKEN has the shape of this service's tokens.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, session.ValidToken(token)
}

// loginURL is where a visitor without a session logs in: the login form
// (AUTH_LOGIN_URL; a path is on the original URL's host), with the
// original URL as its return target when that is one a login may
// return to (see safeReturn). A refused target is left out, so the login
// returns to "/".
//
// When absolute (for /auth/verify) a path is written out on a host even
// when the original URL is unknown (no trusted proxy sent it) or refused:
// on the host the request reached. nginx's error_page redirects only to
// an absolute URL; a path it serves in place, under the app's URL, as a
// 302 without Location. Only a request without a usable Host keeps the
// path. /auth/forward answers its 302 itself, and a path there is
// resolved by the browser against the app's URL, as it should be.
func (a *App) loginURL(r *http.Request, absolute bool) string {
	target := a.safeReturn(r, a.originalURL(r))
	login := a.cfg.LoginURL
	if strings.HasPrefix(login, "/") {
		// The login form on the host the browser asked for, written out:
		// nginx's error_page redirects only to an absolute URL.
		if u, err := url.Parse(target); err == nil && u.Host != "" {
			login = u.Scheme + "://" + u.Host + login
		} else if origin := a.requestOrigin(r); absolute && origin != "" {
			login = origin + login
		}
	}
	if target == "/" {
		return login
	}
	sep := "?"
	if strings.Contains(login, "?") {
		sep = "&"
	}
	return login + sep + "next=" + url.QueryEscape(target)
}

// requestOrigin is scheme://host of the host r reached (its Host header),
// which a login may return to anyway (see safeReturn): https when a
// trusted proxy says so or behind TLS (COOKIE_SECURE). "" when r has no
// Host that reads as one.
func (a *App) requestOrigin(r *http.Request) string {
	if r.Host == "" {
		return ""
	}
	u, err := url.Parse("http://" + r.Host)
	if err != nil || u.Host != r.Host || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return ""
	}
	scheme := "http"
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	if a.cfg.CookieSecure || a.trusted(parseAddr(r.RemoteAddr)) && strings.EqualFold(strings.TrimSpace(proto), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// stepUpURL is loginURL for a session that needs its second factor: the
// step-up page beside the login form.
func (a *App) stepUpURL(r *http.Request, absolute bool) string {
	login := a.loginURL(r, absolute)
	base, query, _ := strings.Cut(login, "?")
	switch {
	case strings.HasSuffix(base, "/login/"):
		base += "step-up/"
	case strings.HasSuffix(base, "/login"):
		base += "/step-up/"
	default:
		base = strings.TrimSuffix(base, "/") + "/login/step-up/"
	}
	if query != "" {
		return base + "?" + query
	}
	return base
}

// originalURL is the URL the proxy asks about, from X-Forwarded-Proto,
// X-Forwarded-Host and X-Forwarded-Uri, which are believed only from a
// trusted proxy (TRUSTED_PROXIES, as X-Forwarded-For is): anyone else
// could name any return target. "" when unknown.
func (a *App) originalURL(r *http.Request) string {
	if !a.trusted(parseAddr(r.RemoteAddr)) {
		return ""
	}
	first := func(name string) string {
		v, _, _ := strings.Cut(r.Header.Get(name), ",")
		return strings.TrimSpace(v)
	}
	uri := r.Header.Get("X-Forwarded-Uri")
	if !strings.HasPrefix(uri, "/") {
		uri = "/"
	}
	host := first("X-Forwarded-Host")
	if host == "" {
		return uri
	}
	proto := strings.ToLower(first("X-Forwarded-Proto"))
	if proto != "https" {
		proto = "http"
	}
	return proto + "://" + host + uri
}

// safeReturn is the package's safeReturn for a return target of r's
// login: this site's paths, AUTH_ALLOWED_HOSTS and the host r reached.
// Behind TLS (COOKIE_SECURE) only https targets.
func (a *App) safeReturn(r *http.Request, next string) string {
	return safeReturn(next, a.returnHosts, r.Host, a.cfg.CookieSecure)
}
