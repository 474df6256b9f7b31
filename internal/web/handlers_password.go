package web

import (
	"errors"
	"net/http"
	"time"

	"loginsvc/internal/activity"
	"loginsvc/internal/auth"
	"loginsvc/internal/session"
)

type passwordPage struct {
	// Error is the catalog key of the form's error, "" for none; ErrorKind
	// is its stable marker (data-error).
	Error, ErrorKind string
	// Pause, when the current password's check is throttled, replaces
	// Error's text.
	Pause *pause
	// MinChars and MaxBytes are the rules a new password must follow.
	MinChars, MaxBytes int
	// Changed shows the success state instead of the form: the page a
	// successful change redirects to, with its flash. A form under "your
	// password has been changed" reads as an invitation to change it
	// again.
	Changed bool
}

// The password form's errors, by marker.
var passwordErrors = map[string]string{
	// current: wrong, or throttled (then the page shows its pause).
	"current":  msg("password.error.current"),
	"weak":     msg("password.error.weak"),
	"mismatch": msg("password.error.mismatch"),
	"same":     msg("password.error.same"),
	// elsewhere: another write of the password (the operator's reset,
	// another change) won; this session has been ended.
	"elsewhere": msg("password.error.elsewhere"),
}

func newPasswordPage(errorKind string) passwordPage {
	return passwordPage{
		Error: passwordErrors[errorKind], ErrorKind: errorKind,
		MinChars: auth.MinPasswordChars, MaxBytes: auth.MaxPasswordBytes,
	}
}

// passwordForm serves GET /password/: the form, or, right after a
// successful change (its flash), the success state without the form. A
// later visit (the flash is shown once) gets the form again.
func (a *App) passwordForm(w http.ResponseWriter, r *http.Request) {
	f := a.takeFlash(w, r)
	p := newPasswordPage("")
	p.Changed = f != nil && f.Kind == "password_changed"
	a.renderView(w, r, http.StatusOK, "password.html", p, f)
}

// changePassword serves POST /password/ (current_password, new_password,
// confirm_password). The current password is checked like a login, under
// the same throttle; a throttled check says for about how long. On success
// every other session of the user ends, this one continues under a new
// token (the one used with the old password is worthless), and the
// redirect's flash says how many sessions were signed out.
//
// When the password changed elsewhere during the change (the operator's
// reset, or another change: auth.ErrPasswordChangedElsewhere, or the
// stamp gone stale before Renew), the other write stands, this session
// ends (it proved a password that is no longer current, and the other
// writer is ending it anyway) and the form answers 409 Conflict with a
// message to sign in with the new password: never success.
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
	case errors.Is(err, auth.ErrSamePassword):
		a.render(w, r, http.StatusBadRequest, "password.html", newPasswordPage("same"))
		return
	case errors.Is(err, auth.ErrPasswordChangedElsewhere):
		a.changedElsewhere(w, r, user)
		return
	case errors.Is(err, auth.ErrInvalidCredentials):
		a.log.Info("password change refused: wrong current password", "user", user, "request_id", requestID(ctx), "client", a.clientIP(r).String())
		a.render(w, r, http.StatusBadRequest, "password.html", newPasswordPage("current"))
		return
	case errors.As(err, &throttled):
		a.log.Warn("password change throttled", "limit", throttled.Limit, "user", throttled.User, "retry_after", throttled.RetryAfter.Round(time.Second).String(),
			"request_id", requestID(ctx), "client", a.clientIP(r).String())
		setRetryAfter(w, throttled)
		p := newPasswordPage("current")
		p.Pause = pauseOf(err, false)
		a.render(w, r, http.StatusTooManyRequests, "password.html", p)
		return
	case err != nil:
		a.serverError(w, r, err)
		return
	}

	cur, _ := a.sessions.Current(ctx)
	ended, err := a.sessions.RevokeAll(activity.Because(ctx, activity.ByPasswordChange), who.Name, cur.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	err = a.sessions.Renew(ctx, who.Stamp)
	if errors.Is(err, session.ErrLoginRaced) {
		// Another write of the password came right after this one: it
		// is the one that counts, as if it had come first.
		a.changedElsewhere(w, r, who.Name)
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

// changedElsewhere answers a password change that lost to another write of
// the password: it ends this session, whose stamp is no longer the
// current hash, and says so with 409 Conflict instead of success.
func (a *App) changedElsewhere(w http.ResponseWriter, r *http.Request, user string) {
	ctx := r.Context()
	a.log.Warn("password change refused: the password changed elsewhere meanwhile", "user", user, "request_id", requestID(ctx), "client", a.clientIP(r).String())
	if err := a.sessions.End(ctx); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.render(w, r, http.StatusConflict, "password.html", newPasswordPage("elsewhere"))
}
