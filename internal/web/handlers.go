package web

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"loginsvc/internal/auth"
)

type indexPage struct {
	// IdleEnds is when this session ends if unused; zero when there is no
	// idle timeout.
	IdleEnds time.Time
	// EndsAt is when it ends at the latest (login + lifetime).
	EndsAt time.Time
}

// index serves GET /: "Hello, NAME", when this session ends and links to
// the account pages, or "Hello" with a link to the login form, under "You
// were signed out from another device" (or why else) when someone else
// ended the session this browser's cookie named.
func (a *App) index(w http.ResponseWriter, r *http.Request) {
	var p indexPage
	cur, ok := a.sessions.Current(r.Context())
	if !ok {
		a.renderSignedOut(w, r, "index.html", p)
		return
	}
	p.EndsAt = cur.EndsAt
	if a.sessions.IdleTimeout() > 0 {
		p.IdleEnds = cur.ExpiresAt
	}
	a.render(w, r, http.StatusOK, "index.html", p)
}

// renderSignedOut renders a page for a browser that is not logged in: with
// the message saying its session was ended elsewhere, if it was, else
// with the flash its cookie carries.
func (a *App) renderSignedOut(w http.ResponseWriter, r *http.Request, page string, data any) {
	if f := a.endedFlash(r); f != nil {
		a.renderNotice(w, r, http.StatusOK, page, data, f)
		return
	}
	a.render(w, r, http.StatusOK, page, data)
}

// rememberChecked is the value the login form's "Remember me" checkbox
// sends (templates/login.html). Only it asks for a lasting cookie: a
// client sending remember=0 or remember=false means "no", not "yes".
const rememberChecked = "1"

type loginForm struct {
	Username string
	Remember bool
}

type loginPage struct {
	Form loginForm
	// Error is the catalog key of the form's error, "" for none.
	Error string
	// Pause, when the answer is throttled, replaces Error's text.
	Pause *pause
	Next  string
	// App is the host of the protected app the login returns to (next,
	// once checked), for "Sign in to continue to APP"; "" for this site.
	App string
	// Passkeys offers "Sign in with a passkey" (the page's host can be a
	// relying party).
	Passkeys bool
}

// newLoginPage is the login form returning to next, which is kept only if
// it is a place a login may return to (safeReturn); the app it names is
// shown, since people look for it before they type a password.
func (a *App) newLoginPage(r *http.Request, next string) loginPage {
	back := a.safeReturn(r, next)
	if back == "/" {
		next = ""
	}
	return loginPage{Next: next, App: appHost(r, back), Passkeys: a.passkeysHere(r)}
}

// loginForm serves GET /login/: the form, under "You were signed out from
// another device" (or why else) for a browser whose session someone else
// ended, which the pages it asked for send here.
func (a *App) loginForm(w http.ResponseWriter, r *http.Request) {
	a.renderSignedOut(w, r, "login.html", a.newLoginPage(r, r.URL.Query().Get("next")))
}

// msgInvalidLogin is the one message for every refused login: it never
// says which part was wrong.
var msgInvalidLogin = msg("login.invalid")

// login serves POST /login/: the password step (auth.Service.Login). A
// user without a second factor is logged in (a new session token, so a
// token planted before login is worthless) and redirected with 303; one
// with a second factor gets a pending-login cookie and the code page.
func (a *App) login(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	form := loginForm{Username: r.PostForm.Get("username"), Remember: r.PostForm.Get("remember") == rememberChecked}
	next := r.PostForm.Get("next")
	res, err := a.auth.Login(r.Context(), a.loginRequest(r, form.Username, r.PostForm.Get("password"), ""))
	if err != nil {
		a.refuse(w, r, stepPassword, err, func(status int) {
			p := a.newLoginPage(r, next)
			p.Form, p.Error, p.Pause = form, msgInvalidLogin, pauseOf(err, true)
			a.render(w, r, status, "login.html", p)
		})
		return
	}
	if res.Pending != "" {
		a.cfg.Observer.Login(LoginSecondStep)
		a.log.Info("login: password right, second step due", "user", res.User, "request_id", requestID(r.Context()), "client", a.clientIP(r).String())
		a.setPendingCookie(w, res.Pending, res.PendingExpires)
		target := "/login/code/"
		if n := a.safeReturn(r, next); n != "/" {
			target += "?next=" + url.QueryEscape(n)
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	a.loggedIn(w, r, stepPassword, res, next)
}

// loginRequest is the auth request of r: the client's address, device
// cookies and user agent, with what the form sent.
func (a *App) loginRequest(r *http.Request, username, password, code string) auth.LoginRequest {
	return auth.LoginRequest{
		Username: username, Password: password, Code: code,
		IP: a.clientIP(r), DeviceCookies: a.deviceCookies(r), UserAgent: r.UserAgent(),
		Remember: r.PostForm.Get("remember") == rememberChecked,
	}
}

// loggedIn ends a completed login of a browser: the device cookie, the
// log line, and the redirect to next (or, under REQUIRE_TWO_FACTOR for a
// user without a second factor, to the enrolment page first).
func (a *App) loggedIn(w http.ResponseWriter, r *http.Request, step string, res auth.LoginResult, next string) {
	a.setDeviceCookie(w, res.Device)
	a.cfg.Observer.Login(LoginSuccess)
	if res.SecondMethod != "" {
		a.cfg.Observer.SecondStep(res.SecondMethod, SecondStepSuccess)
	}
	a.log.Info("login", "user", res.User, "step", step, "methods", strings.Join(res.Methods, " "), "second", res.SecondMethod,
		"request_id", requestID(r.Context()), "client", a.clientIP(r).String())
	target := a.safeReturn(r, next)
	if res.MustEnrol {
		target = "/security/totp/?next=" + url.QueryEscape(target)
	}
	if res.SecondMethod == auth.SecondStepRecovery {
		a.setFlash(w, newFlash("recovery_used", res.RecoveryLeft))
	}
	http.Redirect(w, r, target, http.StatusSeeOther) //nolint:gosec // G710: safeReturn keeps only this site's paths and allowed hosts (redirect.go)
}

// Steps of a login, for the log and metrics.
const (
	stepPassword = "password"
	stepCode     = "code"
	stepReauth   = "reauth"
	stepUp       = "step-up"
	stepEnrol    = "enrol"
	stepPasskey  = "passkey"
)

// refuse answers a refused login step, once for every step: it logs the
// refusal, tells the Observer, and either shows the step's page again
// (show, with 400 for wrong credentials or code, 429 with Retry-After when
// throttled) or, for anything else, the error page (503 when Redis or the
// hashing queue is away).
func (a *App) refuse(w http.ResponseWriter, r *http.Request, step string, err error, show func(status int)) {
	ctx := r.Context()
	var throttled *auth.ThrottledError
	switch {
	case errors.Is(err, auth.ErrInvalidCredentials):
		a.cfg.Observer.Login(LoginInvalid)
		a.log.Info("login failed", "step", step, "request_id", requestID(ctx), "client", a.clientIP(r).String())
		show(http.StatusBadRequest)
	case errors.Is(err, auth.ErrInvalidCode):
		a.cfg.Observer.Login(LoginInvalid)
		a.cfg.Observer.SecondStep("code", SecondStepFailure)
		user := ""
		if !machinePath(r.URL.Path) { // the API has no page session to ask: scs would panic
			user = a.currentUser(ctx)
		}
		a.log.Info("login failed: wrong code", "step", step, "user", user, "request_id", requestID(ctx), "client", a.clientIP(r).String())
		show(http.StatusBadRequest)
	case errors.Is(err, auth.ErrInvalidPasskey):
		a.cfg.Observer.Login(LoginInvalid)
		a.cfg.Observer.SecondStep(auth.SecondStepPasskey, SecondStepFailure)
		a.log.Info("login failed: passkey not accepted", "step", step, "request_id", requestID(ctx), "client", a.clientIP(r).String(), "err", err)
		show(http.StatusBadRequest)
	case errors.Is(err, auth.ErrPasskeyCloned):
		// Worth an operator's look: two copies of one authenticator.
		a.cfg.Observer.Login(LoginInvalid)
		a.cfg.Observer.SecondStep(auth.SecondStepPasskey, SecondStepFailure)
		a.log.Warn("login refused: passkey signature counter went backwards (a cloned authenticator?)", "step", step, "request_id", requestID(ctx), "client", a.clientIP(r).String(), "err", err)
		show(http.StatusBadRequest)
	case errors.Is(err, auth.ErrFactorUnreadable):
		// The operator's to fix; the user sees a wrong code and can use
		// a recovery code meanwhile.
		a.cfg.Observer.Login(LoginInvalid)
		a.cfg.Observer.SecondStep(auth.SecondStepTOTP, SecondStepFailure)
		a.log.Error("authenticator secret unreadable: sealed under a DEVICE_COOKIE_KEY no longer listed; add the old key back, or the user signs in with a recovery code, or run `server user mfa reset`",
			"step", step, "request_id", requestID(ctx), "err", err)
		show(http.StatusBadRequest)
	case errors.As(err, &throttled):
		// The page says attempts are paused and for about how long
		// (pauseOf), the status and Retry-After tell a well-behaved
		// client to wait. Every account, existing or not, is throttled
		// alike, so the answer tells an attacker nothing about it.
		a.log.Warn("login throttled", "step", step, "limit", throttled.Limit, "user", throttled.User, "retry_after", throttled.RetryAfter.Round(time.Second).String(),
			"request_id", requestID(ctx), "client", a.clientIP(r).String())
		a.cfg.Observer.Login(LoginThrottled)
		setRetryAfter(w, throttled)
		show(http.StatusTooManyRequests)
	default:
		a.cfg.Observer.Login(loginFailure(err))
		a.serverError(w, r, err)
	}
}

// deviceCookieBase is the device cookie's name; with COOKIE_SECURE it gets
// the __Host- prefix, as the session cookie does, so no other host or
// path of the site can set it.
const deviceCookieBase = "device"

func (a *App) deviceCookieName() string {
	if a.cfg.CookieSecure {
		return "__Host-" + deviceCookieBase
	}
	return deviceCookieBase
}

// deviceCookies returns the values of every device cookie the request
// carries: auth takes the one valid for the user wherever it stands, so
// cookies planted by another service on the host cannot hide the real one.
func (a *App) deviceCookies(r *http.Request) []string {
	var vs []string
	for _, c := range r.CookiesNamed(a.deviceCookieName()) {
		vs = append(vs, c.Value)
	}
	return vs
}

// setDeviceCookie gives the browser the fresh device cookie of a
// completed login (see auth.DeviceCookie): later attempts from this
// browser are limited per cookie, not by the account's lockout. It holds
// no session data.
func (a *App) setDeviceCookie(w http.ResponseWriter, d auth.DeviceCookie) {
	if d.Value == "" {
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: a.deviceCookieName(), Value: d.Value, Path: "/", Expires: d.Expires,
		MaxAge: int(time.Until(d.Expires).Seconds()), HttpOnly: true, Secure: a.cfg.CookieSecure, SameSite: http.SameSiteLaxMode,
	})
}

// logoutPage serves GET /logout/: a page with the log-out button. A GET
// never logs out, so a link or prefetch cannot end a session.
func (a *App) logoutPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, "logout.html", nil)
}

// logout serves POST /logout/: it ends the session in Redis (every session
// the request's cookies name, in case one was planted), so the old cookie
// is worthless on every replica, clears the cookie, sets the "You have
// been logged out" flash and redirects to /. It leaves the browser's other cookies alone: the device
// cookie is what keeps this browser able to log in while someone keeps the
// account locked, and the owner logging out must not lose it. (So no
// Clear-Site-Data "cookies": it would drop the device cookie and the
// language choice too.)
func (a *App) logout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	user := a.currentUser(ctx)
	if err := a.sessions.End(ctx); err != nil {
		a.serverError(w, r, err)
		return
	}
	if user != "" {
		a.log.Info("logout", "user", user, "request_id", requestID(ctx))
	}
	a.setFlash(w, newFlash("logged_out", 0))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// loggedOut serves GET /logout/done, where logout used to send the
// browser (while it dropped every cookie, the flash had to be set by a
// second hop): bookmarks and histories still hold it. It sets the flash
// only for a browser without a session cookie, so a link to this page
// from elsewhere cannot tell a logged-in user they were logged out.
func (a *App) loggedOut(w http.ResponseWriter, r *http.Request) {
	if a.sessions.Token(r) == "" {
		a.setFlash(w, newFlash("logged_out", 0))
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// setLanguage serves GET /lang?to=CODE&next=PATH, the language switch on
// every page: it stores the choice in the lang cookie and goes back to
// next (a path on this site, else /). A GET, so the switch is a plain
// link; it only sets a preference.
func (a *App) setLanguage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	l, ok := a.templates.locales.byCode[q.Get("to")]
	if !ok {
		a.badRequest(w, r)
		return
	}
	http.SetCookie(w, a.languageCookie(l))
	http.Redirect(w, r, safeNext(q.Get("next")), http.StatusSeeOther) //nolint:gosec // G710: safeNext keeps only a path on this site (redirect.go)
}

// langMaxAge is how long a language choice is remembered.
const langMaxAge = 365 * 24 * time.Hour

func (a *App) languageCookie(l *locale) *http.Cookie {
	return &http.Cookie{
		Name: langCookie, Value: l.code, Path: "/", MaxAge: int(langMaxAge.Seconds()),
		HttpOnly: true, Secure: a.cfg.CookieSecure, SameSite: http.SameSiteLaxMode,
	}
}

// staticFile serves GET /static/{file}: one file of the static folder,
// named by the path segment alone. An escaped slash or dot-dot in that
// segment ("..%2flogin.html"), a folder or a missing file is the 404
// page; http.FileServer would clean such a name into a path outside the
// segment, or list a folder.
func (a *App) staticFile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if !fs.ValidPath(name) || name == "." || strings.Contains(name, "/") {
		a.notFound(w, r)
		return
	}
	info, err := fs.Stat(a.static, name)
	if err != nil || !info.Mode().IsRegular() {
		a.notFound(w, r)
		return
	}
	http.ServeFileFS(w, r, a.static, name) //nolint:gosec // G703: name is one fs.ValidPath segment of the embedded static folder, checked above
}

// healthz serves GET /healthz: the process is alive. It never touches
// Redis, so a Redis outage cannot make an orchestrator restart every
// replica at once.
func (a *App) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz serves GET /readyz: 200 while this replica can serve logins (its
// start-up work is done, Redis answers and shutdown has not begun), else
// 503.
func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if a.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("shutting down\n"))
		return
	}
	if !a.started() {
		// Expected for a moment at every start: not worth a warning.
		a.log.Debug("not ready", "reason", "starting", "request_id", requestID(r.Context()))
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready\n"))
		return
	}
	if err := a.backend.Ping(r.Context()); err != nil {
		// Anyone can ask through the balancer, so the body says only
		// "not ready"; the reason is for the operator.
		a.log.Warn("not ready", "reason", "redis unavailable", "request_id", requestID(r.Context()), "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready\n"))
		return
	}
	a.wasReady.Store(true)
	_, _ = w.Write([]byte("ready\n"))
}

// started reports whether Config.Started is closed (or unset).
func (a *App) started() bool {
	if a.cfg.Started == nil {
		return true
	}
	select {
	case <-a.cfg.Started:
		return true
	default:
		return false
	}
}

// redirectTo answers with a permanent redirect that keeps the method (308),
// so a form posted to /login still arrives as a POST at /login/.
func redirectTo(path string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		target := path
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery // keep ?next=
		}
		http.Redirect(w, r, target, http.StatusPermanentRedirect) //nolint:gosec // G710: path is a constant of routes.go; only the query is the client's
	}
}

// seeOther sends a guessed path to the page people meant (303, not
// cached, so the guess can become a page of its own later).
func seeOther(path string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, path, http.StatusSeeOther)
	}
}

// notFound answers unknown paths with the site's own page.
func (a *App) notFound(w http.ResponseWriter, r *http.Request) {
	a.errorPage(w, r, http.StatusNotFound, errNotFound)
}

// setRetryAfter tells a throttled client how long to wait, in whole
// seconds rounded up.
func setRetryAfter(w http.ResponseWriter, throttled *auth.ThrottledError) {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(throttled)))
}

func retryAfterSeconds(throttled *auth.ThrottledError) int {
	return int(math.Ceil(throttled.RetryAfter.Seconds()))
}

// pause is what a throttled page says instead of its error (the "paused"
// template of layout.html): a locked-out owner typing the right password
// must not read "invalid username or password" and retype it for the
// whole window.
type pause struct {
	// Minutes is Retry-After in minutes rounded up; 0 when under a minute.
	Minutes int
	// Login adds that a device signed in on before can usually still sign
	// in (its device cookie escapes the account's lockout): said on the
	// sign-in steps, not to a user already signed in here.
	Login bool
}

// pauseOf is err's pause, nil when err is not a throttled answer.
func pauseOf(err error, login bool) *pause {
	var throttled *auth.ThrottledError
	if !errors.As(err, &throttled) {
		return nil
	}
	p := &pause{Login: login}
	if s := retryAfterSeconds(throttled); s >= 60 {
		p.Minutes = (s + 59) / 60
	}
	return p
}

// currentUser is the logged-in user's name, or "" when not logged in.
func (a *App) currentUser(ctx context.Context) string {
	return a.sessions.User(ctx)
}
