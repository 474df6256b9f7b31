package session

import (
	"context"
	"slices"
	"time"
)

// Authentication methods, as RFC 8176 names them: what a session's AMR
// lists and what the forward-auth answer tells apps.
const (
	// MethodPassword is a password.
	MethodPassword = "pwd"
	// MethodOTP is a one-time code: an authenticator app's or a recovery
	// code.
	MethodOTP = "otp"
	// MethodHardwareKey is a proof of possession of a hardware-protected
	// key (a passkey on a security key or platform authenticator).
	MethodHardwareKey = "hwk"
	// MethodSoftwareKey is a proof of possession of a software key (a
	// synced passkey).
	MethodSoftwareKey = "swk"
	// MethodUser is user verification by the authenticator (PIN or
	// biometric), which makes a key a second factor of its own.
	MethodUser = "user"
)

// TwoFactor reports whether methods prove two independent factors:
// something the user has (a code of their authenticator, a key) together
// with something they know or are (a password, a verified PIN or
// biometric).
func TwoFactor(methods []string) bool {
	have := slices.Contains(methods, MethodOTP) || slices.Contains(methods, MethodHardwareKey) || slices.Contains(methods, MethodSoftwareKey)
	knowOrAre := slices.Contains(methods, MethodPassword) || slices.Contains(methods, MethodUser)
	return have && knowOrAre
}

// TwoFactor reports whether the session was authenticated with two
// factors.
func (r Record) TwoFactor() bool { return TwoFactor(r.AMR) }

// Need is what a route asks of the session before it serves a request.
type Need struct {
	// TwoFactor asks for a session authenticated with two factors (an app
	// in AUTH_TWO_FACTOR_HOSTS).
	TwoFactor bool
	// MaxAge asks for a full authentication at most this long ago
	// (REAUTH_MAX_AGE before a sensitive action); 0 asks nothing.
	MaxAge time.Duration
	// Enrolling marks the pages where a user sets up a second factor:
	// the REQUIRE_TWO_FACTOR policy does not apply to them, or no one
	// could ever comply.
	Enrolling bool
}

// Verdict is the answer to "is this request authenticated enough".
type Verdict int

const (
	// Allowed: the session meets the need.
	Allowed Verdict = iota
	// NotLoggedIn: no live session.
	NotLoggedIn
	// NeedsSecondFactor: a one-factor session where two are needed (the
	// route's, or REQUIRE_TWO_FACTOR).
	NeedsSecondFactor
	// NeedsReauth: the last full authentication is older than the
	// route's MaxAge.
	NeedsReauth
)

// String names the verdict for logs and tests.
func (v Verdict) String() string {
	switch v {
	case Allowed:
		return "allowed"
	case NotLoggedIn:
		return "not logged in"
	case NeedsSecondFactor:
		return "needs a second factor"
	case NeedsReauth:
		return "needs re-authentication"
	}
	return "unknown"
}

// Check is the one answer to "is this request authenticated enough", for
// pages, the API and forward auth alike: the request's session and
// whether it meets need under the service's policy (RequireTwoFactor).
func (m *Manager) Check(ctx context.Context, need Need) (Record, Verdict) {
	cur, ok := m.Current(ctx)
	if !ok {
		return Record{}, NotLoggedIn
	}
	return cur, m.judge(cur, need, time.Now())
}

func (m *Manager) judge(cur Record, need Need, now time.Time) Verdict {
	if (need.TwoFactor || m.cfg.RequireTwoFactor && !need.Enrolling) && !cur.TwoFactor() {
		return NeedsSecondFactor
	}
	if need.MaxAge > 0 && now.Sub(cur.AuthTime) > need.MaxAge {
		return NeedsReauth
	}
	return Allowed
}
