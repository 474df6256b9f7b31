package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"loginsvc/internal/activity"
	"loginsvc/internal/store"
)

// Limits bound login attempts. Attempts are counted in Redis, so the
// limits hold across all replicas together.
type Limits struct {
	// PerUser is how many failed logins one account may see per Window,
	// from any number of addresses (ASVS 2.2.1 asks at most 100 an hour),
	// counting attempts without a valid device cookie for the account.
	// Default 10.
	PerUser int
	// PerDevice is how many failed logins one device cookie may make per
	// Window; attempts with a valid device cookie count here instead of
	// against the account (see device.go). Default PerUser.
	PerDevice int
	// PerIP is how many failed logins one client address may make per
	// Window, across all accounts, which stops password spraying. Default 50.
	PerIP int
	// AttemptsPerIP is how many login attempts, successful ones included,
	// one client address may make per Window: each costs an argon2id hash
	// and, when it succeeds, a session. Default 300.
	AttemptsPerIP int
	// Window is the sliding window. Default 15m: a locked-out user waits
	// minutes, not hours.
	Window time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.PerUser <= 0 {
		l.PerUser = 10
	}
	if l.PerDevice <= 0 {
		l.PerDevice = l.PerUser
	}
	if l.PerIP <= 0 {
		l.PerIP = 50
	}
	if l.AttemptsPerIP <= 0 {
		l.AttemptsPerIP = 300
	}
	if l.Window <= 0 {
		l.Window = 15 * time.Minute
	}
	return l
}

// ThrottledError refuses a login because too many failed (or, for
// "ip-attempts", too many were made): the attempt was not checked at all,
// even if the password was right.
type ThrottledError struct {
	// RetryAfter is how long until the next attempt can be checked.
	RetryAfter time.Duration
	// Limit names the limit that refused it, for the log: "user",
	// "device", "ip" or "ip-attempts". The browser is never told.
	Limit string
	// User is the account the attempt was for (canonical, "" if the name
	// was invalid), for the log: the operator needs to know whom to unlock.
	User string
}

// Error implements error; it is for logs, never shown to the user.
func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins (%s limit), retry after %s", e.Limit, e.RetryAfter)
}

// Attempt is one login attempt as the web layer sees it.
type Attempt struct {
	Username string
	Password string
	// IP is the client address (after TRUSTED_PROXIES).
	IP netip.Addr
	// DeviceCookies are the values of every device cookie the request
	// carried (a cookie planted by another service on the host may come
	// first); the first valid one for Username makes the attempt a known
	// device's.
	DeviceCookies []string
}

// CheckPassword checks a password from client address ip, without a device
// cookie, under the limits. See LoginAttempt.
func (s *Service) CheckPassword(ctx context.Context, username, password string, ip netip.Addr) (Identity, error) {
	return s.LoginAttempt(ctx, Attempt{Username: username, Password: password, IP: ip})
}

// LoginAttempt checks a password under the limits (see admit), for
// checks that start no session (a password change). It returns the
// identity, ErrInvalidCredentials, a *ThrottledError, ErrBusy when no
// hashing slot frees up in time, or an error wrapping store.ErrUnavailable:
// when Redis cannot count, the check fails closed.
func (s *Service) LoginAttempt(ctx context.Context, at Attempt) (Identity, error) {
	acct, err := s.account(ctx, at.Username)
	if err != nil {
		return Identity{}, err
	}
	g, err := s.admit(ctx, acct, at.IP, at.DeviceCookies)
	if err != nil {
		return Identity{}, err
	}
	who, err := s.authenticate(ctx, acct, at.Password)
	if err != nil {
		if !errors.Is(err, ErrInvalidCredentials) {
			g.void(ctx) // not the user's failure
		}
		return Identity{}, err
	}
	if err := g.succeed(ctx); err != nil {
		return Identity{}, err
	}
	return who, nil
}

// attempt is one attempt admitted under the limits: its failure was
// counted in advance, and it ends as a failure (nothing more to do),
// void or a success.
type attempt struct {
	s *Service
	// keys are the counters that took the attempt: the account's or the
	// device cookie's first (if the name was valid), the address's last.
	keys []string
	id   string
	// named reports whether keys[0] is the account's or device's.
	named bool
}

// admit counts an attempt (a password or a second-factor code) for the
// account acct from ip, carrying device cookies, under the limits, or
// refuses it with a *ThrottledError, or fails closed when Redis cannot
// count. A device cookie counts only at the account's current device
// epoch, which acct holds: no read of its own.
//
// Every attempt counts against its address's AttemptsPerIP. Failures
// count against the address (PerIP) and either the account (PerUser) or,
// when the attempt carries a valid device cookie for the account, that
// cookie alone (PerDevice): an attacker's failures from unknown clients
// lock the account for unknown clients only, and the owner's browser logs
// in as long as its own cookie's budget lasts.
func (s *Service) admit(ctx context.Context, acct account, ip netip.Addr, devices []string) (*attempt, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])

	block := addressBlock(ip)
	name := acct.name
	// Every attempt is counted, and never given back: it cost a hash
	// whatever its outcome.
	wait, err := s.throttle.Reserve(ctx, store.ThrottleIPAttemptsKey(block), id, s.limits.AttemptsPerIP, s.limits.Window)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	if wait > 0 {
		return nil, &ThrottledError{RetryAfter: wait, Limit: "ip-attempts", User: name}
	}

	// Count per canonical name, so "ａｌｉｃｅ" and "alice" share a
	// counter; a name that cannot be valid is counted by address only.
	var keys, kinds []string
	var limits []int
	if acct.valid {
		if nonce, ok := s.knownDevice(acct, devices); ok {
			keys, kinds, limits = append(keys, store.ThrottleDeviceKey(nonce)), append(kinds, "device"), append(limits, s.limits.PerDevice)
		} else {
			keys, kinds, limits = append(keys, store.ThrottleUserKey(name)), append(kinds, "user"), append(limits, s.limits.PerUser)
		}
	}
	keys, kinds, limits = append(keys, store.ThrottleIPKey(block)), append(kinds, "ip"), append(limits, s.limits.PerIP)

	for i, key := range keys {
		wait, err := s.throttle.Reserve(ctx, key, id, limits[i], s.limits.Window)
		if err == nil && wait == 0 {
			continue
		}
		// Refused (or Redis failed) part-way: give back what was taken.
		s.release(ctx, keys[:i], id)
		if err != nil {
			return nil, fmt.Errorf("login: %w", err)
		}
		if kinds[i] == "user" {
			s.noteLockout(ctx, name, wait)
		}
		return nil, &ThrottledError{RetryAfter: wait, Limit: kinds[i], User: name}
	}
	return &attempt{s: s, keys: keys, id: id, named: acct.valid}, nil
}

// void gives the attempt back: it was not the user's failure (Redis, a
// full hashing queue), or not a failure at all (a right password before
// a second step).
func (a *attempt) void(ctx context.Context) { a.s.release(ctx, a.keys, a.id) }

// succeed ends a login that succeeded: the failures of what was counted
// (the account, or this device cookie) are forgiven; a device's success
// leaves the account's count alone, or each login of the owner would hand
// an attacker a fresh budget. The address keeps its count minus this
// attempt, so one good login cannot launder spraying.
func (a *attempt) succeed(ctx context.Context) error {
	if a.named {
		if err := a.s.throttle.Reset(ctx, a.keys[0]); err != nil {
			return fmt.Errorf("login: %w", err)
		}
	}
	a.s.release(ctx, a.keys[len(a.keys)-1:], a.id)
	return nil
}

// maxDeviceCookies bounds how many well-formed device cookies of one
// request are checked (an HMAC each, per accepted key): a header full of
// planted cookies buys a bounded amount of work. Malformed ones cost no
// HMAC and do not count, so junk cannot hide the real cookie; only more
// than this many well-formed, unexpired forgeries before it can.
const maxDeviceCookies = 32

// knownDevice returns the nonce of a valid device cookie for acct at its
// current device epoch, wherever it stands among cookies. An account
// without a record has no devices.
func (s *Service) knownDevice(acct account, cookies []string) (string, bool) {
	if !acct.found {
		return "", false
	}
	now := time.Now()
	checked := 0
	for _, c := range cookies {
		if _, _, _, ok := parseDevice(c, now); !ok {
			continue // junk: no HMAC
		}
		if checked == maxDeviceCookies {
			break
		}
		checked++
		if nonce, err := s.devices.verify(c, acct.name, acct.user.DeviceEpoch, now); err == nil {
			return nonce, true
		}
	}
	return "", false
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

// noteLockout records the account's lockout, once per lockout: the first
// refusal of its window.
func (s *Service) noteLockout(ctx context.Context, name string, wait time.Duration) {
	if s.activity == nil {
		return
	}
	if first, err := s.throttle.NoteOnce(ctx, store.ThrottleLockoutKey(name), wait); err == nil && first {
		s.record(ctx, name, activity.LockoutStarted, map[string]string{"count": strconv.Itoa(s.limits.PerUser)})
	}
}
