package web

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"loginsvc/internal/activity"
	"loginsvc/internal/store"
)

// A flash is a one-time message for the page a redirect lands on ("You
// have been logged out", "3 other sessions signed out"). It travels in a
// short-lived cookie rather than in the session, so a visitor who is not
// logged in (just logged out, say) costs no session write.
type flash struct {
	// Kind is the stable marker tests and styles use (data-flash).
	Kind string
	// Message is the catalog key; Counted messages are plural.
	Message string
	Counted bool
	// Count is the number a counted message reports.
	Count int
}

// flashCookie names the flash cookie; flashMaxAge is how long it waits to
// be shown: one redirect takes well under a second, and a flash that
// turns up on some later visit would be confusing.
const (
	flashCookie = "flash"
	flashMaxAge = 60 * time.Second
	// maxFlashCount bounds a count read back from the cookie.
	maxFlashCount = 1_000_000
)

// The flashes. A cookie whose value is not one of these (kind, or
// kind.N for a counted one) is ignored.
var flashKinds = map[string]flash{
	"logged_out":        {Message: msg("flash.logged_out")},
	"session_revoked":   {Message: msg("flash.session_revoked")},
	"session_not_found": {Message: msg("flash.session_not_found")},
	"others_revoked":    {Message: pluralMsg("flash.others_revoked"), Counted: true},
	"password_changed":  {Message: pluralMsg("flash.password_changed"), Counted: true},
	"login_expired":     {Message: msg("flash.login_expired")},
	"recovery_used":     {Message: pluralMsg("flash.recovery_used"), Counted: true},
	"totp_removed":      {Message: pluralMsg("flash.totp_removed"), Counted: true},
	"passkey_added":     {Message: pluralMsg("flash.passkey_added"), Counted: true},
	"passkey_removed":   {Message: pluralMsg("flash.passkey_removed"), Counted: true},
	"passkey_failed":    {Message: msg("flash.passkey_failed")},
}

// newFlash is the flash kind (with n, for a counted kind). It panics on
// an unknown kind: that is a typo in this package.
func newFlash(kind string, n int) *flash {
	f, ok := flashKinds[kind]
	if !ok {
		panic("web: unknown flash kind " + kind)
	}
	f.Kind = kind
	if f.Counted {
		f.Count = min(max(n, 0), maxFlashCount)
	}
	return &f
}

// value is the cookie value of f.
func (f *flash) value() string {
	if f.Counted {
		return f.Kind + "." + strconv.Itoa(f.Count)
	}
	return f.Kind
}

// parseFlash reads a flash cookie value; anything but a known kind (with
// a plain decimal count exactly when the kind is counted) is nil.
func parseFlash(v string) *flash {
	kind, count, hasCount := strings.Cut(v, ".")
	f, ok := flashKinds[kind]
	if !ok || f.Counted != hasCount {
		return nil
	}
	n := 0
	if hasCount {
		var err error
		n, err = strconv.Atoi(count)
		if err != nil || n < 0 || n > maxFlashCount || strconv.Itoa(n) != count {
			return nil
		}
	}
	return newFlash(kind, n)
}

// setFlash makes f the message of the next page this browser sees.
func (a *App) setFlash(w http.ResponseWriter, f *flash) {
	http.SetCookie(w, a.flashCookie(f.value(), int(flashMaxAge.Seconds())))
}

// takeFlash returns the request's flash, if it has a valid one, and clears
// the cookie either way, so a flash is shown once.
func (a *App) takeFlash(w http.ResponseWriter, r *http.Request) *flash {
	var f *flash
	found := false
	for _, c := range r.CookiesNamed(flashCookie) {
		found = true
		if f == nil {
			f = parseFlash(c.Value)
		}
	}
	if found {
		http.SetCookie(w, a.flashCookie("", -1))
	}
	return f
}

func (a *App) flashCookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: flashCookie, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: a.cfg.CookieSecure, SameSite: http.SameSiteLaxMode,
	}
}

// endedMessages say why a browser's session was ended by someone else
// (session.Manager.EndedElsewhere), by reason. A reason not listed (one
// added later) gets the plain "from another device".
var endedMessages = map[string]string{
	activity.ByUser:           msg("flash.ended.user"),
	activity.ByPasswordChange: msg("flash.ended.password_change"),
	activity.ByFactorChange:   msg("flash.ended.factor_change"),
	activity.ByOperator:       msg("flash.ended.operator"),
	activity.ByUserDeleted:    msg("flash.ended.operator"),
	store.EndedByCap:          msg("flash.ended.cap"),
}

// endedFlash is the message for a browser whose session someone else
// ended (another device, an administrator, a password change), for the
// page it lands on next: nil when its session ended here or on its own.
// It is said once. A Redis failure only loses the message: the page
// itself does not need it.
func (a *App) endedFlash(r *http.Request) *flash {
	why, err := a.sessions.EndedElsewhere(r.Context())
	if err != nil {
		a.log.Warn("could not read why a session ended", "err", err, "request_id", requestID(r.Context()))
		return nil
	}
	if why == "" {
		return nil
	}
	m, ok := endedMessages[why]
	if !ok {
		m = endedMessages[activity.ByUser]
	}
	return &flash{Kind: "ended_elsewhere", Message: m}
}
