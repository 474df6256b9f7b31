package web

import (
	"cmp"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"loginsvc/internal/activity"
	"loginsvc/internal/auth"
	"loginsvc/internal/session"
)

// The security page and the second factors' own pages: the authenticator
// app's enrolment and removal, and the recovery codes. Every change of a
// factor needs a recent authentication (routes.go) and ends the user's
// other sessions (auth.Service).

// securityPage is what /security/ shows.
type securityPage struct {
	auth.Factors
	// Recent says the last full sign-in is recent enough to change a
	// factor right away; otherwise the page links to /reauth/ first.
	Recent bool
	// PasskeysHere says this address can run passkey ceremonies, and
	// DeviceName is the default name of a new passkey.
	PasskeysHere bool
	DeviceName   string
	// RecoveryLow warns that few recovery codes are left.
	RecoveryLow bool
	// TwoFactor tells whether this session stands on two factors.
	TwoFactor bool
	// Required is REQUIRE_TWO_FACTOR for a user without a second factor.
	Required bool
	// Activity is the user's security events of the last 30 days,
	// newest first.
	Activity []activityRow
}

// activityRow is one security event on the security page.
type activityRow struct {
	activity.Event
	// Message is the catalog key of what happened; Detail of how or by
	// whom, "" for none.
	Message, Detail string
	// NewDevice marks a sign-in from a device the account had not used.
	NewDevice bool
	// Current marks an event of this very session.
	Current bool
	// Count is the event's count (sessions ended, codes left), shown by
	// a Plural message.
	Count  int
	Plural bool
}

// activityMessages are the catalog keys of the events a user sees.
var activityMessages = map[string]string{
	activity.SignIn:                   msg("activity.sign_in"),
	activity.APITokenCreated:          msg("activity.api_token_created"),
	activity.SecondStepFailed:         msg("activity.second_step_failed"),
	activity.LockoutStarted:           msg("activity.lockout_started"),
	activity.LockoutLifted:            msg("activity.lockout_lifted"),
	activity.SignOut:                  msg("activity.sign_out"),
	activity.SessionRevoked:           pluralMsg("activity.session_revoked"),
	activity.PasswordChanged:          msg("activity.password_changed"),
	activity.FactorAdded:              msg("activity.factor_added"),
	activity.FactorRemoved:            msg("activity.factor_removed"),
	activity.FactorsReset:             msg("activity.factors_reset"),
	activity.RecoveryCodeUsed:         pluralMsg("activity.recovery_code_used"),
	activity.RecoveryCodesRegenerated: msg("activity.recovery_codes_regenerated"),
	activity.Reauthenticated:          msg("activity.reauthenticated"),
	activity.UserCreated:              msg("activity.user_created"),
}

// activityDetails are the catalog keys of an event's method or cause.
var activityDetails = map[string]string{
	"password":                        msg("activity.method.password"),
	"password+totp":                   msg("activity.method.password_totp"),
	"password+recovery":               msg("activity.method.password_recovery"),
	"password+passkey":                msg("activity.method.password_passkey"),
	"passkey":                         msg("activity.method.passkey"),
	"totp":                            msg("activity.method.totp"),
	"recovery":                        msg("activity.method.recovery"),
	"code":                            msg("activity.method.code"),
	"by:" + activity.ByUser:           msg("activity.by.user"),
	"by:" + activity.ByOperator:       msg("activity.by.operator"),
	"by:" + activity.ByCap:            msg("activity.by.cap"),
	"by:" + activity.ByPasswordChange: msg("activity.by.password_change"),
	"by:" + activity.ByFactorChange:   msg("activity.by.factor_change"),
}

func activityRows(events []activity.Event, current string) []activityRow {
	rows := make([]activityRow, 0, len(events))
	for _, e := range events {
		m, ok := activityMessages[e.Kind]
		if !ok {
			continue
		}
		row := activityRow{Event: e, Message: m, NewDevice: e.Fields["new_device"] == "true", Current: e.Session != "" && e.Session == current}
		if d, ok := activityDetails[e.Fields["method"]]; ok {
			row.Detail = d
		} else if d, ok := activityDetails["by:"+e.Fields["by"]]; ok {
			row.Detail = d
		}
		row.Plural = e.Kind == activity.SessionRevoked || e.Kind == activity.RecoveryCodeUsed
		row.Count, _ = strconv.Atoi(cmp.Or(e.Fields["count"], e.Fields["left"]))
		rows = append(rows, row)
	}
	return rows
}

// securityPage serves GET /security/: the account's sign-in methods.
func (a *App) securityPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	cur, _ := a.sessions.Current(ctx)
	f, err := a.auth.FactorsOf(ctx, cur.User)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	_, recent := a.sessions.Check(ctx, session.Need{MaxAge: a.cfg.ReauthMaxAge, Enrolling: true})
	events, err := a.auth.RecentActivity(ctx, cur.User)
	if err != nil {
		// The page is still worth showing without its history.
		a.log.Warn("security activity not shown", "user", cur.User, "request_id", requestID(ctx), "err", err)
	}
	deviceName, err := a.templates.locales.forRequest(r).device(a.sessions.Device(cur))
	if err != nil {
		deviceName = ""
	}
	a.render(w, r, http.StatusOK, "security.html", securityPage{
		Factors: f, RecoveryLow: f.RecoveryLow(), TwoFactor: cur.TwoFactor(),
		Required: a.sessions.RequireTwoFactor() && !f.SecondFactor(),
		Recent:   recent == session.Allowed, PasskeysHere: a.passkeysHere(r), DeviceName: deviceName,
		Activity: activityRows(events, cur.ID),
	})
}

// totpPage is the authenticator app's enrolment page.
type totpPage struct {
	auth.TOTPEnrolment
	// Link is the otpauth: URI as a link for a phone's authenticator app:
	// a scheme html/template would otherwise blank out as unsafe.
	Link template.URL
	// Error is the catalog key of the form's error, "" for none.
	Error string
	// Next is where to continue after the recovery codes.
	Next string
	// Required says REQUIRE_TWO_FACTOR sent the user here.
	Required bool
}

// totpForm serves GET /security/totp/: a QR code (served by totpQR), the
// secret to type in, the otpauth link for a phone, and the field for the
// first code. A user who has the app already is sent to /security/.
func (a *App) totpForm(w http.ResponseWriter, r *http.Request) {
	a.showTOTP(w, r, http.StatusOK, "")
}

func (a *App) showTOTP(w http.ResponseWriter, r *http.Request, status int, errKey string) {
	ctx := r.Context()
	user := a.currentUser(ctx)
	e, err := a.auth.BeginTOTP(ctx, user)
	if errors.Is(err, auth.ErrAlreadyEnrolled) {
		http.Redirect(w, r, "/security/", http.StatusSeeOther)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	next := r.URL.Query().Get("next")
	if r.Method == http.MethodPost {
		next = r.PostForm.Get("next")
	}
	a.render(w, r, status, "totp.html", totpPage{
		TOTPEnrolment: e, Link: template.URL(e.URI), //nolint:gosec // G203: built by auth.TOTPURI, scheme otpauth:, no user input
		Error: errKey, Next: a.nextOf(r, next),
		Required: a.sessions.RequireTwoFactor(),
	})
}

// qrSize is the QR code's side in pixels: sharp on a phone-sized screen
// and easy for a camera across a desk.
const qrSize = 240

// totpQR serves GET /security/totp/qr.png: the QR code of the secret
// waiting for confirmation, as an image of this site, so the strict CSP
// (img-src 'self', no data: URLs) holds. Never cached: it is a secret.
func (a *App) totpQR(w http.ResponseWriter, r *http.Request) {
	png, err := a.auth.TOTPQRCode(r.Context(), a.currentUser(r.Context()), qrSize)
	if errors.Is(err, auth.ErrNoPendingEnrolment) {
		a.notFound(w, r)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	_, _ = w.Write(png)
}

// codesPage shows recovery codes, once.
type codesPage struct {
	Codes []string
	// Enabled says the authenticator app was just enabled; Passkey that a
	// first passkey was just added.
	Enabled, Passkey bool
	// Ended is how many other sessions the change ended.
	Ended int
	// Next is where "Continue" goes.
	Next string
}

// confirmTOTP serves POST /security/totp/ (code, next): the first code of
// the app enables it; the page then shows the recovery codes, once.
func (a *App) confirmTOTP(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	ctx := r.Context()
	user := a.currentUser(ctx)
	out, err := a.auth.ConfirmTOTP(ctx, a.loginRequest(r, "", "", r.PostForm.Get("code")))
	if errors.Is(err, auth.ErrNoPendingEnrolment) {
		// Expired while the user looked for their phone: a new secret.
		a.showTOTP(w, r, http.StatusBadRequest, msgTOTPExpired)
		return
	}
	if err != nil {
		a.refuse(w, r, stepEnrol, err, func(status int) { a.showTOTP(w, r, status, msgInvalidCode) })
		return
	}
	a.cfg.Observer.SecondStep(auth.SecondStepTOTP, SecondStepSuccess)
	a.log.Info("second factor added", "user", user, "method", auth.SecondStepTOTP, "sessions_ended", out.Ended, "request_id", requestID(ctx))
	a.render(w, r, http.StatusOK, "codes.html", codesPage{Codes: out.RecoveryCodes, Enabled: true, Ended: out.Ended, Next: a.nextOf(r, r.PostForm.Get("next"))})
}

// removeTOTP serves POST /security/totp/remove: the authenticator app
// and the recovery codes go, the user's other sessions end.
func (a *App) removeTOTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	user := a.currentUser(ctx)
	ended, err := a.auth.RemoveTOTP(ctx)
	if errors.Is(err, auth.ErrNotEnrolled) {
		http.Redirect(w, r, "/security/", http.StatusSeeOther)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.log.Info("second factor removed", "user", user, "method", auth.SecondStepTOTP, "sessions_ended", ended, "request_id", requestID(ctx))
	a.setFlash(w, newFlash("totp_removed", ended))
	http.Redirect(w, r, "/security/", http.StatusSeeOther)
}

// regenerateRecovery serves POST /security/recovery/: new recovery codes,
// shown once; the old ones stop working.
func (a *App) regenerateRecovery(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	codes, err := a.auth.RegenerateRecoveryCodes(ctx)
	if errors.Is(err, auth.ErrNotEnrolled) {
		http.Redirect(w, r, "/security/", http.StatusSeeOther)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.log.Info("recovery codes regenerated", "user", a.currentUser(ctx), "request_id", requestID(ctx))
	a.render(w, r, http.StatusOK, "codes.html", codesPage{Codes: codes})
}

// appHost is the host of an absolute return target, for "to continue to
// app.example.com"; "" for a path on this site or r's own host.
func appHost(r *http.Request, next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Host == "" || strings.EqualFold(u.Host, r.Host) {
		return ""
	}
	return u.Hostname()
}

func joinMethods(methods []string) string { return strings.Join(methods, " ") }
