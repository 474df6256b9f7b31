package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"loginsvc/internal/store"
)

// Limits bound failed logins. Failures are counted in Redis, so the limits
// hold across all replicas together.
type Limits struct {
	// PerUser is how many failed logins one account may see per Window,
	// from any number of addresses (ASVS 2.2.1 asks at most 100 an hour).
	// Default 10.
	PerUser int
	// PerIP is how many failed logins one client address may make per
	// Window, across all accounts, which stops password spraying. Default 50.
	PerIP int
	// Window is the sliding window. Default 15m: a locked-out user waits
	// minutes, not hours.
	Window time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.PerUser <= 0 {
		l.PerUser = 10
	}
	if l.PerIP <= 0 {
		l.PerIP = 50
	}
	if l.Window <= 0 {
		l.Window = 15 * time.Minute
	}
	return l
}

// ThrottledError refuses a login because too many failed: the attempt was
// not checked at all, even if the password was right.
type ThrottledError struct {
	// RetryAfter is how long until the next attempt can be checked.
	RetryAfter time.Duration
	// Limit names the limit that refused it, "user" or "ip", for the log;
	// the browser is never told.
	Limit string
	// User is the account the attempt was for (canonical, "" if the name
	// was invalid), for the log: the operator needs to know whom to unlock.
	User string
}

// Error implements error; it is for logs, never shown to the user.
func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins (%s limit), retry after %s", e.Limit, e.RetryAfter)
}

// Login checks a login attempt from client address ip under the failure
// limits. It returns the identity, ErrInvalidCredentials, a
// *ThrottledError, or an error wrapping store.ErrUnavailable: when Redis
// cannot count, the login fails closed.
func (s *Service) Login(ctx context.Context, username, password string, ip netip.Addr) (Identity, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])

	// Count per canonical name, so "ａｌｉｃｅ" and "alice" share a
	// counter; a name that cannot be valid is counted by address only.
	var keys, kinds []string
	var limits []int
	name, nameErr := NormalizeUsername(username)
	if nameErr == nil {
		keys, kinds, limits = append(keys, store.ThrottleUserKey(name)), append(kinds, "user"), append(limits, s.limits.PerUser)
	}
	keys, kinds, limits = append(keys, store.ThrottleIPKey(addressBlock(ip))), append(kinds, "ip"), append(limits, s.limits.PerIP)

	for i, key := range keys {
		wait, err := s.throttle.Reserve(ctx, key, id, limits[i], s.limits.Window)
		if err == nil && wait == 0 {
			continue
		}
		// Refused (or Redis failed) part-way: give back what was taken.
		s.release(ctx, keys[:i], id)
		if err != nil {
			return Identity{}, fmt.Errorf("login: %w", err)
		}
		return Identity{}, &ThrottledError{RetryAfter: wait, Limit: kinds[i], User: name}
	}

	who, err := s.Authenticate(ctx, username, password)
	if err != nil {
		if !errors.Is(err, ErrInvalidCredentials) {
			s.release(ctx, keys, id) // not the user's failure
		}
		return Identity{}, err
	}
	// Success: the account's failures are forgiven; the address keeps its
	// count minus this attempt, so one good login cannot launder spraying.
	if err := s.throttle.Reset(ctx, store.ThrottleUserKey(who.Name)); err != nil {
		return Identity{}, fmt.Errorf("login: %w", err)
	}
	s.release(ctx, keys[len(keys)-1:], id)
	return who, nil
}

// addressBlock is what the per-address limit counts: an IPv4 address, or
// the /64 an IPv6 address is in, since one client usually holds a whole
// /64 and could otherwise spray from a fresh address per attempt.
func addressBlock(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is6() {
		p, err := ip.Prefix(64)
		if err == nil {
			return p.String()
		}
	}
	return ip.String()
}

func (s *Service) release(ctx context.Context, keys []string, id string) {
	for _, key := range keys {
		// Best effort: an unreleased attempt expires with its window.
		_ = s.throttle.Release(ctx, key, id)
	}
}
