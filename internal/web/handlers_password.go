package web

import (
	"errors"
	"net/http"
	"time"

	"loginsvc/internal/auth"
	"loginsvc/internal/session"
)

type passwordPage struct {
	// Error is the catalog key of the form's error, "" for none; ErrorKind
	// is its stable marker (data-error).
	Error, ErrorKind string
	// MinChars and MaxBytes are the rules a new password must follow.
	MinChars, MaxBytes int
}

// The password form's errors, by marker.
var passwordErrors = map[string]string{
	// current: wrong or throttled, one message like a refused login.
	"current":  msg("password.error.current"),
	"weak":     msg("password.error.weak"),
	"mismatch": msg("password.error.mismatch"),
}

func newPasswordPage(errorKind string) passwordPage {
	return passwordPage{
		Error: passwordErrors[errorKind], ErrorKind: errorKind,
		MinChars: auth.MinPasswordChars, MaxBytes: auth.MaxPasswordBytes,
	}
}

// passwordForm serves GET /password/.
func (a *App) passwordForm(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, "password.html", newPasswordPage(""))
}

// changePassword serves POST /password/ (current_password, new_password,
// confirm_password). The current password is checked like a login: the
// same throttle, one message whether it was wrong or throttled. On success
// every other session of the user ends, this one continues under a new
// token (the one used with the old password is worthless), and the
// redirect's flash says how many sessions were signed out.
func (a *App) changePassword(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	ctx := r.Context()
	user := a.currentUser(ctx)
	next := r.PostForm.Get("new_password")
	if next != r.PostForm.Get("confirm_password") {
		// Checked first: a typo costs no attempt at the current password.
		a.render(w, r, http.StatusBadRequest, "password.html", newPasswordPage("mismatch"))
		return
	}

	who, err := a.auth.ChangePassword(ctx, auth.Attempt{
		Username:      user,
		Password:      r.PostForm.Get("current_password"),
		IP:            a.clientIP(r),
		DeviceCookies: a.deviceCookies(r),
	}, next)
	var throttled *auth.ThrottledError
	switch {
	case errors.Is(err, auth.ErrWeakPassword):
		a.render(w, r, http.StatusBadRequest, "password.html", newPasswordPage("weak"))
		return
	case errors.Is(err, auth.ErrInvalidCredentials):
		a.log.Info("password change refused: wrong current password", "user", user, "request_id", requestID(ctx), "client", a.clientIP(r).String())
		a.render(w, r, http.StatusBadRequest, "password.html", newPasswordPage("current"))
		return
	case errors.As(err, &throttled):
		a.log.Warn("password change throttled", "limit", throttled.Limit, "user", throttled.User, "retry_after", throttled.RetryAfter.Round(time.Second).String(),
			"request_id", requestID(ctx), "client", a.clientIP(r).String())
		setRetryAfter(w, throttled)
		a.render(w, r, http.StatusTooManyRequests, "password.html", newPasswordPage("current"))
		return
	case err != nil:
		a.serverError(w, r, err)
		return
	}

	cur, _ := a.sessions.Current(ctx)
	ended, err := a.sessions.RevokeAll(ctx, who.Name, cur.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	err = a.sessions.Renew(ctx, who.Stamp)
	if errors.Is(err, session.ErrLoginRaced) {
		// Another change of the password won the race: this session
		// proved the one that just stopped being current.
		if err := a.sessions.End(ctx); err != nil {
			a.serverError(w, r, err)
			return
		}
		http.Redirect(w, r, "/login/?next=%2Fpassword%2F", http.StatusSeeOther)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.log.Info("password changed", "user", who.Name, "sessions_ended", ended, "request_id", requestID(ctx))
	a.setFlash(w, newFlash("password_changed", ended))
	http.Redirect(w, r, "/password/", http.StatusSeeOther)
}
