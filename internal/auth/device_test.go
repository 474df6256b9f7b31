package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"loginsvc/internal/session"
)

// testDeviceKey is DEVICE_COOKIE_KEY for the tests: 32 bytes.
var testDeviceKey = bytes.Repeat([]byte("k"), MinDeviceKeyBytes)

func newDeviceFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, session.Config{Lifetime: 12 * time.Hour}, Config{DeviceKey: testDeviceKey})
}

// lockOut makes PerUser failed logins for name, each from a different
// address, as an attacker who knows only the name would.
func (f *fixture) lockOut(t *testing.T, name string) {
	t.Helper()
	for i := range f.svc.limits.PerUser {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)})
		if _, err := f.svc.CheckPassword(context.Background(), name, "attacker's guess", ip); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("attacker's failure %d: got %v, want ErrInvalidCredentials", i+1, err)
		}
	}
}

// issueDevice returns a device cookie for name, as the web layer gets one
// after a successful login.
func (f *fixture) issueDevice(t *testing.T, name string) string {
	t.Helper()
	v, expires, err := f.svc.DeviceCookie(context.Background(), name)
	if err != nil {
		t.Fatalf("DeviceCookie(%q): %v", name, err)
	}
	if d := time.Until(expires); d < DeviceCookieLifetime-time.Minute || d > DeviceCookieLifetime {
		t.Fatalf("device cookie expires in %v, want %v", d, DeviceCookieLifetime)
	}
	return v
}

// epoch is name's device epoch as the store holds it.
func (f *fixture) epoch(t *testing.T, name string) string {
	t.Helper()
	u, err := f.svc.users.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Users.Get(%q): %v", name, err)
	}
	return u.DeviceEpoch
}

// v1DeviceCookie is a device cookie of format version 1 (no epoch), signed
// with key as the service signed them before epochs.
func v1DeviceCookie(key []byte, name, nonce, expiry string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("loginsvc-device-v1\x00" + name + "\x00" + nonce + "\x00" + expiry))
	return strings.Join([]string{"v1", nonce, expiry, base64.RawURLEncoding.EncodeToString(m.Sum(nil))}, ".")
}

// junk is n planted device cookies that cannot be valid, of every cheap
// kind: v1, bad nonce, expired, wrong shape.
func junk(n int) []string {
	kinds := []string{"v1.planted.1.x", "v2.x.9999999999." + strings.Repeat("A", deviceMACLen), "v2.AAAAAAAAAAAAAAAAAAAAAA.1." + strings.Repeat("A", deviceMACLen), "", "....", "v2.AAAAAAAAAAAAAAAAAAAAAA.9999999999.short"}
	out := make([]string, n)
	for i := range out {
		out[i] = kinds[i%len(kinds)]
	}
	return out
}

func repeat(v string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// The issue's attack: the account locked from many addresses. A login
// without a device cookie, even with the right password, stays refused; the
// owner's browser, which holds a device cookie from an earlier login, gets
// in. Someone else's cookie, a forged or an expired one counts as none.
func TestDeviceCookieLetsTheOwnerPastAnAccountLockout(t *testing.T) {
	f := newDeviceFixture(t)
	ctx := context.Background()
	f.addUser(t, "alice", "alice's long password")
	f.addUser(t, "bob", "bob's long password 2")
	owner := netip.MustParseAddr("192.0.2.7")
	alicesDevice := f.issueDevice(t, "alice")
	bobsDevice := f.issueDevice(t, "bob")

	f.lockOut(t, "alice")
	f.lockOut(t, "bob")

	// A service with another key: a cookie it signs is forged here.
	other := newFixtureWith(t, session.Config{Lifetime: time.Hour}, Config{DeviceKey: bytes.Repeat([]byte("x"), MinDeviceKeyBytes)})
	other.addUser(t, "alice", "alice's long password")
	forged := other.issueDevice(t, "alice")
	expiredNonce, expiry := "AAAAAAAAAAAAAAAAAAAAAA", "1000000000" // 2001
	expired := strings.Join([]string{deviceVersion, expiredNonce, expiry, f.svc.devices.mac("alice", f.epoch(t, "alice"), expiredNonce, expiry)}, ".")
	// A version 1 cookie, as issued before device epochs: well signed,
	// not expired, and still an unknown client now.
	v1 := v1DeviceCookie(testDeviceKey, "alice", "AAAAAAAAAAAAAAAAAAAAAA", "9999999999")
	parts := strings.Split(alicesDevice, ".")
	parts[2] = "9999999999" // a later expiry under the old MAC
	extended := strings.Join(parts, ".")

	for _, tc := range []struct {
		name    string
		user    string
		cookies []string
		ok      bool
	}{
		{"no device cookie", "alice", nil, false},
		{"bob's device cookie for alice", "alice", []string{bobsDevice}, false},
		{"alice's device cookie for bob", "bob", []string{alicesDevice}, false},
		{"a cookie signed with another key", "alice", []string{forged}, false},
		{"an expired cookie", "alice", []string{expired}, false},
		{"a version 1 cookie", "alice", []string{v1}, false},
		{"a cookie whose expiry was pushed back", "alice", []string{extended}, false},
		{"garbage", "alice", []string{"v1.x.y.z", "", "...."}, false},
		{"alice's device cookie", "alice", []string{alicesDevice}, true},
		{"alice's device cookie behind a planted one", "alice", []string{"v1.planted.1.x", alicesDevice}, true},
		{"alice's device cookie behind 8 junk ones", "alice", append(junk(8), alicesDevice), true},
		{"alice's device cookie behind 100 junk and 31 forged ones", "alice", append(append(junk(100), repeat(forged, maxDeviceCookies-1)...), alicesDevice), true},
		{"alice's device cookie behind 32 forged ones", "alice", append(repeat(forged, maxDeviceCookies), alicesDevice), false},
		{"bob's device cookie", "bob", []string{bobsDevice}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			password := tc.user + "'s long password"
			if tc.user == "bob" {
				password += " 2"
			}
			who, err := f.svc.LoginAttempt(ctx, Attempt{Username: tc.user, Password: password, IP: owner, DeviceCookies: tc.cookies})
			var throttled *ThrottledError
			switch {
			case tc.ok && (err != nil || who.Name != tc.user):
				t.Fatalf("got (%q, %v), want a login as %s", who.Name, err, tc.user)
			case !tc.ok && (!errors.As(err, &throttled) || throttled.Limit != "user"):
				t.Fatalf("got (%q, %v), want the account lockout (ThrottledError, limit user)", who.Name, err)
			}
		})
	}
	// The owner's success did not unlock the account for everyone else:
	// that would hand the attacker a fresh budget at each of the owner's
	// logins.
	var throttled *ThrottledError
	if _, err := f.svc.CheckPassword(ctx, "alice", "alice's long password", owner); !errors.As(err, &throttled) || throttled.Limit != "user" {
		t.Fatalf("after the owner's device login, a login without the cookie: got %v, want still the account lockout", err)
	}
}

// A stolen or guessed-at device cookie has its own failure budget: spent,
// it locks that cookie only, neither the account for other clients nor
// another device of the same user.
func TestDeviceCookiesFailureBudgetLocksThatCookieOnly(t *testing.T) {
	f := newDeviceFixture(t)
	ctx := context.Background()
	f.addUser(t, "alice", "alice's long password")
	stolen := f.issueDevice(t, "alice")
	owners := f.issueDevice(t, "alice")

	for i := range f.svc.limits.PerDevice {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)})
		_, err := f.svc.LoginAttempt(ctx, Attempt{Username: "alice", Password: "guess", IP: ip, DeviceCookies: []string{stolen}})
		if !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d with the stolen cookie: got %v, want ErrInvalidCredentials", i+1, err)
		}
	}
	ip := netip.MustParseAddr("192.0.2.7")
	var throttled *ThrottledError
	if _, err := f.svc.LoginAttempt(ctx, Attempt{Username: "alice", Password: "alice's long password", IP: ip, DeviceCookies: []string{stolen}}); !errors.As(err, &throttled) || throttled.Limit != "device" {
		t.Fatalf("right password with the spent cookie: got %v, want a ThrottledError on the device limit", err)
	}
	if who, err := f.svc.LoginAttempt(ctx, Attempt{Username: "alice", Password: "alice's long password", IP: ip, DeviceCookies: []string{owners}}); err != nil || who.Name != "alice" {
		t.Fatalf("the owner's other device: got (%q, %v), want a login", who.Name, err)
	}
	if who, err := f.svc.CheckPassword(ctx, "alice", "alice's long password", ip); err != nil || who.Name != "alice" {
		t.Fatalf("a client without a cookie: got (%q, %v), want a login (the account was never locked)", who.Name, err)
	}
}

// A device cookie stolen before a password change, a factor reset or the
// account's deletion and re-creation is an unknown client afterwards: no
// failure budget of its own past the account lockout. A cookie issued
// after the event counts.
func TestDeviceCookiesStopCountingWhenTheEpochMoves(t *testing.T) {
	const (
		password = "alice's long password"
		next     = "alice's new long password"
	)
	ip := netip.MustParseAddr("192.0.2.7")
	for _, tc := range []struct {
		name string
		// event happens to alice; it returns her password afterwards.
		event func(t *testing.T, f *fixture) string
	}{
		{"the operator sets the password", func(t *testing.T, f *fixture) string {
			if _, err := f.svc.SetPassword(context.Background(), "alice", next); err != nil {
				t.Fatalf("SetPassword: %v", err)
			}
			return next
		}},
		{"the owner changes the password", func(t *testing.T, f *fixture) string {
			if _, err := f.svc.ChangePassword(context.Background(), Attempt{Username: "alice", Password: password, IP: ip}, next); err != nil {
				t.Fatalf("ChangePassword: %v", err)
			}
			return next
		}},
		{"the operator resets the factors", func(t *testing.T, f *fixture) string {
			if _, err := f.svc.ResetFactors(context.Background(), "alice"); err != nil {
				t.Fatalf("ResetFactors: %v", err)
			}
			return password
		}},
		{"the user is deleted and created again", func(t *testing.T, f *fixture) string {
			if _, err := f.svc.DeleteUser(context.Background(), "alice"); err != nil {
				t.Fatalf("DeleteUser: %v", err)
			}
			f.addUser(t, "alice", password)
			return password
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newDeviceFixture(t)
			ctx := context.Background()
			f.addUser(t, "alice", password)
			stolen := f.issueDevice(t, "alice")
			before := f.epoch(t, "alice")

			now := tc.event(t, f)
			if after := f.epoch(t, "alice"); after == before {
				t.Fatalf("device epoch after the event: got %s, the same as before; want it moved", after)
			}
			f.lockOut(t, "alice")
			var throttled *ThrottledError
			if _, err := f.svc.LoginAttempt(ctx, Attempt{Username: "alice", Password: now, IP: ip, DeviceCookies: []string{stolen}}); !errors.As(err, &throttled) || throttled.Limit != "user" {
				t.Fatalf("the right password with a device cookie from before: got %v, want the account lockout (ThrottledError, limit user)", err)
			}
			fresh := f.issueDevice(t, "alice")
			if who, err := f.svc.LoginAttempt(ctx, Attempt{Username: "alice", Password: now, IP: ip, DeviceCookies: []string{stolen, fresh}}); err != nil || who.Name != "alice" {
				t.Fatalf("the right password with a device cookie from after: got (%q, %v), want a login", who.Name, err)
			}
		})
	}
}

func TestDeviceKeyMustBeLongEnough(t *testing.T) {
	for _, n := range []int{1, MinDeviceKeyBytes - 1} {
		if _, err := newDeviceSigner(make([]byte, n), nil); !errors.Is(err, ErrDeviceKeyTooShort) {
			t.Errorf("key of %d bytes: got %v, want ErrDeviceKeyTooShort", n, err)
		}
	}
	if _, err := newDeviceSigner(make([]byte, MinDeviceKeyBytes), nil); err != nil {
		t.Errorf("key of %d bytes: %v", MinDeviceKeyBytes, err)
	}
}

// Rotating DEVICE_COOKIE_KEY (NEW,OLD): the browsers known under the old
// key stay known, new cookies are signed with the new key alone, and once
// the old key is dropped its cookies count as none. A short old key is
// refused like a short current one.
func TestDeviceKeyRotation(t *testing.T) {
	oldKey, newKey := testDeviceKey, bytes.Repeat([]byte("n"), MinDeviceKeyBytes)
	signer := func(key []byte, old ...[]byte) deviceSigner {
		t.Helper()
		d, err := newDeviceSigner(key, old)
		if err != nil {
			t.Fatalf("newDeviceSigner: %v", err)
		}
		return d
	}
	before, during, after := signer(oldKey), signer(newKey, oldKey), signer(newKey)
	now := time.Now()
	issue := func(d deviceSigner) string {
		t.Helper()
		v, _, err := d.issue("alice", "7", now)
		if err != nil {
			t.Fatalf("issue: %v", err)
		}
		return v
	}
	known, fresh := issue(before), issue(during)
	for _, tc := range []struct {
		name   string
		signer deviceSigner
		cookie string
		user   string
		ok     bool
	}{
		{"a cookie of the old key, during the rotation", during, known, "alice", true},
		{"a cookie of the new key, during the rotation", during, fresh, "alice", true},
		{"a cookie of the old key, for another user", during, known, "bob", false},
		{"a cookie signed during the rotation, before it (new key only)", before, fresh, "alice", false},
		{"a cookie of the old key, once it is dropped", after, known, "alice", false},
		{"a cookie of the new key, once the old is dropped", after, fresh, "alice", true},
	} {
		if _, err := tc.signer.verify(tc.cookie, tc.user, "7", now); (err == nil) != tc.ok {
			t.Errorf("%s: got %v, want accepted = %v", tc.name, err, tc.ok)
		}
	}
	if _, err := newDeviceSigner(newKey, [][]byte{make([]byte, MinDeviceKeyBytes-1)}); !errors.Is(err, ErrDeviceKeyTooShort) {
		t.Errorf("an old key of %d bytes: got %v, want ErrDeviceKeyTooShort", MinDeviceKeyBytes-1, err)
	}
}

// Successful logins cost a hash and a session each, so they count too,
// in a separate and higher per-address limit.
func TestEveryAttemptCountsAgainstTheAddress(t *testing.T) {
	f := newFixtureWith(t, session.Config{Lifetime: 12 * time.Hour}, Config{Limits: Limits{AttemptsPerIP: 3}})
	ctx := context.Background()
	f.addUser(t, "alice", "alice's long password")
	ip := netip.MustParseAddr("192.0.2.7")
	for i := range 3 {
		if _, err := f.svc.CheckPassword(ctx, "alice", "alice's long password", ip); err != nil {
			t.Fatalf("login %d: %v", i+1, err)
		}
	}
	var throttled *ThrottledError
	if _, err := f.svc.CheckPassword(ctx, "alice", "alice's long password", ip); !errors.As(err, &throttled) || throttled.Limit != "ip-attempts" || throttled.RetryAfter <= 0 {
		t.Fatalf("4th login from one address: got %v, want a ThrottledError on the ip-attempts limit", err)
	}
	if _, err := f.svc.CheckPassword(ctx, "alice", "alice's long password", netip.MustParseAddr("192.0.2.8")); err != nil {
		t.Fatalf("a login from another address: %v", err)
	}
}

// With every hashing slot taken for longer than HashWait, a login is
// refused with ErrBusy at once instead of queueing, and its failure
// reservations are given back (it was not the user's failure).
func TestFullHashingQueueAnswersBusy(t *testing.T) {
	f := newFixtureWith(t, session.Config{Lifetime: 12 * time.Hour}, Config{HashConcurrency: 1, HashWait: 50 * time.Millisecond})
	ctx := context.Background()
	f.addUser(t, "alice", "alice's long password")
	if err := f.svc.hasher.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(f.svc.hasher.release) }
	t.Cleanup(release)

	start := time.Now()
	_, err := f.svc.CheckPassword(ctx, "alice", "alice's long password", netip.MustParseAddr("192.0.2.7"))
	if took := time.Since(start); !errors.Is(err, ErrBusy) || took > time.Second {
		t.Fatalf("login with the queue full: got %v after %v, want ErrBusy after about 50ms", err, took)
	}
	if n := f.client.ZCard(ctx, "throttle:user:{alice}").Val(); n != 0 {
		t.Errorf("failures counted for alice after a busy refusal: got %d, want 0", n)
	}
	release()
	if _, err := f.svc.CheckPassword(ctx, "alice", "alice's long password", netip.MustParseAddr("192.0.2.7")); err != nil {
		t.Fatalf("login once a slot is free: %v", err)
	}
}
