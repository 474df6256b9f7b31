package auth

import (
	"context"
	"strconv"
	"strings"
	"time"

	"loginsvc/internal/activity"
	"loginsvc/internal/session"
)

// noticeLifetime is how long a notice waits for the user's next login.
const noticeLifetime = 30 * 24 * time.Hour

// record records a security event of user; nothing it does can fail the
// request (see activity.Log).
func (s *Service) record(ctx context.Context, user, kind string, fields map[string]string) {
	s.activity.Record(ctx, activity.Event{User: user, Kind: kind, Fields: fields})
}

// recordNotable records an event the user should hear of on their other
// devices: it leaves a one-time notice on every other live session of the
// user (except, the public id of the session that made the change; "" for
// none) and, unless it is a sign-in (whose new device needs no telling),
// one for the user's next login, for the devices this change signed out.
// Failing to leave a notice costs only the notice (the event is on the
// activity list all the same), so it is not reported.
func (s *Service) recordNotable(ctx context.Context, e activity.Event, except string) {
	s.activity.Record(ctx, e)
	if s.activity == nil || !activity.Notable(e) {
		return
	}
	_, _ = s.sessions.Notify(ctx, e.User, except, e.Kind)
	if e.Kind != activity.SignIn {
		_ = s.events.SetNotice(ctx, e.User, e.Kind, noticeLifetime)
	}
}

// noteSignIn records a completed sign-in of the session in ctx and hands
// it the notice waiting for the account, if any.
func (s *Service) noteSignIn(ctx context.Context, kind string, res LoginResult, knownDevice bool, sessionID string) {
	if sessionID == "" {
		cur, _ := s.sessions.Current(ctx)
		sessionID = cur.ID
	}
	method := signInMethod(res)
	e := activity.Event{
		User: res.User, Kind: kind, Session: sessionID,
		Fields: map[string]string{"method": method, "amr": strings.Join(res.Methods, " "), "new_device": strconv.FormatBool(!knownDevice)},
	}
	if kind == activity.APITokenCreated {
		s.activity.Record(ctx, e)
	} else {
		s.recordNotable(ctx, e, sessionID)
		if s.activity != nil {
			if notice, err := s.events.TakeNotice(ctx, res.User); err == nil && notice != "" {
				s.sessions.SetNotice(ctx, notice)
			}
		}
	}
	if res.SecondMethod == SecondStepRecovery {
		s.recordNotable(ctx, activity.Event{User: res.User, Kind: activity.RecoveryCodeUsed, Session: sessionID, Fields: map[string]string{"left": strconv.Itoa(res.RecoveryLeft)}}, sessionID)
	}
}

// signInMethod names how a sign-in went, for the activity list:
// "password", "password+totp", "password+recovery", "password+passkey"
// or "passkey".
func signInMethod(res LoginResult) string {
	first := "password"
	if len(res.Methods) > 0 && res.Methods[0] != session.MethodPassword {
		return SecondStepPasskey
	}
	if res.SecondMethod == "" {
		return first
	}
	return first + "+" + res.SecondMethod
}

// noteElevated records a re-authentication or step-up of user's session
// in ctx (and a recovery code it used).
func (s *Service) noteElevated(ctx context.Context, user, method string, methods []string, left int) {
	cur, _ := s.sessions.Current(ctx)
	s.activity.Record(ctx, activity.Event{User: user, Kind: activity.Reauthenticated, Session: cur.ID,
		Fields: map[string]string{"method": method, "amr": strings.Join(methods, " ")}})
	if method == SecondStepRecovery {
		s.recordNotable(ctx, activity.Event{User: user, Kind: activity.RecoveryCodeUsed, Session: cur.ID, Fields: map[string]string{"left": strconv.Itoa(left)}}, cur.ID)
	}
}

// noteFactorChange records a factor added or removed (or recovery codes
// regenerated) by the logged-in user of ctx, whose session is the one
// that made it.
func (s *Service) noteFactorChange(ctx context.Context, kind, method string) {
	cur, _ := s.sessions.Current(ctx)
	fields := map[string]string{}
	if method != "" {
		fields["method"] = method
	}
	s.recordNotable(ctx, activity.Event{User: cur.User, Kind: kind, Session: cur.ID, Fields: fields}, cur.ID)
}

// RecentActivity returns the user's security events of the last 30
// days, newest first (at most 50).
func (s *Service) RecentActivity(ctx context.Context, user string) ([]activity.Event, error) {
	if s.activity == nil {
		return nil, nil
	}
	return s.activity.Recent(ctx, user, time.Now().Add(-30*24*time.Hour), 50)
}
