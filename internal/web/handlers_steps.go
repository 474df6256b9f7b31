package web

import (
	"errors"
	"net/http"
	"time"

	"loginsvc/internal/auth"
)

// The steps after a password: the second step of a login (/login/code/),
// the step-up of a one-factor session to two (/login/step-up/) and the
// re-authentication before a sensitive action (/reauth/). Each calls the
// one login owner, auth.Service, and refuses through the one refuse.

// pendingCookieBase names the cookie that holds a pending two-step login:
// a random token whose hash names the pending state in Redis. It is not a
// session: pages, the API and forward auth never read it.
const pendingCookieBase = "login_pending"

func (a *App) pendingCookieName() string {
	if a.cfg.CookieSecure {
		return "__Host-" + pendingCookieBase
	}
	return pendingCookieBase
}

func (a *App) setPendingCookie(w http.ResponseWriter, token string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: a.pendingCookieName(), Value: token, Path: "/", Expires: expires,
		MaxAge: int(time.Until(expires).Seconds()), HttpOnly: true, Secure: a.cfg.CookieSecure, SameSite: http.SameSiteLaxMode,
	})
}

func (a *App) clearPendingCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: a.pendingCookieName(), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: a.cfg.CookieSecure, SameSite: http.SameSiteLaxMode,
	})
}

func (a *App) pendingToken(r *http.Request) string {
	if c, err := r.Cookie(a.pendingCookieName()); err == nil && auth.ValidPendingToken(c.Value) {
		return c.Value
	}
	return ""
}

// codePage is the second step's page (and the step-up's and the
// re-authentication's, which share its code field).
type codePage struct {
	// User is whom the step is for.
	User string
	// Error is the catalog key of the form's error, "" for none.
	Error string
	// Pause, when the answer is throttled, replaces Error's text.
	Pause *pause
	// Next is where a success goes.
	Next string
	// Recovery shows the recovery-code field instead of the app's code.
	Recovery bool
	// Action is the form's path.
	Action string
	// Enrolled is false on the step-up page of a user without a second
	// factor: it offers to set one up instead.
	Enrolled bool
	// Reauth marks the re-authentication page, which asks for the
	// password too.
	Reauth bool
	// App is the host of the protected app a step-up returns to, for "to
	// continue to app.example.com"; "" for this site.
	App string
	// TOTP says the user has an authenticator app (its code field is
	// shown); Passkey that they have a passkey this page can ask for.
	TOTP, Passkey bool
	// CeremonyURL is where the page's script fetches the passkey
	// ceremony's options.
	CeremonyURL string
}

var (
	msgInvalidCode    = msg("code.invalid")
	msgReauthInvalid  = msg("reauth.invalid")
	msgTOTPExpired    = msg("totp.expired")
	msgInvalidPasskey = msg("passkey.invalid")
)

// secondStepForm serves GET /login/code/: the code field of a login whose
// password was right. Without a pending login (expired, finished, or a
// bookmark) it sends the browser to the login form.
func (a *App) secondStepForm(w http.ResponseWriter, r *http.Request) {
	next := a.nextOf(r, r.URL.Query().Get("next"))
	user, err := a.auth.PendingUser(r.Context(), a.pendingToken(r))
	if errors.Is(err, auth.ErrPendingExpired) {
		a.clearPendingCookie(w)
		a.renderNotice(w, r, http.StatusOK, "login.html", loginPage{Next: next}, newFlash("login_expired", 0))
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	p := codePage{User: user, Next: next, Recovery: r.URL.Query().Get("recovery") == "1", Action: "/login/code/", Enrolled: true, CeremonyURL: "/login/code/passkey/options"}
	if !a.factorsOnPage(w, r, &p) {
		return
	}
	a.render(w, r, http.StatusOK, "code.html", p)
}

// factorsOnPage fills in which second factors p's user has, so the page
// offers the right ones; false when it has answered an error.
func (a *App) factorsOnPage(w http.ResponseWriter, r *http.Request, p *codePage) bool {
	var err error
	if p.TOTP, err = a.auth.HasTOTP(r.Context(), p.User); err != nil {
		a.serverError(w, r, err)
		return false
	}
	if p.Passkey, err = a.auth.HasPasskeys(r.Context(), p.User); err != nil {
		a.serverError(w, r, err)
		return false
	}
	p.Passkey = p.Passkey && a.passkeysHere(r)
	if !p.TOTP && !p.Recovery && !p.Passkey {
		// Passkeys only, on an address that cannot ask for them: the
		// recovery code is the way in.
		p.Recovery = true
	}
	return true
}

// secondStep serves POST /login/code/ (code, next): it finishes the
// pending login with an authenticator app's code or a recovery code.
func (a *App) secondStep(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	next := a.nextOf(r, r.PostForm.Get("next"))
	recovery := r.PostForm.Get("recovery") == "1"
	token := a.pendingToken(r)
	res, err := a.auth.SecondStep(r.Context(), token, a.passkeyRequest(r))
	if errors.Is(err, auth.ErrPendingExpired) {
		a.log.Info("second step refused: no pending login", "request_id", requestID(r.Context()), "client", a.clientIP(r).String())
		a.clearPendingCookie(w)
		a.renderNotice(w, r, http.StatusBadRequest, "login.html", loginPage{Next: next}, newFlash("login_expired", 0))
		return
	}
	if err != nil {
		a.refuse(w, r, stepCode, err, func(status int) {
			user, _ := a.auth.PendingUser(r.Context(), token)
			p := codePage{User: user, Error: stepError(r), Pause: pauseOf(err, true), Next: next, Recovery: recovery, Action: "/login/code/", Enrolled: true, CeremonyURL: "/login/code/passkey/options"}
			if a.factorsOnPage(w, r, &p) {
				a.render(w, r, status, "code.html", p)
			}
		})
		return
	}
	a.clearPendingCookie(w)
	a.loggedIn(w, r, stepCode, res, next)
}

// nextOf is a return target a login step may go back to: this site's
// paths and the allowed hosts (safeReturn), "" for "/".
func (a *App) nextOf(r *http.Request, next string) string {
	if n := a.safeReturn(r, next); n != "/" {
		return n
	}
	return ""
}

// stepUpForm serves GET /login/step-up/: a one-factor session asked for
// two (an app in AUTH_TWO_FACTOR_HOSTS, or REQUIRE_TWO_FACTOR) gives its
// second factor, or, without one, is offered to set one up.
func (a *App) stepUpForm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	next := a.nextOf(r, r.URL.Query().Get("next"))
	cur, _ := a.sessions.Current(ctx)
	if cur.TwoFactor() {
		http.Redirect(w, r, a.safeReturn(r, next), http.StatusSeeOther) //nolint:gosec // G710: safeReturn (redirect.go)
		return
	}
	enrolled, err := a.auth.HasSecondFactor(ctx, cur.User)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	p := codePage{
		User: cur.User, Next: next, Recovery: r.URL.Query().Get("recovery") == "1", Action: "/login/step-up/",
		Enrolled: enrolled, App: appHost(r, next), CeremonyURL: "/login/step-up/passkey/options",
	}
	if enrolled && !a.factorsOnPage(w, r, &p) {
		return
	}
	a.render(w, r, http.StatusOK, "code.html", p)
}

// stepError is the message of a refused step: the passkey's when the
// form carried a passkey's answer, else the code's.
func stepError(r *http.Request) string {
	if r.PostForm.Get("credential") != "" {
		return msgInvalidPasskey
	}
	return msgInvalidCode
}

// stepUp serves POST /login/step-up/ (code, next).
func (a *App) stepUp(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	next := a.nextOf(r, r.PostForm.Get("next"))
	recovery := r.PostForm.Get("recovery") == "1"
	res, err := a.auth.StepUp(r.Context(), a.passkeyRequest(r))
	if err != nil {
		a.refuse(w, r, stepUp, err, func(status int) {
			p := codePage{
				User: a.currentUser(r.Context()), Error: stepError(r), Pause: pauseOf(err, false), Next: next, Recovery: recovery,
				Action: "/login/step-up/", Enrolled: true, App: appHost(r, next), CeremonyURL: "/login/step-up/passkey/options",
			}
			if a.factorsOnPage(w, r, &p) {
				a.render(w, r, status, "code.html", p)
			}
		})
		return
	}
	a.elevated(w, r, stepUp, res, next)
}

// elevated ends a successful step-up or re-authentication: the log line,
// the metrics and the redirect back.
func (a *App) elevated(w http.ResponseWriter, r *http.Request, step string, res auth.LoginResult, next string) {
	if res.SecondMethod != "" {
		a.cfg.Observer.SecondStep(res.SecondMethod, SecondStepSuccess)
	}
	if res.SecondMethod == auth.SecondStepRecovery {
		a.setFlash(w, newFlash("recovery_used", res.RecoveryLeft))
	}
	a.log.Info("authenticated again", "step", step, "user", res.User, "methods", joinMethods(res.Methods), "second", res.SecondMethod,
		"request_id", requestID(r.Context()), "client", a.clientIP(r).String())
	http.Redirect(w, r, a.safeReturn(r, next), http.StatusSeeOther) //nolint:gosec // G710: safeReturn (redirect.go)
}

// reauthForm serves GET /reauth/: the password (and the second factor, if
// the user has one) again, before a sensitive action; next is that
// action's page.
func (a *App) reauthForm(w http.ResponseWriter, r *http.Request) {
	a.showReauth(w, r, http.StatusOK, "", nil, r.URL.Query().Get("recovery") == "1")
}

func (a *App) showReauth(w http.ResponseWriter, r *http.Request, status int, errKey string, paused *pause, recovery bool) {
	ctx := r.Context()
	cur, _ := a.sessions.Current(ctx)
	enrolled, err := a.auth.HasSecondFactor(ctx, cur.User)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	next := r.URL.Query().Get("next")
	if r.Method == http.MethodPost {
		next = r.PostForm.Get("next")
	}
	p := codePage{
		User: cur.User, Error: errKey, Pause: paused, Next: safeNext(next), Recovery: recovery, Action: "/reauth/",
		Enrolled: enrolled, Reauth: true, CeremonyURL: "/reauth/passkey/options",
	}
	if enrolled && !a.factorsOnPage(w, r, &p) {
		return
	}
	a.render(w, r, status, "reauth.html", p)
}

// reauth serves POST /reauth/ (password, code, next): a full
// authentication that renews this session's auth_time and token.
func (a *App) reauth(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	recovery := r.PostForm.Get("recovery") == "1"
	res, err := a.auth.Reauthenticate(r.Context(), a.passkeyRequest(r))
	if err != nil {
		a.refuse(w, r, stepReauth, err, func(status int) { a.showReauth(w, r, status, msgReauthInvalid, pauseOf(err, false), recovery) })
		return
	}
	a.elevated(w, r, stepReauth, res, safeNext(r.PostForm.Get("next")))
}
