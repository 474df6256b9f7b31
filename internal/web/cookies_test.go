package web

// The session cookie: its attributes with and without COOKIE_SECURE, that
// it carries no data, that only the cookie (never the URL or a form field)
// names a session, and that a cookie naming no usable session is a
// logged-out visitor.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/redistest"
	"loginsvc/internal/session"
	"loginsvc/internal/testkit"
)

func TestSessionCookie(t *testing.T) {
	t.Parallel()
	const lifetime = time.Hour
	ta := newTestApp(t, redistest.Start(t), withLifetime(lifetime))

	for _, tc := range []struct {
		name       string
		remember   bool
		persistent bool
	}{
		{"remember me unchecked", false, false},
		{"remember me checked", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t)
			before := time.Now()
			p := b.post(ta.url("/login/"), aliceForm(tc.remember))
			after := time.Now()
			if p.status != http.StatusSeeOther || p.cookie == nil {
				t.Fatalf("POST /login/: got status %d, cookie %v; want 303 with a cookie", p.status, p.cookie)
			}
			checkCookieAttributes(t, "login", p.cookie, tc.persistent, lifetime)

			// A view of an unchanged session saves nothing and sends no
			// cookie, idle timeout or not: the login's cookie stands.
			token := p.cookie.Value
			if p = b.get(ta.url("/")); p.status != http.StatusOK || p.cookie != nil {
				t.Fatalf("GET / right after login: got status %d, cookie %v; want 200 and no Set-Cookie", p.status, p.cookie)
			}
			// One that records activity (last seen a while ago) is saved,
			// but the browser's cookie stands: same token, same expiry.
			ta.backdateLastSeen(t, token, 2*session.LastSeenEvery)
			touched := time.Now()
			p = b.get(ta.url("/"))
			if p.status != http.StatusOK || p.cookie != nil {
				t.Fatalf("GET / with last seen long ago: got status %d, cookie %v; want 200 and no Set-Cookie", p.status, p.cookie)
			}
			if seen := ta.lastSeen(t, token); seen.Before(touched.Add(-time.Second)) {
				t.Fatalf("GET / with last seen long ago: stored last seen %v, want the touch at %v", seen, touched)
			}

			checkTokenCarriesNoData(t, token)
			checkStoredSession(t, ta, token, before, after)
		})
	}
}

// TestOnlyTheCheckboxValueMeansRememberMe: the login form's checkbox sends
// remember=1; any other value (remember=0 from a hand-written client, "on",
// "true") is not a request to be remembered, so the cookie ends with the
// browser session.
func TestOnlyTheCheckboxValueMeansRememberMe(t *testing.T) {
	t.Parallel()
	const lifetime = time.Hour
	ta := newTestApp(t, redistest.Start(t), withLifetime(lifetime))
	for _, tc := range []struct {
		value      string
		persistent bool
	}{
		{"1", true},
		{"0", false},
		{"on", false},
		{"true", false},
		{"yes", false},
		{"", false},
		{" 1", false},
		{"11", false},
	} {
		t.Run("remember="+tc.value, func(t *testing.T) {
			form := aliceForm(false)
			form.Set("remember", tc.value)
			p := newBrowser(t).post(ta.url("/login/"), form)
			if p.status != http.StatusSeeOther || p.cookie == nil {
				t.Fatalf("POST /login/ with remember=%q: got status %d, cookie %v; want 303 with a cookie", tc.value, p.status, p.cookie)
			}
			checkCookieAttributes(t, "login with remember="+tc.value, p.cookie, tc.persistent, lifetime)
		})
	}
}

// checkCookieFlags checks what every session cookie must say: HttpOnly,
// SameSite=Lax, Path=/, no Domain (which __Host- forbids), and Secure
// exactly when COOKIE_SECURE is on.
func checkCookieFlags(t *testing.T, step string, c *http.Cookie, secure bool) {
	t.Helper()
	if !c.HttpOnly {
		t.Errorf("%s: got cookie without HttpOnly, want HttpOnly", step)
	}
	if c.SameSite != http.SameSiteLaxMode {
		t.Errorf("%s: got SameSite %v, want Lax (%v)", step, c.SameSite, http.SameSiteLaxMode)
	}
	if c.Path != "/" {
		t.Errorf("%s: got Path %q, want %q", step, c.Path, "/")
	}
	if c.Domain != "" {
		t.Errorf("%s: got Domain %q, want none", step, c.Domain)
	}
	if c.Secure != secure {
		t.Errorf("%s: got Secure %v, want %v", step, c.Secure, secure)
	}
}

// checkCookieAttributes checks the flags of a session cookie without
// COOKIE_SECURE and that it lasts as the login asked: for the browser
// session, or for the lifetime.
func checkCookieAttributes(t *testing.T, step string, c *http.Cookie, persistent bool, lifetime time.Duration) {
	t.Helper()
	checkCookieFlags(t, step, c, false)
	if !persistent {
		if c.MaxAge != 0 || c.RawExpires != "" {
			t.Errorf("%s: got Max-Age %d, Expires %q; want neither (a browser-session cookie)", step, c.MaxAge, c.RawExpires)
		}
		return
	}
	low, high := int((lifetime - time.Minute).Seconds()), int(lifetime.Seconds())+2
	if c.MaxAge < low || c.MaxAge > high {
		t.Errorf("%s: got Max-Age %d, want about the lifetime (%d..%d)", step, c.MaxAge, low, high)
	}
	if until := time.Until(c.Expires); until < lifetime-time.Minute || until > lifetime+2*time.Second {
		t.Errorf("%s: got Expires %v (in %v), want about the lifetime %v from now", step, c.Expires, until, lifetime)
	}
}

func checkTokenCarriesNoData(t *testing.T, token string) {
	t.Helper()
	if len(token) != 43 || !session.ValidToken(token) {
		t.Fatalf("token %q: got %d chars, validToken %v; want a 43-char base64url token", token, len(token), session.ValidToken(token))
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 32 {
		t.Fatalf("token %q: decodes to %d bytes, %v; want 32 random bytes", token, len(raw), err)
	}
	forms := []string{aliceName}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		forms = append(forms, strings.TrimRight(enc.EncodeToString([]byte(aliceName)), "="))
	}
	for _, f := range forms {
		if strings.Contains(token, f) {
			t.Errorf("token %q: contains %q, want no user data", token, f)
		}
	}
	for _, f := range []string{aliceName, "username"} {
		if strings.Contains(string(raw), f) {
			t.Errorf("token %q: decoded bytes contain %q, want no user data", token, f)
		}
	}
	if json.Valid(raw) {
		t.Errorf("token %q: decodes to JSON %s, want random bytes", token, raw)
	}
}

// checkStoredSession reads the session from Redis as an operator would.
func checkStoredSession(t *testing.T, ta *testApp, token string, before, after time.Time) {
	t.Helper()
	ctx := context.Background()
	if ta.exists(t, "scs:session:"+token) {
		t.Errorf("Redis holds the plain token as a key, want only its hash")
	}
	raw, err := ta.check.Get(ctx, testkit.SessionKey(token)).Result()
	if err != nil {
		t.Fatalf("GET %s: %v", testkit.SessionKey(token), err)
	}
	var doc struct {
		Deadline time.Time      `json:"deadline"`
		Values   map[string]any `json:"values"`
	}
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatalf("stored session is not JSON: %v\n%s", err, raw)
	}
	str := func(k string) string { s, _ := doc.Values[k].(string); return s }
	if got := str("username"); got != aliceName {
		t.Errorf("stored username: got %q, want %q", got, aliceName)
	}
	loginAt, err := time.Parse(time.RFC3339Nano, str("login_at"))
	if err != nil || loginAt.Before(before.Add(-time.Second)) || loginAt.After(after.Add(time.Second)) {
		t.Errorf("stored login_at: got %q (%v), want an RFC 3339 time between %v and %v", str("login_at"), err, before, after)
	}
	if got := str("login_ip"); got != "127.0.0.1" {
		t.Errorf("stored login_ip: got %q, want %q", got, "127.0.0.1")
	}
	if got := str("user_agent"); got != testUserAgent {
		t.Errorf("stored user_agent: got %q, want %q", got, testUserAgent)
	}
	if doc.Deadline.IsZero() {
		t.Errorf("stored deadline: got none, want one; document:\n%s", raw)
	}
	if strings.Contains(raw, alicePassword) {
		t.Errorf("stored session contains the password")
	}
}

func TestUnusableCookiesMeanLoggedOut(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	live := ta.login(t, newBrowser(t), false)
	flipped := []byte(live)
	if flipped[0] == 'A' {
		flipped[0] = 'B'
	} else {
		flipped[0] = 'A'
	}

	for _, tc := range []struct {
		name   string
		cookie string // the whole Cookie header
	}{
		{"unknown well-formed token", testCookieName + "=" + randomToken(t)},
		{"stored hash presented as token", testCookieName + "=" + testkit.TokenHash(live)},
		{"live token with one character changed", testCookieName + "=" + string(flipped)},
		{"live token truncated", testCookieName + "=" + live[:42]},
		{"live token plus one character", testCookieName + "=" + live + "A"},
		{"live token with padding", testCookieName + "=" + live + "="},
		{"base64 of the username", testCookieName + "=" + base64.RawURLEncoding.EncodeToString([]byte(aliceName))},
		{"JSON naming the user", testCookieName + `={"username":"alice"}`},
		{"base64 of JSON naming the user", testCookieName + "=" + base64.RawURLEncoding.EncodeToString([]byte(`{"username":"alice","login_at":"2030-01-01T00:00:00Z"}`))},
		{"oversized 4 KB", testCookieName + "=" + strings.Repeat("A", 4096)},
		{"oversized, starting with the live token", testCookieName + "=" + live + strings.Repeat("A", 4096-len(live))},
		{"binary", testCookieName + "=" + "\x80\x81\xfe\xff" + strings.Repeat("\xc3", 39)},
		{"empty", testCookieName + "="},
		{"name without value", testCookieName},
		{"token under another cookie name", "session=" + live},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ta.keys(t)
			p := sendWithCookie(t, http.MethodGet, ta.url("/"), tc.cookie)
			if p.status != http.StatusOK {
				t.Fatalf("got status %d, want 200; body:\n%s", p.status, p.body)
			}
			if got := greeting(p.body); got != "Hello" {
				t.Fatalf("got greeting %q, want %q", got, "Hello")
			}
			if got := p.header.Values("Set-Cookie"); len(got) != 0 {
				t.Fatalf("got Set-Cookie %q, want none", got)
			}
			ta.wantNoNewKey(t, before)
		})
	}
	// None of that touched the real session.
	ta.wantGreeting(t, live, "Hello, alice")
}

func TestSecureCookieAndHSTS(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	const hostCookie = "__Host-session_id"
	for _, tc := range []struct {
		name   string
		opts   []appOption
		secure bool
	}{
		{"COOKIE_SECURE=true", []appOption{withCookie(hostCookie, true), withInstanceID("secure")}, true},
		{"COOKIE_SECURE=false", []appOption{withInstanceID("plain")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// No idle timeout: a logged-in page view then writes no cookie.
			ta := newTestApp(t, rs, append(tc.opts, withIdleTimeout(0))...)
			token := ta.login(t, newBrowser(t), false)
			cookie := ta.settings.cookieName + "=" + token
			steps := []struct {
				name string
				req  rawRequest
				// sets: the answer writes the session cookie.
				sets bool
			}{
				{"GET /", getRaw("/"), false},
				{"GET /login/", getRaw("/login/"), false},
				{"POST /login/", formPost("/login/", aliceForm(true)), true},
				{"GET / logged in", getRaw("/").with("Cookie", cookie), false},
				{"GET /no-such-page", getRaw("/no-such-page"), false},
				{"POST /logout/", rawRequest{method: http.MethodPost, path: "/logout/"}.with("Cookie", cookie), true},
			}
			for _, s := range steps {
				p := ta.send(t, s.req)
				hsts := p.header.Get("Strict-Transport-Security")
				if tc.secure && !strings.Contains(hsts, "max-age=") {
					t.Errorf("%s: got Strict-Transport-Security %q, want one with max-age", s.name, hsts)
				}
				if !tc.secure && hsts != "" {
					t.Errorf("%s: got Strict-Transport-Security %q, want none without COOKIE_SECURE", s.name, hsts)
				}
				lines := p.header.Values("Set-Cookie")
				if !s.sets {
					if len(lines) != 0 {
						t.Errorf("%s: got Set-Cookie %q, want none", s.name, lines)
					}
					continue
				}
				// A login also sets the device cookie, with the same flags
				// and prefix rules (checked here, its value in
				// TestLoginSetsADeviceCookie); a logout, the "logged out"
				// flash.
				second := map[string]string{
					"POST /login/":  strings.TrimSuffix(ta.settings.cookieName, testCookieName) + "device",
					"POST /logout/": flashCookie,
				}[s.name]
				if second != "" {
					if len(lines) != 2 {
						t.Fatalf("%s: got Set-Cookie %q, want the session cookie and %s", s.name, lines, second)
					}
					d, err := http.ParseSetCookie(lines[1])
					if err != nil {
						t.Fatalf("%s: got Set-Cookie %q, which does not parse: %v", s.name, lines[1], err)
					}
					if d.Name != second {
						t.Errorf("%s: got second cookie %q, want %q", s.name, d.Name, second)
					}
					checkCookieFlags(t, s.name+" ("+lines[1]+")", d, tc.secure)
					lines = lines[:1]
				}
				if len(lines) != 1 {
					t.Fatalf("%s: got Set-Cookie %q, want exactly one", s.name, lines)
				}
				c, err := http.ParseSetCookie(lines[0])
				if err != nil {
					t.Fatalf("%s: got Set-Cookie %q, which does not parse: %v", s.name, lines[0], err)
				}
				if c.Name != ta.settings.cookieName {
					t.Errorf("%s: got cookie %q, want %q", s.name, c.Name, ta.settings.cookieName)
				}
				if tc.secure && !strings.HasPrefix(c.Name, "__Host-") {
					t.Errorf("%s: got cookie name %q, want the __Host- prefix", s.name, c.Name)
				}
				checkCookieFlags(t, s.name+" ("+lines[0]+")", c, tc.secure)
			}
		})
	}
}

// TestSessionIDNotAcceptedFromURLOrForm: only the cookie carries the
// session; a token in the query or the form is ignored.
func TestSessionIDNotAcceptedFromURLOrForm(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	token := ta.login(t, newBrowser(t), false)

	for _, name := range []string{testCookieName, "session", "token"} {
		for _, path := range []string{"/?" + name + "=" + token, "/logout/?" + name + "=" + token} {
			p := ta.send(t, getRaw(path))
			if p.status != http.StatusOK || strings.Contains(p.body, aliceName) {
				t.Errorf("GET %s without a cookie: got status %d, alice named %v; want 200, not logged in", path, p.status, strings.Contains(p.body, aliceName))
			}
		}
		// Logging out "by form field" must not end alice's session.
		p := ta.send(t, formPost("/logout/", url.Values{name: {token}}))
		if p.status != http.StatusSeeOther {
			t.Errorf("POST /logout/ with form field %s: got status %d, want 303", name, p.status)
		}
		ta.wantGreeting(t, token, "Hello, alice")
		// Nor does a login form field adopt the token.
		p = ta.send(t, formPost("/login/", url.Values{"username": {aliceName}, "password": {"wrong"}, name: {token}}))
		if c := ta.sessionCookie(p); c != nil || p.status != http.StatusBadRequest {
			t.Errorf("POST /login/ wrong password with form field %s: got status %d, cookie %v; want 400 without a cookie", name, p.status, c)
		}
	}
	ta.wantGreeting(t, token, "Hello, alice")
}

// TestPlantedCookieCannotDefeatLogout: another service on the same host
// sets session_id=<43 Q's> with Path=/logout/, so the browser sends it
// before the real cookie. Logout must still end the real session.
func TestPlantedCookieCannotDefeatLogout(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	token := ta.login(t, newBrowser(t), false)
	planted := strings.Repeat("Q", 43)

	p := sendWithCookie(t, http.MethodPost, ta.url("/logout/"), testCookieName+"="+planted+"; "+testCookieName+"="+token)
	if p.status != http.StatusSeeOther {
		t.Fatalf("POST /logout/ with a planted cookie first: got status %d, want 303; body:\n%s", p.status, p.body)
	}
	if key := testkit.SessionKey(token); ta.exists(t, key) {
		t.Errorf("POST /logout/ with a planted cookie first: the real session's key %s still exists, want it deleted", key)
	}
	ta.wantGreeting(t, token, "Hello")
}

// TestPlantedSessionCannotStandInForTheVictims: an attacker's own valid
// session cookie sent beside the victim's does not log the victim's
// browser in as the attacker, whichever login is newer and whatever the
// cookie order: live sessions of two users mean nobody, on the pages, on
// /auth/verify and in Remote-User. Logout ends them all.
func TestPlantedSessionCannotStandInForTheVictims(t *testing.T) {
	t.Parallel()
	ta := newForwardApp(t)
	ta.addUser(t, bobName, bobPassword)
	older := ta.loginAs(t, newBrowser(t), bobName, bobPassword, "")
	time.Sleep(2 * time.Millisecond) // login_at has nanoseconds; keep the order certain
	victim := ta.login(t, newBrowser(t), false)
	time.Sleep(2 * time.Millisecond)
	// The attacker logs into his own account after the victim did.
	newer := ta.loginAs(t, newBrowser(t), bobName, bobPassword, "")

	for _, attacker := range []struct{ name, token string }{{"older", older}, {"newer", newer}} {
		for _, order := range [][2]string{{attacker.token, victim}, {victim, attacker.token}} {
			first := "attacker's"
			if order[0] == victim {
				first = "victim's"
			}
			what := "the attacker's " + attacker.name + " session, the " + first + " cookie first"
			header := testCookieName + "=" + order[0] + "; " + testCookieName + "=" + order[1]
			p := sendWithCookie(t, http.MethodGet, ta.url("/"), header)
			if got, want := greeting(p.body), "Hello"; p.status != http.StatusOK || got != want {
				t.Errorf("GET / with %s: got status %d, greeting %q; want 200, %q", what, p.status, got, want)
			}
			p = ta.send(t, forwarded("/auth/verify", "app.example.test", "/").with("Cookie", header))
			wantAnonymous(t, "GET /auth/verify with "+what, p, "https://app.example.test/login/?next="+url.QueryEscape("https://app.example.test/"))
		}
	}
	// The victim's own cookie alone still names the victim.
	ta.wantGreeting(t, victim, "Hello, "+aliceName)

	// Logout from such a browser ends every session it carried.
	p := sendWithCookie(t, http.MethodPost, ta.url("/logout/"), testCookieName+"="+newer+"; "+testCookieName+"="+victim)
	if p.status != http.StatusSeeOther {
		t.Fatalf("POST /logout/ with two users' live cookies: got status %d, want 303", p.status)
	}
	for name, token := range map[string]string{"attacker": newer, "victim": victim} {
		if key := testkit.SessionKey(token); ta.exists(t, key) {
			t.Errorf("POST /logout/ with two users' live cookies: the %s's key %s still exists, want it deleted", name, key)
		}
	}
}
