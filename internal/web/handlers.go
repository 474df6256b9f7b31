package web

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"loginsvc/internal/auth"
	"loginsvc/internal/session"
)

type indexPage struct {
	Username string
}

// index serves GET /: "hello NAME" with a log-out button, or "hello" with a
// link to the login form.
func (a *App) index(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, "index.html", indexPage{Username: a.currentUser(r.Context())})
}

type loginForm struct {
	Username string
	Remember bool
}

type loginPage struct {
	Form  loginForm
	Error string
	Next  string
}

// loginForm serves GET /login/.
func (a *App) loginForm(w http.ResponseWriter, r *http.Request) {
	next := r.URL.Query().Get("next")
	if safeNext(next) == "/" {
		next = ""
	}
	a.render(w, r, http.StatusOK, "login.html", loginPage{Next: next})
}

// invalidLogin is the one message for every refused login: it never says
// which part was wrong.
const invalidLogin = "invalid username or password"

// login serves POST /login/. On success it starts a session (a new token,
// so a token planted before login is worthless) and redirects with 303.
func (a *App) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			a.errorPage(w, http.StatusRequestEntityTooLarge, "Request too large", "The form was larger than this service accepts.")
			return
		}
		a.badRequest(w)
		return
	}
	form := loginForm{Username: r.PostForm.Get("username"), Remember: r.PostForm.Get("remember") != ""}
	next := r.PostForm.Get("next")

	ctx := r.Context()
	who, err := a.auth.Login(ctx, form.Username, r.PostForm.Get("password"), a.clientIP(r))
	if err == nil {
		err = a.sessions.Start(ctx, session.Login{
			User:      who.Name,
			Stamp:     who.Stamp,
			IP:        a.clientIP(r).String(),
			UserAgent: r.UserAgent(),
			Remember:  form.Remember,
		})
		if errors.Is(err, session.ErrLoginRaced) {
			// Deleted or given a new password while this login ran: the
			// password it proved is no longer the account's.
			err = auth.ErrInvalidCredentials
		}
	}
	var throttled *auth.ThrottledError
	switch {
	case errors.Is(err, auth.ErrInvalidCredentials):
		a.log.Info("login failed", "request_id", requestID(r.Context()), "client", a.clientIP(r).String())
		a.render(w, r, http.StatusBadRequest, "login.html", loginPage{Form: form, Error: invalidLogin, Next: next})
		return
	case errors.As(err, &throttled):
		// Same page and message as a wrong password: the status and
		// Retry-After tell a well-behaved client to wait, the body tells an
		// attacker nothing about the account.
		a.log.Warn("login throttled", "limit", throttled.Limit, "user", throttled.User, "retry_after", throttled.RetryAfter.Round(time.Second).String(),
			"request_id", requestID(r.Context()), "client", a.clientIP(r).String())
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(throttled.RetryAfter.Seconds()))))
		a.render(w, r, http.StatusTooManyRequests, "login.html", loginPage{Form: form, Error: invalidLogin, Next: next})
		return
	case err != nil:
		a.serverError(w, r, err)
		return
	}
	a.log.Info("login", "user", who.Name, "request_id", requestID(ctx), "client", a.clientIP(r).String())
	http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
}

// logoutPage serves GET /logout/: a page with the log-out button. A GET
// never logs out, so a link or prefetch cannot end a session.
func (a *App) logoutPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, "logout.html", indexPage{Username: a.currentUser(r.Context())})
}

// logout serves POST /logout/: it deletes the session in Redis, so the old
// cookie is worthless on every replica, clears the cookie and redirects.
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
	w.Header().Set("Clear-Site-Data", `"cookies"`)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// healthz serves GET /healthz: the process is alive. It never touches
// Redis, so a Redis outage cannot make an orchestrator restart every
// replica at once.
func (a *App) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz serves GET /readyz: 200 while this replica can serve logins (Redis
// answers and shutdown has not begun), else 503.
func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if a.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("shutting down\n"))
		return
	}
	if err := a.backend.Ping(r.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("redis unavailable\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// redirectTo answers with a permanent redirect that keeps the method (308),
// so a form posted to /login still arrives as a POST at /login/.
func redirectTo(path string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		target := path
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery // keep ?next=
		}
		http.Redirect(w, r, target, http.StatusPermanentRedirect)
	}
}

// notFound answers unknown paths with the site's own page.
func (a *App) notFound(w http.ResponseWriter, _ *http.Request) {
	a.errorPage(w, http.StatusNotFound, "Not found", "There is no page at this address.")
}

// currentUser is the logged-in user's name, or "" when not logged in.
func (a *App) currentUser(ctx context.Context) string {
	return a.sessions.User(ctx)
}
