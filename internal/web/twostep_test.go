package web

// The login of a user with a second factor as a browser meets it: the
// password, then the code; the pending state between them, which is never
// a session; codes that work once on every replica; the throttle on
// codes; REQUIRE_TWO_FACTOR; and re-authentication before a sensitive
// action.

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/auth"
	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// loginExpired is the English message of a pending login that is gone.
var loginExpired = catalogText("en", "flash.login_expired")

// wantLoginExpired fails unless p is the login form saying the sign-in
// took too long, with no session.
func (ta *testApp) wantLoginExpired(t *testing.T, what string, p page, status int) {
	t.Helper()
	if p.status != status || !hasInput(p.body, "password") || ta.sessionCookie(p) != nil {
		t.Fatalf("%s: got %d, Set-Cookie %q; want %d with the login form and no session; body:\n%s", what, p.status, p.header.Values("Set-Cookie"), status, p.body)
	}
	wantFlash(t, what, p, "login_expired", "")
	if !strings.Contains(p.body, strings.ReplaceAll(loginExpired, "'", "&#39;")) {
		t.Errorf("%s: got no %q on the page", what, loginExpired)
	}
}

func TestTwoStepLogin(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	_, ph, _ := ta.newEnrolled(t)

	b := newBrowser(t)
	pending := ta.passwordStep(t, b)
	// The pending login is no session: not for pages, forward auth or the
	// API, whether sent as the browser sends it or as a session token.
	if p := b.get(ta.url("/sessions/")); p.status != http.StatusSeeOther || p.header.Get("Location") != "/login/?next=%2Fsessions%2F" {
		t.Errorf("GET /sessions/ between the steps: got %d to %q, want 303 to the login", p.status, p.header.Get("Location"))
	}
	if p := b.get(ta.url("/")); greeting(p.body) != "Hello" {
		t.Errorf("GET / between the steps: got greeting %q, want %q", greeting(p.body), "Hello")
	}
	if p := b.get(ta.url("/auth/verify")); p.status != http.StatusUnauthorized || p.header.Get("Remote-User") != "" {
		t.Errorf("GET /auth/verify between the steps: got %d, Remote-User %q; want 401 and no user", p.status, p.header.Get("Remote-User"))
	}
	if p := ta.send(t, bearer(getRaw("/api/whoami"), pending)); p.status != http.StatusUnauthorized {
		t.Errorf("GET /api/whoami with the pending token: got %d, want 401", p.status)
	}
	ta.wantGreeting(t, pending, "Hello")

	if p := b.get(ta.url("/login/code/")); p.status != http.StatusOK || !hasInput(p.body, "code") || !strings.Contains(p.body, aliceName) {
		t.Fatalf("GET /login/code/: got %d, want 200 with a code field for %s; body:\n%s", p.status, aliceName, p.body)
	}
	p := ta.secondStep(b, url.Values{"code": {ph.wrong()}})
	if p.status != http.StatusBadRequest || codeError(p.body) != invalidCode || ta.sessionCookie(p) != nil {
		t.Fatalf("a wrong code: got %d, error %q; want 400, %q and no session", p.status, codeError(p.body), invalidCode)
	}
	p = ta.secondStep(b, url.Values{"code": {ph.code()}})
	token := ta.sessionCookie(p)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/" || token == nil {
		t.Fatalf("the right code after a wrong one: got %d to %q, Set-Cookie %q; want 303 to / with a session", p.status, p.header.Get("Location"), p.header.Values("Set-Cookie"))
	}
	if c := pendingCookieOf(p); c == nil || c.MaxAge >= 0 {
		t.Errorf("the right code: got pending cookie %v, want it cleared", c)
	}
	if token.Value == pending {
		t.Errorf("the right code: the session token is the pending token, want a new one")
	}
	ta.wantGreeting(t, token.Value, "Hello, "+aliceName)
	if got := ta.storedAMR(t, token.Value); !slices.Equal(got, []string{"pwd", "otp"}) {
		t.Errorf("two-step session: got amr %q, want [pwd otp]", got)
	}
	if ta.exists(t, pendingLoginKey(pending)) {
		t.Errorf("after the login: the pending login %s is still in Redis, want it gone", pendingLoginKey(pending))
	}
	// Finished: the same pending cookie cannot finish a second login.
	if p := sendWithCookie(t, http.MethodGet, ta.url("/login/code/"), pendingCookieBase+"="+pending); !hasInput(p.body, "password") {
		t.Errorf("the code page with the finished pending token: got %d without the login form", p.status)
	}
}

// TestPendingLoginEnds: a pending login ends after five wrong codes, and
// when its time runs out; either way the browser is told once, in plain
// words, to start again, and no code finishes it.
func TestPendingLoginEnds(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	_, ph, _ := ta.newEnrolled(t)
	right := ph.code()

	b := newBrowser(t)
	pending := ta.passwordStep(t, b)
	for i := range 5 {
		p := ta.secondStep(b, url.Values{"code": {ph.wrong()}})
		if p.status != http.StatusBadRequest {
			t.Fatalf("wrong code %d: got %d, want 400", i+1, p.status)
		}
	}
	if ta.exists(t, pendingLoginKey(pending)) {
		t.Fatalf("after 5 wrong codes: the pending login is in Redis, want it gone")
	}
	ta.wantLoginExpired(t, "the right code after 5 wrong ones", ta.secondStep(b, url.Values{"code": {right}}), http.StatusBadRequest)

	for _, tc := range []struct {
		name string
		end  func(t *testing.T, key string)
	}{
		{"expired", func(t *testing.T, key string) {
			if err := ta.check.PExpire(context.Background(), key, time.Millisecond).Err(); err != nil {
				t.Fatalf("PEXPIRE %s: %v", key, err)
			}
			testkit.Eventually(t, key+" expired", 0, func() (bool, string) { return !ta.exists(t, key), "still there" })
		}},
		{"deleted", func(t *testing.T, key string) {
			if err := ta.check.Del(context.Background(), key).Err(); err != nil {
				t.Fatalf("DEL %s: %v", key, err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t)
			tc.end(t, pendingLoginKey(ta.passwordStep(t, b)))
			ta.wantLoginExpired(t, "GET /login/code/", b.get(ta.url("/login/code/")), http.StatusOK)
			p := ta.secondStep(b, url.Values{"code": {right}})
			ta.wantLoginExpired(t, "POST /login/code/", p, http.StatusBadRequest)
		})
	}
	// Nothing above used the right code: it still logs in.
	ta.loginTwoStep(t, newBrowser(t), right)
}

// waitForStepMargin returns once the current TOTP step has at least
// margin left, so that a test that names steps relative to now (the one
// before, the one after) finishes inside it.
func waitForStepMargin(t *testing.T, margin time.Duration) {
	t.Helper()
	now := time.Now()
	end := time.Unix((auth.TOTPStep(now)+1)*int64(auth.TOTPPeriod/time.Second), 0)
	if left := end.Sub(now); left < margin {
		time.Sleep(left + 50*time.Millisecond)
	}
}

// TestCodeReplayIsRefusedOnEveryReplica: a code accepted on one replica is
// refused on another within its 30 s, and so is a code of an earlier
// step, never used, once a later one was.
func TestCodeReplayIsRefusedOnEveryReplica(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	a := newTestApp(t, rs, withInstanceID("replica-a"))
	b := newTestApp(t, rs, withInstanceID("replica-b"))
	waitForStepMargin(t, 10*time.Second)
	now := auth.TOTPStep(time.Now())

	owner := newBrowser(t)
	a.login(t, owner, false)
	p := owner.get(a.url("/security/totp/"))
	ph := &phone{t: t, secret: totpSecret(t, p.body), last: now + 1}
	// Confirmed with the step before now's, as a phone a little slow does.
	if p := owner.post(a.url("/security/totp/"), url.Values{"code": {ph.codeOf(now - 1)}}); p.status != http.StatusOK {
		t.Fatalf("enrolment with the previous step's code: got %d, want 200", p.status)
	}

	onA, onB := newBrowser(t), newBrowser(t)
	a.passwordStep(t, onA)
	b.passwordStep(t, onB)
	code := ph.codeOf(now + 1)
	if p := a.secondStep(onA, url.Values{"code": {code}}); p.status != http.StatusSeeOther || a.sessionCookie(p) == nil {
		t.Fatalf("the code on replica a: got %d, want 303 with a session", p.status)
	}
	for _, tc := range []struct{ name, code string }{
		{"the same code on replica b", code},
		{"an unused code of an earlier step on replica b", ph.codeOf(now)},
	} {
		p := b.secondStep(onB, url.Values{"code": {tc.code}})
		if p.status != http.StatusBadRequest || codeError(p.body) != invalidCode || b.sessionCookie(p) != nil {
			t.Errorf("%s: got %d, error %q; want 400, %q and no session", tc.name, p.status, codeError(p.body), invalidCode)
		}
	}
	if got := auth.TOTPStep(time.Now()); got != now {
		t.Fatalf("the test ran into step %d, want all of it in %d (the margin was too short)", got, now)
	}
}

// TestCodeGuessesAreThrottled: wrong codes count against the account as
// wrong passwords do; past the limit the attacker, even with the
// password, gets 429 with Retry-After, while the owner's browser (its
// device cookie) still logs in.
func TestCodeGuessesAreThrottled(t *testing.T) {
	t.Parallel()
	const perUser, window = 3, 15 * time.Minute
	ta := newTestApp(t, redistest.Start(t), withLimits(auth.Limits{PerUser: perUser, PerIP: 50, Window: window}),
		withTrustedProxies(netip.MustParsePrefix("127.0.0.1/32")))
	owner, ph, _ := ta.newEnrolled(t)
	if p := owner.post(ta.url("/logout/"), url.Values{}); p.status != http.StatusSeeOther {
		t.Fatalf("owner's logout: got %d, want 303", p.status)
	}

	attacker := newBrowser(t)
	ta.passwordStep(t, attacker)
	for i := range perUser {
		if p := ta.secondStep(attacker, url.Values{"code": {ph.wrong()}}); p.status != http.StatusBadRequest {
			t.Fatalf("attacker's wrong code %d: got %d, want 400", i+1, p.status)
		}
	}
	p := ta.secondStep(attacker, url.Values{"code": {ph.wrong()}})
	ta.wantThrottled(t, "a code past the account's limit", p, window)
	ta.wantThrottled(t, "the password again from the attacker", attacker.post(ta.url("/login/"), aliceForm(false)), window)
	ta.wantThrottled(t, "the password from another address", ta.send(t, formPost("/login/", aliceForm(false)).with("X-Forwarded-For", "192.0.2.9")), window)

	token := ta.loginTwoStep(t, owner, ph.code())
	ta.wantGreeting(t, token, "Hello, "+aliceName)
}

// TestRequireTwoFactor: under REQUIRE_TWO_FACTOR a user without a second
// factor gets only as far as setting one up, on pages, forward auth and
// the API; afterwards everything works.
func TestRequireTwoFactor(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t), withRequireTwoFactor())
	b := newBrowser(t)
	p := b.post(ta.url("/login/"), aliceForm(false))
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/security/totp/?next=%2F" || ta.sessionCookie(p) == nil {
		t.Fatalf("login without a second factor: got %d to %q, want 303 to the enrolment with a session", p.status, p.header.Get("Location"))
	}
	ta.checkBrowserRedirects(t, b, "REQUIRE_TWO_FACTOR before enrolment", []redirectCase{
		{http.MethodGet, "/sessions/", http.StatusSeeOther, "/login/step-up/?next=%2Fsessions%2F"},
		{http.MethodGet, "/password/", http.StatusSeeOther, "/login/step-up/?next=%2Fpassword%2F"},
	})
	p = b.get(ta.url("/login/step-up/?next=%2Fsessions%2F"))
	if link := linkOf(p.body, "enrol-link"); p.status != http.StatusOK || link.Path != "/security/totp/" || link.Query().Get("next") != "/sessions/" {
		t.Errorf("the step-up page without a factor: got %d with enrolment link %q, want 200 with a link to /security/totp/ that returns to /sessions/", p.status, link)
	}
	p = b.get(ta.url("/auth/verify"))
	// Absolute, on the host asked: nginx serves a bare path in place.
	if p.status != http.StatusUnauthorized || p.header.Get("X-Auth-Login-URL") != ta.url("/login/step-up/") || p.header.Get("Remote-User") != "" {
		t.Errorf("verify before enrolment: got %d, X-Auth-Login-URL %q, Remote-User %q; want 401 to %s and no user", p.status, p.header.Get("X-Auth-Login-URL"), p.header.Get("Remote-User"), ta.url("/login/step-up/"))
	}
	wantJSONError(t, "verify before enrolment", p, "second_factor_required")
	sessions := len(ta.sessionKeys(t))
	p = ta.send(t, jsonPost("/api/login", aliceJSON("")))
	if p.status != http.StatusForbidden {
		t.Errorf("API login without a factor: got %d, want 403", p.status)
	}
	wantJSONError(t, "API login without a factor", p, "two_factor_enrolment_required")
	if got := len(ta.sessionKeys(t)); got != sessions {
		t.Errorf("API login without a factor: got %d sessions, want %d (none started)", got, sessions)
	}

	ph, _ := ta.enrolTOTP(t, b)
	if p := b.get(ta.url("/sessions/")); p.status != http.StatusOK {
		t.Errorf("GET /sessions/ after enrolment: got %d, want 200", p.status)
	}
	p = b.get(ta.url("/auth/verify"))
	if p.status != http.StatusOK || p.header.Get("Remote-User") != aliceName || p.header.Get("Remote-Auth-Methods") != "pwd otp" {
		t.Errorf("verify after enrolment: got %d, Remote-User %q, Remote-Auth-Methods %q; want 200, alice, %q", p.status, p.header.Get("Remote-User"), p.header.Get("Remote-Auth-Methods"), "pwd otp")
	}
	if p := ta.send(t, jsonPost("/api/login", aliceTOTPJSON(ph.code()))); p.status != http.StatusOK {
		t.Errorf("API login with the code after enrolment: got %d %s, want 200", p.status, p.body)
	}
}

// linkOf is the target of the link with id on a page, or an empty URL.
func linkOf(body, id string) *url.URL {
	m := regexp.MustCompile(`<a [^>]*href="([^"]*)" id="` + regexp.QuoteMeta(id) + `"`).FindStringSubmatch(body)
	if m == nil {
		return &url.URL{}
	}
	u, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		return &url.URL{}
	}
	return u
}

// checkBrowserRedirects is checkRedirects for the session of b.
func (ta *testApp) checkBrowserRedirects(t *testing.T, b *browser, why string, cases []redirectCase) {
	t.Helper()
	for _, tc := range cases {
		p := b.do(newRequest(t, tc.method, ta.url(tc.path), nil))
		if got := p.header.Get("Location"); p.status != tc.status || got != tc.location {
			t.Errorf("%s %s (%s): got %d to %q, want %d to %q", tc.method, tc.path, why, p.status, got, tc.status, tc.location)
		}
	}
}

// aliceTOTPJSON is alice's API login with an authenticator app's code.
func aliceTOTPJSON(code string) string {
	b, _ := json.Marshal(map[string]string{"username": aliceName, "password": alicePassword, "totp": code})
	return string(b)
}

// TestReauthenticationBeforeAPasswordChange: past REAUTH_MAX_AGE the
// password page sends the user to confirm it is them (the password, and
// the code for a user with an app), and back; the session carries on
// under a new token, the old one worthless.
func TestReauthenticationBeforeAPasswordChange(t *testing.T) {
	t.Parallel()
	const maxAge = 2 * time.Second
	for _, tc := range []struct {
		name   string
		enrol  bool
		refuse []url.Values // forms refused with 400
	}{
		{"password only", false, []url.Values{{"password": {"wrong-password-123"}}}},
		{"with an authenticator app", true, []url.Values{{"password": {"wrong-password-123"}}, {"password": {alicePassword}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := redistest.Start(t)
			// Set up on a replica of the default REAUTH_MAX_AGE, checked on
			// one where it is short; they share the sessions.
			setup := newTestApp(t, rs, withInstanceID("setup"))
			ta := newTestApp(t, rs, withReauthMaxAge(maxAge), withInstanceID("short"))
			b := newBrowser(t)
			setup.login(t, b, false)
			var ph *phone
			if tc.enrol {
				ph, _ = setup.enrolTOTP(t, b)
			}
			if p := b.get(ta.url("/password/")); p.status != http.StatusOK {
				t.Fatalf("GET /password/ just after the login: got %d, want 200", p.status)
			}
			time.Sleep(maxAge + 100*time.Millisecond)

			ta.checkBrowserRedirects(t, b, "past REAUTH_MAX_AGE", []redirectCase{
				{http.MethodGet, "/password/", http.StatusSeeOther, "/reauth/?next=%2Fpassword%2F"},
			})
			if p := b.get(ta.url("/reauth/?next=%2Fpassword%2F")); p.status != http.StatusOK || !hasInput(p.body, "password") || hasInput(p.body, "code") != tc.enrol {
				t.Fatalf("GET /reauth/: got %d, password field %v, code field %v; want 200, true, %v", p.status, hasInput(p.body, "password"), hasInput(p.body, "code"), tc.enrol)
			}
			old := b.tokenInJar(ta.url("/"))
			for _, form := range tc.refuse {
				form.Set("next", "/password/")
				if p := b.post(ta.url("/reauth/"), form); p.status != http.StatusBadRequest || ta.sessionCookie(p) != nil {
					t.Fatalf("POST /reauth/ %v: got %d, Set-Cookie %q; want 400 and no new cookie", form, p.status, p.header.Values("Set-Cookie"))
				}
			}
			form := url.Values{"password": {alicePassword}, "next": {"/password/"}}
			if tc.enrol {
				form.Set("code", ph.code())
			}
			p := b.post(ta.url("/reauth/"), form)
			c := ta.sessionCookie(p)
			if p.status != http.StatusSeeOther || p.header.Get("Location") != "/password/" || c == nil || c.Value == old {
				t.Fatalf("POST /reauth/ right: got %d to %q, Set-Cookie %q; want 303 back to /password/ with a new session token", p.status, p.header.Get("Location"), p.header.Values("Set-Cookie"))
			}
			if p := b.get(ta.url("/password/")); p.status != http.StatusOK || !hasInput(p.body, "new_password") {
				t.Errorf("GET /password/ after re-authentication: got %d, want 200 with the form", p.status)
			}
			if p := replay(t, http.MethodGet, ta.url("/password/"), old); p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), "/login/") {
				t.Errorf("GET /password/ with the token from before: got %d to %q, want 303 to the login", p.status, p.header.Get("Location"))
			}
			ta.wantGreeting(t, old, "Hello")
		})
	}
}
