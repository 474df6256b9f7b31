package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"loginsvc/internal/activity"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
)

// Second factors: an authenticator app (TOTP) and the recovery codes that
// stand in for it. Secrets are sealed (sealing.go) before they reach
// Redis, codes are hashed (recovery.go), and every accepted code is
// remembered so it works once.

// DefaultTOTPIssuer is the name an authenticator app shows above the
// codes when TOTP_ISSUER is not set.
const DefaultTOTPIssuer = "loginsvc"

// totpEnrolmentLifetime is how long a secret shown on the enrolment page
// waits for its confirming code.
const totpEnrolmentLifetime = 15 * time.Minute

// RecoveryLowWarning is the number of unused recovery codes at or below
// which the security page warns.
const RecoveryLowWarning = 2

// Methods of a second step, for logs, metrics and the CLI.
const (
	SecondStepTOTP     = "totp"
	SecondStepRecovery = "recovery"
)

// ErrNoPendingEnrolment means a confirmation arrived without a secret
// being shown first (or after it expired): the enrolment page starts
// over.
var ErrNoPendingEnrolment = errors.New("no authenticator app enrolment in progress")

// ErrAlreadyEnrolled means the user already has an authenticator app.
var ErrAlreadyEnrolled = errors.New("authenticator app already set up")

// ErrNotEnrolled means the user has no authenticator app to remove, or
// no second factor that recovery codes could stand in for.
var ErrNotEnrolled = errors.New("no second factor set up")

// ErrFactorUnreadable refuses a code because the user's authenticator
// secret was sealed under a key DEVICE_COOKIE_KEY no longer lists. The
// user can still sign in with a recovery code; an operator can reset the
// factor (server user mfa reset). Shown to the user as a wrong code.
var ErrFactorUnreadable = errors.New("authenticator secret sealed under a key no longer configured")

// Factors is what a user has set up besides the password.
type Factors struct {
	// Passkeys are the user's passkeys, newest first.
	Passkeys []Passkey
	// TOTP is set when an authenticator app is enabled, since TOTPAddedAt.
	TOTP        bool
	TOTPAddedAt time.Time
	// Recovery is set when the user has recovery codes, RecoveryLeft of
	// them unused, issued at RecoveryAddedAt.
	Recovery        bool
	RecoveryLeft    int
	RecoveryAddedAt time.Time
}

// SecondFactor reports whether the user has a second factor to prove at
// login. Recovery codes alone are not one: they stand in for it.
func (f Factors) SecondFactor() bool { return f.TOTP || len(f.Passkeys) > 0 }

// RecoveryLow reports whether the security page should warn that few
// recovery codes are left.
func (f Factors) RecoveryLow() bool { return f.Recovery && f.RecoveryLeft <= RecoveryLowWarning }

// FactorsOf returns what user has set up besides the password.
func (s *Service) FactorsOf(ctx context.Context, user string) (Factors, error) {
	var f Factors
	t, ok, err := s.factors.TOTP(ctx, user)
	if err != nil {
		return Factors{}, fmt.Errorf("factors of %q: %w", user, err)
	}
	f.TOTP, f.TOTPAddedAt = ok, t.AddedAt
	r, ok, err := s.factors.Recovery(ctx, user)
	if err != nil {
		return Factors{}, fmt.Errorf("factors of %q: %w", user, err)
	}
	if ok {
		f.Recovery, f.RecoveryLeft, f.RecoveryAddedAt = true, len(r.Hashes), r.AddedAt
	}
	if f.Passkeys, err = s.Passkeys(ctx, user); err != nil {
		return Factors{}, err
	}
	return f, nil
}

// HasSecondFactor reports whether user has a second factor to prove at
// login: an authenticator app or a passkey.
func (s *Service) HasSecondFactor(ctx context.Context, user string) (bool, error) {
	_, ok, err := s.factors.TOTP(ctx, user)
	if err != nil {
		return false, fmt.Errorf("second factor of %q: %w", user, err)
	}
	if ok {
		return true, nil
	}
	ok, err = s.factors.HasPasskeys(ctx, user)
	if err != nil {
		return false, fmt.Errorf("second factor of %q: %w", user, err)
	}
	return ok, nil
}

// HasTOTP reports whether user has an authenticator app.
func (s *Service) HasTOTP(ctx context.Context, user string) (bool, error) {
	_, ok, err := s.factors.TOTP(ctx, user)
	if err != nil {
		return false, fmt.Errorf("authenticator app of %q: %w", user, err)
	}
	return ok, nil
}

// HasPasskeys reports whether user has a passkey.
func (s *Service) HasPasskeys(ctx context.Context, user string) (bool, error) {
	ok, err := s.factors.HasPasskeys(ctx, user)
	if err != nil {
		return false, fmt.Errorf("passkeys of %q: %w", user, err)
	}
	return ok, nil
}

// TOTPEnrolment is what the enrolment page shows: the secret for typing
// in, and the otpauth URI for a phone's link and the QR code.
type TOTPEnrolment struct {
	// Secret is the base32 secret in groups of four.
	Secret string
	// URI is the otpauth://totp/ URI.
	URI string
	// ExpiresAt is when the secret stops waiting for its confirmation.
	ExpiresAt time.Time
}

// BeginTOTP shows user a secret to add to an authenticator app: the one
// already waiting for confirmation (so a reload shows the same QR code
// the phone may have scanned), or a new one. It is kept sealed for
// totpEnrolmentLifetime. ErrAlreadyEnrolled if the app is already set up.
func (s *Service) BeginTOTP(ctx context.Context, user string) (TOTPEnrolment, error) {
	if ok, err := s.HasTOTP(ctx, user); err != nil || ok {
		if err == nil {
			err = ErrAlreadyEnrolled
		}
		return TOTPEnrolment{}, err
	}
	secret, ok, err := s.pendingTOTP(ctx, user)
	if err != nil {
		return TOTPEnrolment{}, err
	}
	if !ok {
		key, err := NewTOTPSecret(s.issuer, user)
		if err != nil {
			return TOTPEnrolment{}, err
		}
		sealed, err := s.sealer.Seal([]byte(key.Secret), user, SealPurposeTOTP)
		if err != nil {
			return TOTPEnrolment{}, fmt.Errorf("begin totp of %q: %w", user, err)
		}
		if err := s.factors.SetPendingTOTP(ctx, user, sealed, totpEnrolmentLifetime); err != nil {
			return TOTPEnrolment{}, fmt.Errorf("begin totp of %q: %w", user, err)
		}
		secret = key.Secret
	}
	return TOTPEnrolment{
		Secret: GroupSecret(secret), URI: TOTPURI(s.issuer, user, secret),
		ExpiresAt: time.Now().Add(totpEnrolmentLifetime),
	}, nil
}

// pendingTOTP opens the secret waiting for confirmation, if any.
func (s *Service) pendingTOTP(ctx context.Context, user string) (string, bool, error) {
	sealed, ok, err := s.factors.PendingTOTP(ctx, user)
	if err != nil || !ok {
		return "", false, err
	}
	secret, _, err := s.sealer.Open(sealed, user, SealPurposeTOTP)
	if err != nil {
		// Sealed under a key the operator has since dropped: start over.
		return "", false, nil
	}
	return string(secret), true, nil
}

// TOTPQRCode returns the PNG of the QR code of the secret waiting for
// user's confirmation, size pixels square, or ErrNoPendingEnrolment.
func (s *Service) TOTPQRCode(ctx context.Context, user string, size int) ([]byte, error) {
	secret, ok, err := s.pendingTOTP(ctx, user)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNoPendingEnrolment
	}
	return TOTPQRPNG(TOTPURI(s.issuer, user, secret), size)
}

// Enrolled is what enabling a second factor did.
type Enrolled struct {
	// RecoveryCodes are new recovery codes, to show once: set when the
	// user had none.
	RecoveryCodes []string
	// Ended is how many of the user's other sessions ended.
	Ended int
}

// ConfirmTOTP enables the authenticator app of the logged-in user of ctx
// with the first code it shows (ErrInvalidCode, under the login throttle,
// if wrong; ErrNoPendingEnrolment if no secret waits). The code cannot
// be used again. The session now stands on two factors (a new token), the
// user's other sessions end (ASVS 7.4.3), and a user without recovery
// codes gets them.
func (s *Service) ConfirmTOTP(ctx context.Context, req LoginRequest) (Enrolled, error) {
	cur, ok := s.sessions.Current(ctx)
	if !ok {
		return Enrolled{}, ErrInvalidCredentials
	}
	user := cur.User
	secret, ok, err := s.pendingTOTP(ctx, user)
	if err != nil {
		return Enrolled{}, err
	}
	if !ok {
		return Enrolled{}, ErrNoPendingEnrolment
	}
	acct, err := s.accountOf(ctx, user, req.DeviceCookies)
	if err != nil {
		return Enrolled{}, err
	}
	g, err := s.admit(ctx, acct, req.IP, req.DeviceCookies)
	if err != nil {
		return Enrolled{}, err
	}
	step, ok := MatchTOTP(secret, req.Code, time.Now())
	if !ok {
		return Enrolled{}, ErrInvalidCode
	}
	if err := g.succeed(ctx); err != nil {
		return Enrolled{}, err
	}
	sealed, err := s.sealer.Seal([]byte(secret), user, SealPurposeTOTP)
	if err != nil {
		return Enrolled{}, fmt.Errorf("confirm totp of %q: %w", user, err)
	}
	if err := s.factors.SetTOTP(ctx, user, sealed, time.Now().UTC(), step); err != nil {
		return Enrolled{}, fmt.Errorf("confirm totp of %q: %w", user, err)
	}
	if err := s.factors.DeletePendingTOTP(ctx, user); err != nil {
		return Enrolled{}, fmt.Errorf("confirm totp of %q: %w", user, err)
	}
	var out Enrolled
	if _, has, err := s.factors.Recovery(ctx, user); err != nil {
		return Enrolled{}, fmt.Errorf("confirm totp of %q: %w", user, err)
	} else if !has {
		if out.RecoveryCodes, err = s.newRecoveryCodes(ctx, user); err != nil {
			return Enrolled{}, err
		}
	}
	if out.Ended, err = s.afterFactorChange(ctx, cur, []string{session.MethodPassword, session.MethodOTP}); err != nil {
		return Enrolled{}, err
	}
	s.noteFactorChange(ctx, activity.FactorAdded, SecondStepTOTP)
	return out, nil
}

// afterFactorChange ends the user's other sessions and renews this one's
// token, now standing on methods: a factor change is a moment to throw
// out whoever else holds a session (ASVS 7.4.3).
func (s *Service) afterFactorChange(ctx context.Context, cur session.Record, methods []string) (int, error) {
	ended, err := s.sessions.RevokeAll(activity.Because(ctx, activity.ByFactorChange), cur.User, cur.ID)
	if err != nil {
		return ended, err
	}
	u, err := s.users.Get(ctx, cur.User)
	if err != nil {
		return ended, fmt.Errorf("factor change of %q: %w", cur.User, err)
	}
	return ended, s.elevate(ctx, methods, u.PasswordHash)
}

// RemoveTOTP turns off the authenticator app of the logged-in user of
// ctx, with the recovery codes that stood in for it unless a passkey
// remains (the caller has checked a recent authentication). The user's
// other sessions end; it returns how many.
func (s *Service) RemoveTOTP(ctx context.Context) (int, error) {
	cur, ok := s.sessions.Current(ctx)
	if !ok {
		return 0, ErrInvalidCredentials
	}
	removed, err := s.factors.DeleteTOTP(ctx, cur.User)
	if err != nil {
		return 0, fmt.Errorf("remove totp of %q: %w", cur.User, err)
	}
	if !removed {
		return 0, ErrNotEnrolled
	}
	return s.afterFactorRemoved(ctx, cur, SecondStepTOTP)
}

// afterFactorRemoved ends what removing one of cur's second factors
// (method) ends: the recovery codes, which stand in for a second factor,
// when none is left; the user's other sessions. The session keeps the
// methods it signed in with: what went is a way to sign in next time. It
// returns how many sessions ended.
func (s *Service) afterFactorRemoved(ctx context.Context, cur session.Record, method string) (int, error) {
	if second, err := s.HasSecondFactor(ctx, cur.User); err != nil {
		return 0, err
	} else if !second {
		if _, err := s.factors.DeleteRecovery(ctx, cur.User); err != nil {
			return 0, fmt.Errorf("remove %s of %q: %w", method, cur.User, err)
		}
	}
	ended, err := s.afterFactorChange(ctx, cur, cur.AMR)
	if err != nil {
		return ended, err
	}
	s.noteFactorChange(ctx, activity.FactorRemoved, method)
	return ended, nil
}

// RegenerateRecoveryCodes replaces the logged-in user's recovery codes
// with new ones, returned to show once: the old ones stop working. Only a
// user with a second factor has them (ErrNotEnrolled).
func (s *Service) RegenerateRecoveryCodes(ctx context.Context) ([]string, error) {
	cur, ok := s.sessions.Current(ctx)
	if !ok {
		return nil, ErrInvalidCredentials
	}
	if ok, err := s.HasSecondFactor(ctx, cur.User); err != nil || !ok {
		if err == nil {
			err = ErrNotEnrolled
		}
		return nil, err
	}
	codes, err := s.newRecoveryCodes(ctx, cur.User)
	if err != nil {
		return nil, err
	}
	s.noteFactorChange(ctx, activity.RecoveryCodesRegenerated, "")
	return codes, nil
}

func (s *Service) newRecoveryCodes(ctx context.Context, user string) ([]string, error) {
	codes, set, err := NewRecoveryCodes()
	if err != nil {
		return nil, err
	}
	if err := s.factors.SetRecovery(ctx, user, store.Recovery{Salt: set.Salt, Hashes: set.Hashes, AddedAt: time.Now().UTC()}); err != nil {
		return nil, fmt.Errorf("recovery codes of %q: %w", user, err)
	}
	return codes, nil
}

// ResetFactors removes every second factor and recovery code of user,
// makes every device cookie of the user stop counting and ends all of the
// user's sessions: an operator's answer to a lost phone.
// It returns how many sessions ended.
func (s *Service) ResetFactors(ctx context.Context, username string) (int, error) {
	name, err := NormalizeUsername(username)
	if err != nil {
		return 0, err
	}
	if _, err := s.users.Get(ctx, name); err != nil {
		return 0, fmt.Errorf("reset factors of %q: %w", name, err)
	}
	if err := s.factors.DeleteAll(ctx, name); err != nil {
		return 0, fmt.Errorf("reset factors of %q: %w", name, err)
	}
	// A lost phone may have gone with a browser: its device cookie must
	// not keep a failure budget of its own.
	if err := s.users.AdvanceDeviceEpoch(ctx, name); err != nil {
		return 0, fmt.Errorf("reset factors of %q: %w", name, err)
	}
	s.recordNotable(ctx, activity.Event{User: name, Kind: activity.FactorsReset, Fields: map[string]string{"by": activity.ByOperator}}, "")
	return s.sessions.RevokeAll(activity.Because(ctx, activity.ByOperator), name, "")
}

// checkCode checks a second-factor code of user: an authenticator app's
// code (6 digits) that has not been used, or an unused recovery code. It
// returns the method that matched and, for a recovery code, how many
// remain; ErrInvalidCode for anything else.
func (s *Service) checkCode(ctx context.Context, user, code string) (string, int, error) {
	if _, ok := normalizeTOTPCode(code); ok {
		t, ok, err := s.factors.TOTP(ctx, user)
		if err != nil {
			return "", 0, fmt.Errorf("check code of %q: %w", user, err)
		}
		if !ok {
			return "", 0, ErrInvalidCode
		}
		secret, stale, err := s.sealer.Open(t.Sealed, user, SealPurposeTOTP)
		if errors.Is(err, ErrSealedUnreadable) {
			return "", 0, fmt.Errorf("check code of %q: %w", user, ErrFactorUnreadable)
		}
		if err != nil {
			return "", 0, fmt.Errorf("check code of %q: %w", user, err)
		}
		step, ok := MatchTOTP(string(secret), code, time.Now())
		if !ok {
			return "", 0, ErrInvalidCode
		}
		// Once per step on every replica: the same code (or an older
		// one) a second time is refused.
		fresh, err := s.factors.UseTOTPStep(ctx, user, step)
		if err != nil {
			return "", 0, fmt.Errorf("check code of %q: %w", user, err)
		}
		if !fresh {
			return "", 0, ErrInvalidCode
		}
		if stale {
			// Opened with an old key of a rotation: sealed again under the
			// current one, so the old key can be dropped.
			if resealed, err := s.sealer.Seal(secret, user, SealPurposeTOTP); err == nil {
				_ = s.factors.ResealTOTP(ctx, user, t.Sealed, resealed) // best effort: retried at the next login
			}
		}
		return SecondStepTOTP, 0, nil
	}
	r, ok, err := s.factors.Recovery(ctx, user)
	if err != nil {
		return "", 0, fmt.Errorf("check code of %q: %w", user, err)
	}
	if !ok {
		return "", 0, ErrInvalidCode
	}
	hash, err := s.recoveryHash(ctx, r.Salt, code)
	if err != nil {
		return "", 0, err
	}
	left, used, err := s.factors.UseRecoveryCode(ctx, user, hash)
	if err != nil {
		return "", 0, fmt.Errorf("check code of %q: %w", user, err)
	}
	if !used {
		return "", 0, ErrInvalidCode
	}
	return SecondStepRecovery, left, nil
}

// recoveryHash derives a typed recovery code's hash in a hashing slot, as
// a password check does: it costs the same argon2id.
func (s *Service) recoveryHash(ctx context.Context, salt, code string) (string, error) {
	if _, err := normalizeRecoveryCode(code); err != nil {
		return "", ErrInvalidCode
	}
	if err := s.hasher.acquireLogin(ctx); err != nil {
		return "", err
	}
	defer s.hasher.release()
	hash, err := RecoveryHash(salt, code)
	if err != nil {
		return "", ErrInvalidCode
	}
	return hash, nil
}
