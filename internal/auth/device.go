package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Device cookies, after OWASP's "Slow Down Online Guessing Attacks with
// Device Cookies": a browser that has logged in as a user gets a signed
// cookie naming that login. Attempts that present a valid one for the
// user being logged in are counted per cookie instead of against the
// account, so an attacker who locks the account from untrusted clients
// does not lock out the owner's known browser.
//
// The cookie value is "v2.NONCE.EXPIRY.MAC": NONCE 16 random bytes
// (base64url), EXPIRY Unix seconds, MAC base64url(HMAC-SHA256(key,
// "loginsvc-device-v2" NUL NAME NUL EPOCH NUL NONCE NUL EXPIRY)). The
// username and the user's device epoch (store.User.DeviceEpoch, digits)
// are bound by the MAC, not written in the cookie (a name cannot hold NUL,
// so the fields cannot run into each other); the cookie holds no session
// data and outlives any session. A password change, a factor reset or a
// delete moves the epoch, so every device cookie issued before stops
// counting: a stolen one no longer has a failure budget of its own.
//
// Version 1 cookies (no epoch) are not accepted: a browser holding one is
// an unknown client until its next login, which issues a v2 cookie.

// DeviceCookieLifetime is how long a device cookie is honoured after the
// successful login that issued it. Each successful login issues a fresh
// one, so a browser used at least monthly stays known.
const DeviceCookieLifetime = 30 * 24 * time.Hour

// MinDeviceKeyBytes is the shortest DEVICE_COOKIE_KEY accepted: the key of
// an HMAC-SHA256 should be as long as its output.
const MinDeviceKeyBytes = 32

// ErrDeviceKeyTooShort means a device cookie key has fewer than
// MinDeviceKeyBytes bytes.
var ErrDeviceKeyTooShort = fmt.Errorf("device cookie key must be at least %d bytes", MinDeviceKeyBytes)

const (
	deviceVersion  = "v2"
	deviceMACLabel = "loginsvc-device-v2"
	deviceNonceLen = 16
)

// deviceSigner issues device cookies with one key and accepts those of
// that key and of the keys it replaced, shared by every replica.
type deviceSigner struct {
	key []byte
	// old are keys still accepted, never used to sign: after a rotation,
	// the browsers that logged in before keep their standing until their
	// cookie expires or the operator drops the old key.
	old [][]byte
}

func newDeviceSigner(key []byte, old [][]byte) (deviceSigner, error) {
	if len(key) == 0 {
		if len(old) > 0 {
			return deviceSigner{}, errors.New("device cookie keys: old keys without a current one")
		}
		// No key configured: the command-line tools and tests, which
		// issue no cookie another process must accept.
		key = make([]byte, MinDeviceKeyBytes)
		if _, err := rand.Read(key); err != nil {
			return deviceSigner{}, fmt.Errorf("device cookie key: %w", err)
		}
	}
	d := deviceSigner{key: append([]byte(nil), key...)}
	for _, k := range append([][]byte{key}, old...) {
		if len(k) < MinDeviceKeyBytes {
			return deviceSigner{}, ErrDeviceKeyTooShort
		}
	}
	for _, k := range old {
		d.old = append(d.old, append([]byte(nil), k...))
	}
	return d, nil
}

func (d deviceSigner) mac(name, epoch, nonce, expiry string) string {
	return deviceMAC(d.key, name, epoch, nonce, expiry)
}

func deviceMAC(key []byte, name, epoch, nonce, expiry string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(deviceMACLabel + "\x00" + name + "\x00" + epoch + "\x00" + nonce + "\x00" + expiry))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// signedByAny reports whether mac is the MAC of the fields under the
// current key or an old one, each compared in constant time.
func (d deviceSigner) signedByAny(mac, name, epoch, nonce, expiry string) bool {
	ok := hmac.Equal([]byte(mac), []byte(d.mac(name, epoch, nonce, expiry)))
	for _, k := range d.old {
		ok = hmac.Equal([]byte(mac), []byte(deviceMAC(k, name, epoch, nonce, expiry))) || ok
	}
	return ok
}

// issue returns a new device cookie value for the canonical name at the
// user's device epoch, valid until the returned time.
func (d deviceSigner) issue(name, epoch string, now time.Time) (string, time.Time, error) {
	b := make([]byte, deviceNonceLen)
	if _, err := rand.Read(b); err != nil {
		return "", time.Time{}, fmt.Errorf("device cookie nonce: %w", err)
	}
	nonce := base64.RawURLEncoding.EncodeToString(b)
	expires := now.Add(DeviceCookieLifetime).Truncate(time.Second)
	expiry := strconv.FormatInt(expires.Unix(), 10)
	return strings.Join([]string{deviceVersion, nonce, expiry, d.mac(name, epoch, nonce, expiry)}, "."), expires, nil
}

var errNoDevice = errors.New("no valid device cookie")

// deviceMACLen is the length of a MAC in a cookie: 32 bytes, base64url.
const deviceMACLen = 43

// parseDevice splits value into its nonce, expiry and MAC if it has the
// shape of a current device cookie that has not expired at now, without
// any HMAC: junk, a v1 cookie or an expired one costs a split and a few
// comparisons. The expiry is believed only once the MAC is checked
// (verify); here it only spares the HMAC of a cookie refused either way.
func parseDevice(value string, now time.Time) (nonce, expiry, mac string, ok bool) {
	parts := strings.Split(value, ".")
	if len(parts) != 4 || parts[0] != deviceVersion || len(parts[3]) != deviceMACLen {
		return "", "", "", false
	}
	nonce, expiry, mac = parts[1], parts[2], parts[3]
	if raw, err := base64.RawURLEncoding.DecodeString(nonce); err != nil || len(raw) != deviceNonceLen {
		return "", "", "", false
	}
	secs, err := strconv.ParseInt(expiry, 10, 64)
	if err != nil || !now.Before(time.Unix(secs, 0)) {
		return "", "", "", false
	}
	return nonce, expiry, mac, true
}

// verify returns the nonce of value if it is a device cookie this key
// signed for the canonical name at the user's current device epoch and it
// has not expired at now. Anything else (another user's cookie, one from
// before a password change, a v1, forged, altered or expired one) is
// errNoDevice: the attempt is treated as coming from an unknown client.
func (d deviceSigner) verify(value, name, epoch string, now time.Time) (string, error) {
	nonce, expiry, mac, ok := parseDevice(value, now)
	if !ok {
		return "", errNoDevice
	}
	// In constant time; the expiry parseDevice read is signed too.
	if !d.signedByAny(mac, name, epoch, nonce, expiry) {
		return "", errNoDevice
	}
	return nonce, nil
}

// DeviceCookie returns a new device cookie value for the user name (a
// canonical name), at the user's current device epoch, and when it
// expires; store.ErrUserNotFound when there is no such user. A login
// issues its own (LoginResult.Device); this is for tools and tests.
func (s *Service) DeviceCookie(ctx context.Context, name string) (value string, expires time.Time, err error) {
	u, err := s.users.Get(ctx, name)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("device cookie of %q: %w", name, err)
	}
	return s.devices.issue(name, u.DeviceEpoch, time.Now())
}
