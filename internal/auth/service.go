package auth

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"loginsvc/internal/store"
)

// ErrInvalidCredentials is the one answer to a failed login, whatever was
// wrong: unknown user, wrong password or a malformed name.
var ErrInvalidCredentials = errors.New("invalid username or password")

// ErrWeakPassword means a new password is too short or too long.
var ErrWeakPassword = fmt.Errorf("password must be at least %d characters and at most %d bytes", MinPasswordChars, MaxPasswordBytes)

// Service decides logins and manages users.
type Service struct {
	users    *store.Users
	sessions *store.SessionStore
	codec    store.JSONCodec
	hasher   *hasher
	throttle *store.Throttle
	limits   Limits
}

// Config tunes a Service.
type Config struct {
	// HashConcurrency bounds parallel argon2id runs. Default GOMAXPROCS,
	// at most 4.
	HashConcurrency int
	// Limits bound failed logins; zero fields take their defaults.
	Limits Limits
}

// NewService returns a Service on the given stores. sessions and codec are
// used to end a user's sessions when the user is deleted or the password
// changes.
func NewService(users *store.Users, sessions *store.SessionStore, throttle *store.Throttle, codec store.JSONCodec, cfg Config) (*Service, error) {
	h, err := newHasher(cfg.HashConcurrency)
	if err != nil {
		return nil, fmt.Errorf("new auth service: %w", err)
	}
	return &Service{users: users, sessions: sessions, throttle: throttle, codec: codec, hasher: h, limits: cfg.Limits.withDefaults()}, nil
}

// Authenticate checks a login and returns the canonical username. Every
// kind of failure costs one argon2id comparison and returns
// ErrInvalidCredentials, so neither the answer nor its timing tells whether
// the user exists. A Redis failure returns an error wrapping
// store.ErrUnavailable.
func (s *Service) Authenticate(ctx context.Context, username, password string) (string, error) {
	name, nameErr := NormalizeUsername(username)
	if len(password) > MaxPasswordBytes {
		return "", ErrInvalidCredentials
	}
	hash := ""
	if nameErr == nil {
		u, err := s.users.Get(ctx, name)
		switch {
		case err == nil:
			hash = u.PasswordHash
		case !errors.Is(err, store.ErrUserNotFound):
			return "", fmt.Errorf("authenticate: %w", err)
		}
	}
	ok, err := s.hasher.verify(ctx, password, hash)
	if err != nil {
		return "", fmt.Errorf("authenticate: %w", err)
	}
	if !ok {
		return "", ErrInvalidCredentials
	}
	return name, nil
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

// AddUser creates a user, or returns store.ErrUserExists.
func (s *Service) AddUser(ctx context.Context, username, password string) error {
	name, err := NormalizeUsername(username)
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
	if err := s.users.Create(ctx, name, hash); err != nil {
		return fmt.Errorf("add user %q: %w", name, err)
	}
	return nil
}

// EnsureUser creates the user unless one with that name exists, and reports
// whether it did. Replicas that start together may all call it; exactly one
// creates the user and the existing password is never replaced.
func (s *Service) EnsureUser(ctx context.Context, username, password string) (bool, error) {
	err := s.AddUser(ctx, username, password)
	if errors.Is(err, store.ErrUserExists) {
		return false, nil
	}
	return err == nil, err
}

// SetPassword replaces a user's password, clears the account's failed-login
// count and ends the user's sessions, so a password changed after a
// compromise locks the intruder out and lets the owner back in.
func (s *Service) SetPassword(ctx context.Context, username, password string) (int, error) {
	name, err := NormalizeUsername(username)
	if err != nil {
		return 0, err
	}
	if err := CheckNewPassword(password); err != nil {
		return 0, err
	}
	hash, err := s.hasher.hash(ctx, password)
	if err != nil {
		return 0, fmt.Errorf("set password: %w", err)
	}
	if err := s.users.SetPassword(ctx, name, hash); err != nil {
		return 0, fmt.Errorf("set password of %q: %w", name, err)
	}
	// A new password is the operator's answer to a locked-out account: the
	// failures counted against the old one no longer apply.
	if err := s.throttle.Reset(ctx, store.ThrottleUserKey(name)); err != nil {
		return 0, fmt.Errorf("set password of %q: %w", name, err)
	}
	return s.EndSessions(ctx, name)
}

// DeleteUser removes a user and ends all of the user's sessions.
func (s *Service) DeleteUser(ctx context.Context, username string) (int, error) {
	name, err := NormalizeUsername(username)
	if err != nil {
		return 0, err
	}
	if err := s.users.Delete(ctx, name); err != nil {
		return 0, fmt.Errorf("delete user %q: %w", name, err)
	}
	return s.EndSessions(ctx, name)
}

// EndSessions deletes every session of the named user and returns how many.
func (s *Service) EndSessions(ctx context.Context, name string) (int, error) {
	n, err := s.sessions.DeleteWhere(ctx, s.codec, func(v map[string]any) bool {
		return v[store.FieldUsername] == name
	})
	if err != nil {
		return n, fmt.Errorf("end sessions of %q: %w", name, err)
	}
	return n, nil
}

// ListUsers returns all user names, sorted.
func (s *Service) ListUsers(ctx context.Context) ([]string, error) {
	return s.users.List(ctx)
}
