package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/webauthn"

	"loginsvc/internal/activity"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
)

// ErrInvalidCredentials is the one answer to a failed login, whatever was
// wrong: unknown user, wrong password or a malformed name.
var ErrInvalidCredentials = errors.New("invalid username or password")

// ErrWeakPassword means a new password is too short or too long.
var ErrWeakPassword = fmt.Errorf("password must be at least %d characters and at most %d bytes", MinPasswordChars, MaxPasswordBytes)

// ErrSamePassword means a password change named the current password as
// the new one: it would change nothing (and "change P1 to P1", repeated,
// was how a change could undo an operator's reset).
var ErrSamePassword = errors.New("new password is the current one")

// ErrPasswordChangedElsewhere means the password changed (the operator's
// reset, or another change) after ChangePassword checked the current one
// and before it could write: the other write stands and this change is
// not made.
var ErrPasswordChangedElsewhere = errors.New("password changed elsewhere during the change")

// Service decides logins and manages users.
type Service struct {
	users    *store.Users
	throttle *store.Throttle
	sessions *session.Manager
	hasher   *hasher
	devices  deviceSigner
	limits   Limits
	factors  *store.Factors
	// sealer seals second-factor secrets under the device cookie keys
	// (domain-separated by HKDF): one secret for the operator to keep and
	// rotate.
	sealer *Sealer
	// issuer is what authenticator apps show above the codes.
	issuer string
	// webauthn runs passkey ceremonies; the relying party of each comes
	// with its request (RelyingParty).
	webauthn *webauthn.WebAuthn
	// activity records security events (nil: none); events holds the
	// notices waiting for a user's next login.
	activity *activity.Log
	events   *store.Events
}

// Config tunes a Service.
type Config struct {
	// HashConcurrency bounds parallel argon2id runs. Default GOMAXPROCS,
	// at most 4.
	HashConcurrency int
	// HashWait is how long a login waits for a hashing slot before it is
	// refused with ErrBusy. Default 2s (DefaultHashWait).
	HashWait time.Duration
	// Limits bound login attempts; zero fields take their defaults.
	Limits Limits
	// DeviceKey signs device cookies (DEVICE_COOKIE_KEY): at least
	// MinDeviceKeyBytes, the same on every replica. Empty: a random key,
	// for a single process (the embedded mode, the command-line tools).
	DeviceKey []byte
	// OldDeviceKeys are keys DEVICE_COOKIE_KEY named after the current one:
	// cookies they signed are still accepted, new ones are signed with
	// DeviceKey alone. A rolling rotation: OLD,NEW on every replica (the
	// new key accepted before anyone signs with it), then NEW,OLD, then,
	// after DeviceCookieLifetime, NEW.
	OldDeviceKeys [][]byte
	// TOTPIssuer (TOTP_ISSUER) is the name authenticator apps show above
	// this service's codes. Default DefaultTOTPIssuer.
	TOTPIssuer string
	// Activity, if set, records security events.
	Activity *activity.Log
}

// NewService returns a Service on the user records and failure counters of
// rdb. sessions is used to end a user's sessions when the user is deleted
// or the password changes.
func NewService(rdb *store.Redis, sessions *session.Manager, cfg Config) (*Service, error) {
	h, err := newHasher(cfg.HashConcurrency, cfg.HashWait)
	if err != nil {
		return nil, fmt.Errorf("new auth service: %w", err)
	}
	d, err := newDeviceSigner(cfg.DeviceKey, cfg.OldDeviceKeys)
	if err != nil {
		return nil, fmt.Errorf("new auth service: %w", err)
	}
	sealer, err := NewSealer(append([][]byte{d.key}, d.old...))
	if err != nil {
		return nil, fmt.Errorf("new auth service: %w", err)
	}
	issuer := cfg.TOTPIssuer
	if issuer == "" {
		issuer = DefaultTOTPIssuer
	}
	// Every ceremony names its own relying party and origin, and begins
	// with an instance configured for them (ceremonyWebAuthn); this one
	// finishes ceremonies, whose session data carries both, so these are
	// only go-webauthn's required defaults.
	wa, err := webauthn.New(&webauthn.Config{
		RPID: "localhost", RPDisplayName: issuer, RPOrigins: []string{"http://localhost"},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyLifetime, TimeoutUVD: ceremonyLifetime},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyLifetime, TimeoutUVD: ceremonyLifetime},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("new auth service: webauthn: %w", err)
	}
	return &Service{
		users: rdb.Users, throttle: rdb.Throttle, sessions: sessions, hasher: h, devices: d,
		limits: cfg.Limits.withDefaults(), factors: rdb.Factors, sealer: sealer, issuer: issuer, webauthn: wa,
		activity: cfg.Activity, events: rdb.Events,
	}, nil
}

// WarmUp prepares what a first login would otherwise pay for (the dummy
// hash an unknown name is checked against): the server calls it at
// start, so the first unknown name costs what a wrong password costs.
func (s *Service) WarmUp() error { return s.hasher.warmUp() }

// Identity is who a login proved to be.
type Identity struct {
	// Name is the canonical username.
	Name string
	// Stamp is the password hash the login was checked against. A session
	// is started for the identity only while the hash is current (see
	// session.Login), so a password change or delete that races the login
	// leaves no session of the old password behind.
	Stamp string
	// deviceEpoch is the user's device epoch as the login read it: the
	// device cookie the login issues is bound to it (see device.go).
	deviceEpoch string
}

// account is what one attempt knows of the account it names, read from
// Redis once: the throttle needs its device epoch (admit), the password
// check its hash (authenticate).
type account struct {
	// name is the canonical name, "" when valid is false.
	name string
	// valid reports whether the name can be a user's at all.
	valid bool
	// user is the record, when found.
	user  store.User
	found bool
}

// account reads the account username names. Only a Redis failure is an
// error: a name that cannot be valid, or names nobody, is an account
// without a record, checked all the same (one argon2id comparison).
func (s *Service) account(ctx context.Context, username string) (account, error) {
	name, err := NormalizeUsername(username)
	if err != nil {
		return account{}, nil
	}
	u, err := s.users.Get(ctx, name)
	switch {
	case err == nil:
		return account{name: name, valid: true, user: u, found: true}, nil
	case errors.Is(err, store.ErrUserNotFound):
		return account{name: name, valid: true}, nil
	}
	return account{}, fmt.Errorf("authenticate: %w", err)
}

// accountOf is account for user, a canonical name a session or a pending
// login vouches for, before a code is checked: the record is read only
// when device cookies need its epoch.
func (s *Service) accountOf(ctx context.Context, user string, devices []string) (account, error) {
	if len(devices) == 0 {
		return account{name: user, valid: true}, nil
	}
	return s.account(ctx, user)
}

// Authenticate checks a login and returns who it is. Every kind of failure
// costs one argon2id comparison and returns ErrInvalidCredentials, so
// neither the answer nor its timing tells whether the user exists. A Redis
// failure returns an error wrapping store.ErrUnavailable.
func (s *Service) Authenticate(ctx context.Context, username, password string) (Identity, error) {
	acct, err := s.account(ctx, username)
	if err != nil {
		return Identity{}, err
	}
	return s.authenticate(ctx, acct, password)
}

// authenticate is Authenticate of an account already read.
func (s *Service) authenticate(ctx context.Context, acct account, password string) (Identity, error) {
	if len(password) > MaxPasswordBytes {
		return Identity{}, ErrInvalidCredentials
	}
	// "" when there is no record: the comparison runs all the same.
	hash := acct.user.PasswordHash
	ok, err := s.hasher.verify(ctx, password, hash)
	if err != nil {
		return Identity{}, fmt.Errorf("authenticate: %w", err)
	}
	if !ok || !acct.found {
		return Identity{}, ErrInvalidCredentials
	}
	return Identity{Name: acct.name, Stamp: hash, deviceEpoch: acct.user.DeviceEpoch}, nil
}

// CheckNewPassword returns ErrWeakPassword unless password is long enough
// to be set: at least MinPasswordChars characters, at most
// MaxPasswordBytes bytes. No composition rules (ASVS 2.1.9).
func CheckNewPassword(password string) error {
	if utf8.RuneCountInString(password) < MinPasswordChars || len(password) > MaxPasswordBytes {
		return ErrWeakPassword
	}
	return nil
}

// AddUser creates a user, or returns ErrInvalidNewUsername (or
// ErrInvalidUsername) for a name outside CheckNewUsername's set, or
// store.ErrUserExists, or a
// *store.LookAlikeError when the name's confusable skeleton (Skeleton) is
// an existing user's: "аdmin" with a Cyrillic а is refused while "admin"
// exists.
func (s *Service) AddUser(ctx context.Context, username, password string) error {
	name, err := CheckNewUsername(username)
	if err != nil {
		return err
	}
	if err := CheckNewPassword(password); err != nil {
		return err
	}
	hash, err := s.hasher.hash(ctx, password)
	if err != nil {
		return fmt.Errorf("add user: %w", err)
	}
	if err := s.users.CreateUnique(ctx, name, Skeleton(name), hash); err != nil {
		return fmt.Errorf("add user %q: %w", name, err)
	}
	s.record(ctx, name, activity.UserCreated, map[string]string{"by": activity.ReasonOf(ctx, activity.ByOperator)})
	return nil
}

// EnsureUser creates the user unless one with that name exists, and reports
// whether it did. Replicas that start together may all call it; exactly one
// creates the user and the existing password is never replaced. It is the
// bootstrap's: the user_created it records says by bootstrap.
func (s *Service) EnsureUser(ctx context.Context, username, password string) (bool, error) {
	err := s.AddUser(activity.Because(ctx, activity.ByBootstrap), username, password)
	if errors.Is(err, store.ErrUserExists) {
		return false, nil
	}
	if errors.Is(err, ErrInvalidNewUsername) {
		// A bootstrap user created before new names were restricted
		// still exists, and keeps its name.
		if name, nerr := NormalizeUsername(username); nerr == nil {
			if _, gerr := s.users.Get(ctx, name); gerr == nil {
				return false, nil
			}
		}
	}
	return err == nil, err
}

// SetPassword replaces a user's password, clears the account's failed-login
// count, makes the user's device cookies count as none (the device epoch
// moves with the password) and ends the user's sessions, so a password changed after a
// compromise locks the intruder out and lets the owner back in. It returns
// how many sessions it ended.
func (s *Service) SetPassword(ctx context.Context, username, password string) (int, error) {
	name, err := NormalizeUsername(username)
	if err != nil {
		return 0, err
	}
	// Unconditional: the operator's reset always wins, over whatever a
	// change in flight checked.
	if _, err := s.setPassword(ctx, name, password, s.users.SetPassword); err != nil {
		return 0, err
	}
	s.recordNotable(ctx, activity.Event{User: name, Kind: activity.PasswordChanged, Fields: map[string]string{"by": activity.ByOperator}}, "")
	return s.sessions.RevokeAll(activity.Because(ctx, activity.ByPasswordChange), name, "")
}

// setPassword checks a new password for name, stores its hash with write
// (the operator's Users.SetPassword, or a change's Users.SetPasswordIf),
// clears the account's failure count, and returns the new hash.
func (s *Service) setPassword(ctx context.Context, name, password string, write func(ctx context.Context, name, hash string) error) (string, error) {
	if err := CheckNewPassword(password); err != nil {
		return "", err
	}
	hash, err := s.hasher.hash(ctx, password)
	if err != nil {
		return "", fmt.Errorf("set password: %w", err)
	}
	if err := write(ctx, name, hash); err != nil {
		return "", fmt.Errorf("set password of %q: %w", name, err)
	}
	// A new password is the answer to a locked-out account: the failures
	// counted against the old one no longer apply.
	if err := s.throttle.Reset(ctx, store.ThrottleUserKey(name)); err != nil {
		return "", fmt.Errorf("set password of %q: %w", name, err)
	}
	return hash, nil
}

// ChangePassword is a user changing their own password: current (the
// account, the current password, the address and device cookies of the
// request) is checked as a login attempt would be (same throttle, same
// ErrInvalidCredentials or *ThrottledError; the owner's device cookie
// keeps an attacker's lockout from blocking the change), then the new one
// must pass CheckNewPassword and differ from the current one
// (ErrSamePassword). The new hash is written only over the hash the check
// verified: when the password changed in between (the operator's reset,
// another change), that write stands and ChangePassword returns
// ErrPasswordChangedElsewhere. It returns the new identity; the caller
// ends the user's other sessions and renews this one
// (session.Manager.Renew).
func (s *Service) ChangePassword(ctx context.Context, current Attempt, next string) (Identity, error) {
	// Refuse a weak new password before spending an attempt on the
	// current one, so a typo in the new one costs no lockout budget.
	if err := CheckNewPassword(next); err != nil {
		return Identity{}, err
	}
	id, err := s.LoginAttempt(ctx, current)
	if err != nil {
		return Identity{}, err
	}
	return s.changeChecked(ctx, id, current.Password, next)
}

// changeChecked is ChangePassword once id has been proved with the
// plaintext current: its own step so that a test can run another write
// between the check and this one.
func (s *Service) changeChecked(ctx context.Context, id Identity, current, next string) (Identity, error) {
	// current was just verified, so comparing plaintexts says whether next
	// is the current password, without another hash.
	if subtle.ConstantTimeCompare([]byte(current), []byte(next)) == 1 {
		return Identity{}, ErrSamePassword
	}
	// id.Stamp is the hash the check verified: a write since then (the
	// operator's reset) must not be undone by a check that went stale
	// during the 30-80 ms of hashing.
	hash, err := s.setPassword(ctx, id.Name, next, func(ctx context.Context, name, hash string) error {
		return s.users.SetPasswordIf(ctx, name, id.Stamp, hash)
	})
	if errors.Is(err, store.ErrPasswordChanged) {
		return Identity{}, fmt.Errorf("change password of %q: %w", id.Name, ErrPasswordChangedElsewhere)
	}
	if err != nil {
		return Identity{}, err
	}
	cur, _ := s.sessions.Current(ctx)
	s.recordNotable(ctx, activity.Event{User: id.Name, Kind: activity.PasswordChanged, Session: cur.ID, Fields: map[string]string{"by": activity.ByUser}}, cur.ID)
	return Identity{Name: id.Name, Stamp: hash}, nil
}

// Unlock clears the failed-login count of the account, lifting a lockout at
// once.
func (s *Service) Unlock(ctx context.Context, username string) error {
	name, err := NormalizeUsername(username)
	if err != nil {
		return err
	}
	if _, err := s.users.Get(ctx, name); err != nil {
		return fmt.Errorf("unlock %q: %w", name, err)
	}
	if err := s.throttle.Reset(ctx, store.ThrottleUserKey(name)); err != nil {
		return fmt.Errorf("unlock %q: %w", name, err)
	}
	_ = s.throttle.Reset(ctx, store.ThrottleLockoutKey(name)) // the next lockout is news again
	s.record(ctx, name, activity.LockoutLifted, map[string]string{"by": activity.ByOperator})
	return nil
}

// DeleteUser removes a user and ends all of the user's sessions, and
// returns how many it ended. The device epoch goes with the record: a
// user created again under the name starts at a new random one, so the
// old device cookies do not count for it. The record goes first: a login completing
// meanwhile then fails to start its session (session.ErrLoginRaced), and
// one that started before is in the index this reads next.
func (s *Service) DeleteUser(ctx context.Context, username string) (int, error) {
	name, err := NormalizeUsername(username)
	if err != nil {
		return 0, err
	}
	if err := s.users.Delete(ctx, name); err != nil {
		return 0, fmt.Errorf("delete user %q: %w", name, err)
	}
	// After the record: a failure here leaves a claim without a user,
	// which the next creation of a look-alike treats as free.
	if err := s.users.ReleaseSkeleton(ctx, name, Skeleton(name)); err != nil {
		return 0, fmt.Errorf("delete user %q: %w", name, err)
	}
	// A user created again under the name must not inherit these.
	if err := s.factors.DeleteAll(ctx, name); err != nil {
		return 0, fmt.Errorf("delete user %q: %w", name, err)
	}
	if err := s.events.DeleteUser(ctx, name); err != nil {
		return 0, fmt.Errorf("delete user %q: %w", name, err)
	}
	s.record(ctx, name, activity.UserDeleted, map[string]string{"by": activity.ByOperator})
	return s.sessions.RevokeAll(activity.Because(ctx, activity.ByUserDeleted), name, "")
}

// ClaimSkeletons gives every existing user its look-alike claim (see
// AddUser), so that users created before claims were stored are protected
// too. It returns the pairs it found already looking alike (each a name
// and the user it looks like), which only an operator can resolve.
func (s *Service) ClaimSkeletons(ctx context.Context) ([][2]string, error) {
	names, err := s.users.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("claim skeletons: %w", err)
	}
	var alike [][2]string
	for _, name := range names {
		err := s.users.ClaimSkeleton(ctx, name, Skeleton(name))
		var look *store.LookAlikeError
		switch {
		case errors.As(err, &look):
			alike = append(alike, [2]string{name, look.Existing})
		case err != nil:
			return alike, fmt.Errorf("claim skeletons: %w", err)
		}
	}
	return alike, nil
}

// ListUsers returns all user names, sorted.
func (s *Service) ListUsers(ctx context.Context) ([]string, error) {
	return s.users.List(ctx)
}
