package web

// The security page and the second factors as their owner meets them:
// setting up an authenticator app, the recovery codes, and what Redis
// keeps of them. The helpers here (the phone, enrolment, the two-step
// login) are shared by every test of a second factor.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"image/png"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/auth"
	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// phone plays the user's authenticator app. The service accepts each
// time step once and at most one step ahead of its clock, so every code
// the phone gives is of a later step than the last one it gave, and never
// more than one step ahead of now.
type phone struct {
	t      testing.TB
	secret string
	last   int64 // the step of the last code given
}

// code is the next code the phone shows: of the current step, or of the
// next one when the current one was given already. A code of the current
// or the next step stays acceptable when the clock crosses a step
// boundary before the service checks it.
func (p *phone) code() string {
	p.t.Helper()
	step := max(p.last+1, auth.TOTPStep(time.Now()))
	if step > auth.TOTPStep(time.Now())+1 {
		p.t.Fatalf("phone: every acceptable step up to %d was used; the test needs fewer codes per 30 s", step-1)
	}
	p.last = step
	return p.codeOf(step)
}

// codeOf is the phone's code of step, without taking it: for a replay.
func (p *phone) codeOf(step int64) string {
	p.t.Helper()
	code, err := auth.TOTPCode(p.secret, time.Unix(step*int64(auth.TOTPPeriod/time.Second), 0))
	if err != nil {
		p.t.Fatalf("TOTPCode: %v", err)
	}
	return code
}

// wrong is a well-formed code that is the code of no step the service
// accepts now.
func (p *phone) wrong() string {
	p.t.Helper()
	now := auth.TOTPStep(time.Now())
	for c := 0; ; c++ {
		code := fmt.Sprintf("%06d", c)
		ok := true
		for s := now - 2; s <= now+2; s++ {
			ok = ok && code != p.codeOf(s)
		}
		if ok {
			return code
		}
	}
}

var (
	totpSecretTag    = regexp.MustCompile(`<code class="secret" id="totp-secret">([^<]*)</code>`)
	recoveryCodeList = regexp.MustCompile(`(?s)<ul class="codes" id="recovery-codes">(.*?)</ul>`)
	codeItem         = regexp.MustCompile(`<code>([^<]*)</code>`)
	totpEnabledTag   = regexp.MustCompile(`<p class="flash" role="status" id="totp-enabled" data-ended="(\d+)">`)
	codeErrorTag     = regexp.MustCompile(`<p class="error" role="alert" id="code-error">([^<]*)</p>`)
	methodTOTPTag    = regexp.MustCompile(`<section class="method" id="method-totp" data-enabled="(true|false)">`)
	methodRecovery   = regexp.MustCompile(`<section class="method" id="method-recovery" data-left="(\d+)">`)
)

// totpSecret is the secret the enrolment page shows for typing in,
// without the spaces between its groups.
func totpSecret(t testing.TB, body string) string {
	t.Helper()
	m := totpSecretTag.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("enrolment page: got no #totp-secret, want one; body:\n%s", body)
	}
	return strings.ReplaceAll(m[1], " ", "")
}

// recoveryCodes are the codes a recovery codes page shows.
func recoveryCodes(body string) []string {
	m := recoveryCodeList.FindStringSubmatch(body)
	if m == nil {
		return nil
	}
	var codes []string
	for _, c := range codeItem.FindAllStringSubmatch(m[1], -1) {
		codes = append(codes, c[1])
	}
	return codes
}

// codeError is the error message a code form shows, "" for none.
func codeError(body string) string {
	if m := codeErrorTag.FindStringSubmatch(body); m != nil {
		return html.UnescapeString(m[1])
	}
	return ""
}

// invalidCode is the English message of a wrong second-factor code.
var invalidCode = catalogText("en", msgInvalidCode)

// securityState is what the security page says: whether the
// authenticator app is on, and how many recovery codes are left ("" when
// the page shows no recovery codes).
func (ta *testApp) securityState(t testing.TB, b *browser) (totpOn bool, recoveryLeft string) {
	t.Helper()
	p := b.get(ta.url("/security/"))
	m := methodTOTPTag.FindStringSubmatch(p.body)
	if p.status != http.StatusOK || m == nil {
		t.Fatalf("GET /security/: got %d without #method-totp, want 200 with it; body:\n%s", p.status, p.body)
	}
	if r := methodRecovery.FindStringSubmatch(p.body); r != nil {
		recoveryLeft = r[1]
	}
	return m[1] == "true", recoveryLeft
}

// enrolTOTP sets up an authenticator app for the user b is logged in as
// (with a recent authentication) on ta, as a person does: the secret from
// the page into the phone, then the phone's first code. It returns the
// phone and the recovery codes shown.
func (ta *testApp) enrolTOTP(t testing.TB, b *browser) (*phone, []string) {
	t.Helper()
	p := b.get(ta.url("/security/totp/"))
	if p.status != http.StatusOK {
		t.Fatalf("GET /security/totp/: got %d, want 200; body:\n%s", p.status, p.body)
	}
	ph := &phone{t: t, secret: totpSecret(t, p.body)}
	p = b.post(ta.url("/security/totp/"), url.Values{"code": {ph.code()}})
	if codes := recoveryCodes(p.body); p.status != http.StatusOK || len(codes) != auth.RecoveryCodeCount {
		t.Fatalf("POST /security/totp/ with the phone's code: got %d with %d recovery codes, want 200 with %d; body:\n%s", p.status, len(codes), auth.RecoveryCodeCount, p.body)
	}
	return ph, recoveryCodes(p.body)
}

// newEnrolled logs a new browser in as alice on ta and sets up her
// authenticator app: the browser, still logged in, and her phone and
// recovery codes.
func (ta *testApp) newEnrolled(t testing.TB) (*browser, *phone, []string) {
	t.Helper()
	b := newBrowser(t)
	ta.login(t, b, false)
	ph, codes := ta.enrolTOTP(t, b)
	return b, ph, codes
}

// pendingCookieOf is the pending two-step login cookie p set, or nil.
func pendingCookieOf(p page) *http.Cookie { return cookieSet(p, pendingCookieBase) }

// passwordStep posts alice's right password from b, whose user has a
// second factor: 303 to the code page, a pending-login cookie and no
// session cookie. It returns the pending token.
func (ta *testApp) passwordStep(t testing.TB, b *browser) string {
	t.Helper()
	p := b.post(ta.url("/login/"), aliceForm(false))
	pending := pendingCookieOf(p)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/login/code/" || pending == nil || pending.Value == "" {
		t.Fatalf("POST /login/ (alice has a second factor): got %d to %q, Set-Cookie %q; want 303 to /login/code/ with a pending-login cookie", p.status, p.header.Get("Location"), p.header.Values("Set-Cookie"))
	}
	if c := ta.sessionCookie(p); c != nil {
		t.Fatalf("POST /login/ (alice has a second factor): got session cookie %s, want none before the second step", c)
	}
	return pending.Value
}

// secondStep posts code to the code page from b.
func (ta *testApp) secondStep(b *browser, form url.Values) page {
	return b.post(ta.url("/login/code/"), form)
}

// loginTwoStep logs b in as alice, password then code, and returns the
// session token.
func (ta *testApp) loginTwoStep(t testing.TB, b *browser, code string) string {
	t.Helper()
	ta.passwordStep(t, b)
	p := ta.secondStep(b, url.Values{"code": {code}})
	c := ta.sessionCookie(p)
	if p.status != http.StatusSeeOther || c == nil || c.Value == "" {
		t.Fatalf("POST /login/code/ with the right code: got %d, Set-Cookie %q; want 303 with a session cookie; body:\n%s", p.status, p.header.Values("Set-Cookie"), p.body)
	}
	return c.Value
}

// storedAMR is how the stored session of token says its user
// authenticated.
func (ta *testApp) storedAMR(t testing.TB, token string) []string {
	t.Helper()
	key := testkit.SessionKey(token)
	b, err := ta.check.Get(context.Background(), key).Bytes()
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	var doc struct {
		Values struct {
			AMR []string `json:"amr"`
		} `json:"values"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("stored session %s: %v", b, err)
	}
	return doc.Values.AMR
}

// pendingLoginKey is the Redis key of the pending two-step login whose
// browser holds token (the README's key layout: a hash of the token,
// never the token).
func pendingLoginKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "login-pending:" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// totpKey is the Redis key of user's authenticator app (README's key
// layout).
func totpKey(user string) string { return "user:{" + user + "}:totp" }

func TestEnrolAnAuthenticatorApp(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	b := newBrowser(t)
	ta.login(t, b, false)
	other := ta.login(t, newBrowser(t), false) // alice on another computer
	if on, left := ta.securityState(t, b); on || left != "" {
		t.Fatalf("security page before enrolment: got app on %v, recovery codes %q; want off and none", on, left)
	}

	p := b.get(ta.url("/security/totp/"))
	if p.status != http.StatusOK {
		t.Fatalf("GET /security/totp/: got %d, want 200; body:\n%s", p.status, p.body)
	}
	secret := totpSecret(t, p.body)
	if raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret); err != nil || len(raw) != 20 {
		t.Fatalf("enrolment page: got secret %q (%v), want 20 bytes in base32", secret, err)
	}
	if again := totpSecret(t, b.get(ta.url("/security/totp/")).body); again != secret {
		t.Errorf("enrolment page reloaded: got secret %q, want the same %q (the phone may have scanned it)", again, secret)
	}

	qr := b.get(ta.url("/security/totp/qr.png"))
	if qr.status != http.StatusOK || qr.header.Get("Content-Type") != "image/png" || !strings.Contains(qr.header.Get("Cache-Control"), "no-store") {
		t.Fatalf("GET /security/totp/qr.png: got %d, Content-Type %q, Cache-Control %q; want 200, image/png, no-store", qr.status, qr.header.Get("Content-Type"), qr.header.Get("Cache-Control"))
	}
	if img, err := png.Decode(strings.NewReader(qr.body)); err != nil || img.Bounds().Dx() < 100 {
		t.Fatalf("GET /security/totp/qr.png: got an image that does not decode as a PNG a phone can scan (%v)", err)
	}
	if p := sendWithCookie(t, http.MethodGet, ta.url("/security/totp/qr.png"), ""); p.status == http.StatusOK {
		t.Errorf("GET /security/totp/qr.png without a session: got 200, want a redirect to the login")
	}

	ph := &phone{t: t, secret: secret}
	p = b.post(ta.url("/security/totp/"), url.Values{"code": {ph.wrong()}})
	if p.status != http.StatusBadRequest || codeError(p.body) != invalidCode || totpSecret(t, p.body) != secret {
		t.Fatalf("POST /security/totp/ with a wrong code: got %d, error %q; want 400, %q and the same secret again; body:\n%s", p.status, codeError(p.body), invalidCode, p.body)
	}
	if on, _ := ta.securityState(t, b); on {
		t.Fatalf("security page after a wrong code: got the app on, want off")
	}

	before := b.tokenInJar(ta.url("/"))
	p = b.post(ta.url("/security/totp/"), url.Values{"code": {ph.code()}})
	codes := recoveryCodes(p.body)
	if p.status != http.StatusOK || len(codes) != auth.RecoveryCodeCount {
		t.Fatalf("POST /security/totp/ with the right code: got %d with %d recovery codes, want 200 with %d; body:\n%s", p.status, len(codes), auth.RecoveryCodeCount, p.body)
	}
	if distinct := slices.Compact(slices.Sorted(slices.Values(codes))); len(distinct) != len(codes) {
		t.Errorf("recovery codes: got duplicates in %q", codes)
	}
	if m := totpEnabledTag.FindStringSubmatch(p.body); m == nil || m[1] != "1" {
		t.Errorf("codes page: got enabled notice %v, want one saying 1 other session ended", m)
	}
	if on, left := ta.securityState(t, b); !on || left != "10" {
		t.Errorf("security page after enrolment: got app on %v, %q recovery codes left; want on and 10", on, left)
	}
	// A factor change ends the other sessions (ASVS 7.4.3), and this one
	// carries on under a new token that stands on two factors.
	ta.wantGreeting(t, other, "Hello")
	after := b.tokenInJar(ta.url("/"))
	if after == before {
		t.Errorf("after enrolment: the browser kept token %q, want a new one", before)
	}
	ta.wantGreeting(t, before, "Hello")
	ta.wantGreeting(t, after, "Hello, "+aliceName)
	if got := ta.storedAMR(t, after); !slices.Equal(got, []string{"pwd", "otp"}) {
		t.Errorf("session after enrolment: got amr %q, want [pwd otp]", got)
	}
	// Set up once: the enrolment page now leads to the security page.
	if p := b.get(ta.url("/security/totp/")); p.status != http.StatusSeeOther || p.header.Get("Location") != "/security/" {
		t.Errorf("GET /security/totp/ once enrolled: got %d to %q, want 303 to /security/", p.status, p.header.Get("Location"))
	}
}

// TestRecoveryCodes: a recovery code stands in for the app's code once;
// new codes make the old ones worthless.
func TestRecoveryCodes(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	owner, _, codes := ta.newEnrolled(t)

	b := newBrowser(t)
	ta.passwordStep(t, b)
	if p := b.get(ta.url("/login/code/?recovery=1")); p.status != http.StatusOK || !hasInput(p.body, "recovery", `value="1"`) {
		t.Fatalf("GET /login/code/?recovery=1: got %d without the recovery-code form; body:\n%s", p.status, p.body)
	}
	p := ta.secondStep(b, url.Values{"code": {strings.ToUpper(codes[0])}, "recovery": {"1"}})
	token := ta.sessionCookie(p)
	if p.status != http.StatusSeeOther || token == nil {
		t.Fatalf("POST /login/code/ with a recovery code: got %d, Set-Cookie %q; want 303 with a session", p.status, p.header.Values("Set-Cookie"))
	}
	wantFlash(t, "the page after a recovery-code login", b.get(ta.url(p.header.Get("Location"))), "recovery_used", "9")
	if got := ta.storedAMR(t, token.Value); !slices.Equal(got, []string{"pwd", "otp"}) {
		t.Errorf("session of a recovery-code login: got amr %q, want [pwd otp]", got)
	}
	if _, left := ta.securityState(t, owner); left != "9" {
		t.Errorf("security page after one recovery code: got %q left, want 9", left)
	}

	again := newBrowser(t)
	ta.passwordStep(t, again)
	if p := ta.secondStep(again, url.Values{"code": {codes[0]}, "recovery": {"1"}}); p.status != http.StatusBadRequest || codeError(p.body) != invalidCode || ta.sessionCookie(p) != nil {
		t.Fatalf("the same recovery code a second time: got %d, error %q; want 400, %q and no session", p.status, codeError(p.body), invalidCode)
	}

	p = owner.post(ta.url("/security/recovery/"), url.Values{})
	fresh := recoveryCodes(p.body)
	if p.status != http.StatusOK || len(fresh) != auth.RecoveryCodeCount {
		t.Fatalf("POST /security/recovery/: got %d with %d codes, want 200 with %d", p.status, len(fresh), auth.RecoveryCodeCount)
	}
	if _, left := ta.securityState(t, owner); left != "10" {
		t.Errorf("security page after new codes: got %q left, want 10", left)
	}
	if p := ta.secondStep(again, url.Values{"code": {codes[1]}, "recovery": {"1"}}); p.status != http.StatusBadRequest || ta.sessionCookie(p) != nil {
		t.Fatalf("an unused code of the old set after regeneration: got %d, want 400 and no session", p.status)
	}
	if p := ta.secondStep(again, url.Values{"code": {fresh[0]}, "recovery": {"1"}}); p.status != http.StatusSeeOther || ta.sessionCookie(p) == nil {
		t.Fatalf("a code of the new set: got %d, want 303 with a session; body:\n%s", p.status, p.body)
	}
}

// TestSecondFactorSecretsAreNotInRedis: a full dump of Redis while an
// enrolment waits, and after it with a login waiting for its code, holds
// neither the app's secret (in any common encoding) nor a recovery code.
func TestSecondFactorSecretsAreNotInRedis(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	b := newBrowser(t)
	ta.login(t, b, false)
	secret := totpSecret(t, b.get(ta.url("/security/totp/")).body)
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		t.Fatalf("secret %q is not base32: %v", secret, err)
	}
	forbidden := map[string][]byte{
		"secret (base32)":           []byte(secret),
		"secret (base32, lower)":    []byte(strings.ToLower(secret)),
		"secret (raw bytes)":        raw,
		"secret (hex)":              []byte(hex.EncodeToString(raw)),
		"secret (base64)":           []byte(base64.StdEncoding.EncodeToString(raw)),
		"secret (base64url)":        []byte(base64.RawURLEncoding.EncodeToString(raw)),
		"secret (grouped as shown)": []byte(auth.GroupSecret(secret)),
	}
	ta.wantNoneInRedis(t, "while the enrolment waits", forbidden)

	ph := &phone{t: t, secret: secret}
	p := b.post(ta.url("/security/totp/"), url.Values{"code": {ph.code()}})
	codes := recoveryCodes(p.body)
	if len(codes) != auth.RecoveryCodeCount {
		t.Fatalf("POST /security/totp/: got %d with %d recovery codes, want %d", p.status, len(codes), auth.RecoveryCodeCount)
	}
	for i, c := range codes {
		forbidden["recovery code "+strconv.Itoa(i+1)] = []byte(c)
		forbidden["recovery code "+strconv.Itoa(i+1)+" (normalised)"] = []byte(strings.ReplaceAll(c, "-", ""))
	}
	ta.passwordStep(t, newBrowser(t)) // a login waiting for its code
	ta.wantNoneInRedis(t, "after enrolment, a login pending", forbidden)
}

// wantNoneInRedis dumps every key and value in Redis and fails if any
// holds one of forbidden.
func (ta *testApp) wantNoneInRedis(t *testing.T, when string, forbidden map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	dump := map[string][]byte{}
	iter := ta.check.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		var values []string
		kind, err := ta.check.Type(ctx, key).Result()
		if err != nil {
			t.Fatalf("TYPE %s: %v", key, err)
		}
		switch kind {
		case "string":
			v, err := ta.check.Get(ctx, key).Result()
			if err != nil {
				t.Fatalf("GET %s: %v", key, err)
			}
			values = []string{v}
		case "hash":
			m, err := ta.check.HGetAll(ctx, key).Result()
			if err != nil {
				t.Fatalf("HGETALL %s: %v", key, err)
			}
			for k, v := range m {
				values = append(values, k, v)
			}
		case "set":
			values, err = ta.check.SMembers(ctx, key).Result()
		case "zset":
			values, err = ta.check.ZRange(ctx, key, 0, -1).Result()
		case "list":
			values, err = ta.check.LRange(ctx, key, 0, -1).Result()
		case "stream":
			msgs, err := ta.check.XRange(ctx, key, "-", "+").Result()
			if err != nil {
				t.Fatalf("XRANGE %s: %v", key, err)
			}
			for _, m := range msgs {
				for k, v := range m.Values {
					values = append(values, k, fmt.Sprint(v))
				}
			}
		case "none": // expired since SCAN named it
		default:
			t.Fatalf("key %s: type %s, want one the dump reads", key, kind)
		}
		if err != nil {
			t.Fatalf("read %s: %v", key, err)
		}
		dump[key] = []byte(strings.Join(append([]string{key}, values...), "\x00"))
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN: %v", err)
	}
	if len(dump) < 3 {
		t.Fatalf("%s: dumped only %d keys, want the user, the sessions and the factors", when, len(dump))
	}
	for key, data := range dump {
		for what, s := range forbidden {
			if bytes.Contains(data, s) {
				t.Errorf("%s: key %s holds the %s in clear", when, key, what)
			}
		}
	}
}

// TestRotatedDeviceKeyStillOpensSecrets: secrets sealed under the old
// DEVICE_COOKIE_KEY keep working on replicas given NEW,OLD, and are sealed
// again under NEW at their next use, so OLD can then be dropped. A
// replica with NEW alone cannot check the code, and must not let the
// password alone in.
func TestRotatedDeviceKeyStillOpensSecrets(t *testing.T) {
	t.Parallel()
	oldKey := []byte("loginsvc-web-test-old-device-key-32bytes")
	newKey := []byte("loginsvc-web-test-new-device-key-32bytes")
	rs := redistest.Start(t)
	before := newTestApp(t, rs, withDeviceKeys(oldKey), withInstanceID("old"))
	_, ph, _ := before.newEnrolled(t)
	sealedOld := before.sealedTOTP(t)

	newOnly := newTestApp(t, rs, withDeviceKeys(newKey), withInstanceID("new"))
	b := newBrowser(t)
	newOnly.passwordStep(t, b) // the factor is there even if it cannot be read
	p := newOnly.secondStep(b, url.Values{"code": {ph.codeOf(auth.TOTPStep(time.Now()) + 1)}})
	if p.status == http.StatusSeeOther || newOnly.sessionCookie(p) != nil {
		t.Fatalf("second step on a replica without the key that sealed the secret: got %d, Set-Cookie %q; want the login refused", p.status, p.header.Values("Set-Cookie"))
	}
	checkNoGoErrorText(t, "second step without the sealing key", p.body)
	if got := newOnly.sealedTOTP(t); got != sealedOld {
		t.Fatalf("after a second step without the sealing key: got sealed secret %q, want it untouched %q", got, sealedOld)
	}

	rotated := newTestApp(t, rs, withDeviceKeys(newKey, oldKey), withInstanceID("rotated"))
	token := rotated.loginTwoStep(t, newBrowser(t), ph.code())
	rotated.wantGreeting(t, token, "Hello, "+aliceName)
	sealedNew := rotated.sealedTOTP(t)
	if sealedNew == sealedOld {
		t.Fatalf("after a login on NEW,OLD: the secret is still sealed as %q, want it sealed again under NEW", sealedOld)
	}
	sealer, err := auth.NewSealer([][]byte{newKey})
	if err != nil {
		t.Fatalf("NewSealer(NEW): %v", err)
	}
	if got, _, err := sealer.Open(sealedNew, aliceName, auth.SealPurposeTOTP); err != nil || string(got) != ph.secret {
		t.Fatalf("the resealed secret under NEW alone: got %q (%v), want the phone's secret", got, err)
	}
}

// sealedTOTP is alice's authenticator app's secret as Redis holds it.
func (ta *testApp) sealedTOTP(t testing.TB) string {
	t.Helper()
	s, err := ta.check.HGet(context.Background(), totpKey(aliceName), "secret").Result()
	if err != nil {
		t.Fatalf("HGET %s secret: %v", totpKey(aliceName), err)
	}
	return s
}
