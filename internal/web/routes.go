package web

import (
	"net/http"
	"time"

	"loginsvc/internal/session"
)

// Handler returns the service's handler: every route, with the middleware
// in the one order production and the tests share. Middleware reads
// outside in: request log, recover, security headers, cross-origin check,
// and for pages no-store, body limit and the session load/save; the
// account pages then require a login.
func (a *App) Handler() http.Handler {
	// What each page asks of the session (session.Check): a login; a
	// recent full authentication before a sensitive action; and, for the
	// pages where a second factor is set up, nothing of REQUIRE_TWO_FACTOR.
	loggedIn := session.Need{}
	enrolling := session.Need{Enrolling: true}
	sensitive := session.Need{MaxAge: a.cfg.ReauthMaxAge}
	enrollingSensitive := session.Need{MaxAge: a.cfg.ReauthMaxAge, Enrolling: true}

	// Account pages: logged-in users only; the password needs a recent
	// authentication.
	account := http.NewServeMux()
	account.HandleFunc("GET /sessions/{$}", a.sessionsPage)
	account.HandleFunc("POST /sessions/{id}/revoke", a.revokeSession)
	account.HandleFunc("POST /sessions/revoke-others", a.revokeOtherSessions)
	account.Handle("GET /password/{$}", a.require(sensitive, http.HandlerFunc(a.passwordForm)))
	account.Handle("POST /password/{$}", a.require(sensitive, http.HandlerFunc(a.changePassword)))
	account.HandleFunc("/", a.notFound)

	// The security page and the second factors: setting one up is open to
	// a session that has none, under REQUIRE_TWO_FACTOR too.
	security := http.NewServeMux()
	security.HandleFunc("GET /security/{$}", a.securityPage)
	security.Handle("GET /security/totp/{$}", a.require(enrollingSensitive, http.HandlerFunc(a.totpForm)))
	security.Handle("POST /security/totp/{$}", a.require(enrollingSensitive, http.HandlerFunc(a.confirmTOTP)))
	security.Handle("GET /security/totp/qr.png", a.require(enrollingSensitive, http.HandlerFunc(a.totpQR)))
	security.Handle("POST /security/totp/remove", a.require(sensitive, http.HandlerFunc(a.removeTOTP)))
	security.Handle("POST /security/recovery/{$}", a.require(sensitive, http.HandlerFunc(a.regenerateRecovery)))
	security.Handle("POST /security/passkeys/options", a.require(enrollingSensitive, http.HandlerFunc(a.passkeyRegistrationOptions)))
	security.Handle("POST /security/passkeys/{$}", a.require(enrollingSensitive, http.HandlerFunc(a.addPasskey)))
	security.Handle("POST /security/passkeys/{id}/rename", a.require(enrolling, http.HandlerFunc(a.renamePasskey)))
	security.Handle("POST /security/passkeys/{id}/remove", a.require(sensitive, http.HandlerFunc(a.removePasskey)))
	security.HandleFunc("/", a.notFound)

	pages := http.NewServeMux()
	pages.HandleFunc("GET /{$}", a.index)
	pages.HandleFunc("GET /login/{$}", a.loginForm)
	pages.HandleFunc("POST /login/{$}", a.login)
	pages.HandleFunc("POST /login/passkey/options", a.passkeySignInOptions)
	pages.HandleFunc("POST /login/passkey/{$}", a.passkeySignIn)
	pages.HandleFunc("GET /login/code/{$}", a.secondStepForm)
	pages.HandleFunc("POST /login/code/{$}", a.secondStep)
	pages.HandleFunc("POST /login/code/passkey/options", a.secondStepPasskeyOptions)
	pages.Handle("POST /login/step-up/passkey/options", a.require(enrolling, http.HandlerFunc(a.stepUpPasskeyOptions)))
	pages.Handle("POST /reauth/passkey/options", a.require(enrolling, http.HandlerFunc(a.stepUpPasskeyOptions)))
	pages.Handle("GET /login/step-up/{$}", a.require(enrolling, http.HandlerFunc(a.stepUpForm)))
	pages.Handle("POST /login/step-up/{$}", a.require(enrolling, http.HandlerFunc(a.stepUp)))
	pages.Handle("GET /reauth/{$}", a.require(enrolling, http.HandlerFunc(a.reauthForm)))
	pages.Handle("POST /reauth/{$}", a.require(enrolling, http.HandlerFunc(a.reauth)))
	pages.HandleFunc("GET /logout/{$}", a.logoutPage)
	pages.HandleFunc("POST /logout/{$}", a.logout)
	pages.Handle("/sessions/", a.require(loggedIn, noteRoute(account)))
	pages.Handle("/password/{$}", a.require(loggedIn, noteRoute(account)))
	pages.Handle("/security/", a.require(enrolling, noteRoute(security)))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.Handle("GET /static/{file}", cacheFor(time.Hour, http.HandlerFunc(a.staticFile)))
	// Browsers ask for it on every first visit; answering "nothing here"
	// keeps 404 lines out of the log.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	// The paths people type or guess.
	mux.Handle("/login", redirectTo("/login/"))
	mux.Handle("/logout", redirectTo("/logout/"))
	mux.Handle("/sessions", redirectTo("/sessions/"))
	mux.Handle("/password", redirectTo("/password/"))
	mux.Handle("/security", redirectTo("/security/"))
	mux.Handle("/reauth", redirectTo("/reauth/"))
	mux.Handle("/account", seeOther("/sessions/"))
	mux.Handle("/account/{$}", seeOther("/sessions/"))
	// Cookie-only hops: no session is read.
	mux.Handle("GET /lang", noStore(http.HandlerFunc(a.setLanguage)))
	mux.Handle("GET /logout/done", noStore(http.HandlerFunc(a.loggedOut)))
	// Machine endpoints: forward auth for proxies and the JSON API. No
	// page session: they read a cookie or bearer token themselves, never
	// set a cookie, and answer every error in JSON.
	mux.Handle("/auth/", machine(a.forwardAuthRoutes()))
	mux.Handle("/api/", machine(a.apiRoutes()))
	// Without these the mux would redirect to the slash forms, in HTML.
	mux.Handle("/auth", machine(http.HandlerFunc(a.notFound)))
	mux.Handle("/api", machine(http.HandlerFunc(a.notFound)))
	sessionPages := a.withSession(noteRoute(pages))
	mux.Handle("/{$}", sessionPages)
	mux.Handle("/login/{$}", sessionPages)
	mux.Handle("/logout/{$}", sessionPages)
	mux.Handle("/sessions/", sessionPages)
	mux.Handle("/password/{$}", sessionPages)
	mux.Handle("/security/", sessionPages)
	mux.Handle("/reauth/{$}", sessionPages)
	mux.Handle("/login/code/{$}", sessionPages)
	mux.Handle("/login/step-up/{$}", sessionPages)
	mux.Handle("/login/passkey/", sessionPages)
	mux.Handle("/login/code/passkey/options", sessionPages)
	mux.Handle("/login/step-up/passkey/options", sessionPages)
	mux.Handle("/reauth/passkey/options", sessionPages)
	mux.HandleFunc("/", a.notFound)

	return a.everyResponse(mux)
}

// everyResponse is the middleware every route goes through. The request
// log sits outside panic recovery so that a panicking request still gets
// its request id in the error line and its own access-log line with status
// 500. A method of its own so that tests wrap a handler of theirs in the
// very same chain.
func (a *App) everyResponse(next http.Handler) http.Handler {
	return a.logRequests(a.recoverPanics(a.securityHeaders(a.crossOrigin(next))))
}

// withSession is the middleware of the pages that read the session.
func (a *App) withSession(next http.Handler) http.Handler {
	return noStore(limitBody(a.loadAndSave(next)))
}

// forwardAuthRoutes are the endpoints reverse proxies ask on every request
// to an app they protect (handlers_forward.go).
func (a *App) forwardAuthRoutes() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /auth/verify", a.verify)
	m.HandleFunc("GET /auth/forward", a.forward)
	// Envoy's ext_authz: any method, the original path after the prefix.
	m.HandleFunc("/auth/envoy/", a.envoy)
	m.Handle("/auth/verify", methodNotAllowed("GET, HEAD"))
	m.Handle("/auth/forward", methodNotAllowed("GET, HEAD"))
	m.HandleFunc("/auth/", a.notFound)
	return m
}

// apiRoutes are the JSON API's endpoints (handlers_api.go).
func (a *App) apiRoutes() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("POST /api/login", a.apiLogin)
	m.HandleFunc("GET /api/whoami", a.whoami)
	m.HandleFunc("POST /api/logout", a.apiLogout)
	m.Handle("/api/login", methodNotAllowed("POST"))
	m.Handle("/api/whoami", methodNotAllowed("GET, HEAD"))
	m.Handle("/api/logout", methodNotAllowed("POST"))
	m.HandleFunc("/api/", a.notFound)
	return m
}
