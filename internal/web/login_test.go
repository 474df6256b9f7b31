package web

import (
	"loginsvc/internal/session"

	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/redistest"
)

// randomToken is a well-formed session token that names no session.
func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("rand.Read: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestLoginDoesNotAdoptAPlantedToken(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	if err := ta.auth.AddUser(ctx, "mallory", "mallory-password-1"); err != nil {
		t.Fatalf("AddUser(mallory): %v", err)
	}

	// The attacker's own, real session.
	attacker := newBrowser(t)
	p := attacker.post(ta.url("/login/"), url.Values{"username": {"mallory"}, "password": {"mallory-password-1"}})
	if p.status != http.StatusSeeOther || p.cookie == nil {
		t.Fatalf("POST /login/ as mallory: got status %d, cookie %v; want 303 with a cookie", p.status, p.cookie)
	}
	attackerToken := p.cookie.Value

	for _, tc := range []struct {
		name    string
		planted string
		// before is the greeting the planted cookie gets before the victim
		// logs in.
		before string
	}{
		{"random well-formed token", randomToken(t), "hello"},
		{"another login's live token", attackerToken, "hello mallory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ta.wantGreeting(t, tc.planted, tc.before)

			victim := newBrowser(t)
			victim.setToken(ta.url("/"), tc.planted)
			token := ta.login(t, victim, false)

			if token == tc.planted {
				t.Fatalf("after login: got the planted token %q back, want a fresh one", token)
			}
			if got := victim.tokenInJar(ta.url("/")); got != token {
				t.Fatalf("after login: browser holds %q, want the new token %q", got, token)
			}
			ta.wantGreeting(t, token, "hello alice")
			ta.wantGreeting(t, tc.planted, "hello")
			if ta.exists(t, sessionKey(tc.planted)) {
				t.Fatalf("after login: the planted token's key %s exists, want none", sessionKey(tc.planted))
			}
		})
	}
}

// A refused login must not tell whether the account exists. The form
// echoes the username, so the two bodies are compared for the SAME name:
// first while no such user exists, then after the user is created, with the
// same wrong password. Only the account's existence differs between the two
// requests, so any difference in the answer is an oracle.
func TestUnknownUserAndWrongPasswordLookTheSame(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	form := url.Values{"username": {"carol"}, "password": {"not-carols-password"}}

	unknown := sendForm(t, ta.url("/login/"), form)

	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	if err := ta.auth.AddUser(ctx, "carol", "carols-real-password"); err != nil {
		t.Fatalf("AddUser(carol): %v", err)
	}
	wrong := sendForm(t, ta.url("/login/"), form)

	for _, tc := range []struct {
		name string
		p    page
	}{{"unknown user", unknown}, {"wrong password", wrong}} {
		if tc.p.status != http.StatusBadRequest {
			t.Errorf("%s: got status %d, want 400", tc.name, tc.p.status)
		}
		if !strings.Contains(tc.p.body, invalidLogin) {
			t.Errorf("%s: got body without %q:\n%s", tc.name, invalidLogin, tc.p.body)
		}
		if got := tc.p.header.Values("Set-Cookie"); len(got) != 0 {
			t.Errorf("%s: got Set-Cookie %q, want none", tc.name, got)
		}
	}
	if unknown.body != wrong.body {
		t.Fatalf("bodies differ:\nunknown user:\n%s\nwrong password:\n%s", unknown.body, wrong.body)
	}
}

func sendForm(t *testing.T, rawURL string, form url.Values) page {
	t.Helper()
	return doRequest(t, newClient(t, nil), newRequest(t, http.MethodPost, rawURL, form))
}

func TestEveryRefusedLoginIsTheSame400(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	for _, tc := range []struct {
		name string
		form url.Values
	}{
		{"wrong password", url.Values{"username": {aliceName}, "password": {"wrong-password"}}},
		{"unknown user", url.Values{"username": {"nobody"}, "password": {alicePassword}}},
		{"empty password", url.Values{"username": {aliceName}, "password": {""}}},
		{"no fields", url.Values{}},
		{"malformed username", url.Values{"username": {"al{ice}*"}, "password": {alicePassword}}},
		{"oversized password", url.Values{"username": {aliceName}, "password": {strings.Repeat("x", 2000)}}},
		{"name with trailing space", url.Values{"username": {aliceName + " "}, "password": {alicePassword}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := sendForm(t, ta.url("/login/"), tc.form)
			if p.status != http.StatusBadRequest {
				t.Fatalf("got status %d, want 400; body:\n%s", p.status, p.body)
			}
			if !strings.Contains(p.body, invalidLogin) {
				t.Fatalf("got body without %q:\n%s", invalidLogin, p.body)
			}
			if got := p.header.Values("Set-Cookie"); len(got) != 0 {
				t.Fatalf("got Set-Cookie %q, want none", got)
			}
			if got := ta.sessionKeys(t); len(got) != 0 {
				t.Fatalf("got session keys %q after a refused login, want none", got)
			}
		})
	}
}

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

			// Every later response re-saves the session (idle timeout on)
			// and must keep the same choice.
			p = b.get(ta.url("/"))
			if p.cookie == nil {
				t.Fatalf("GET / after login with idle timeout: got no cookie refresh, want one")
			}
			checkCookieAttributes(t, "refresh", p.cookie, tc.persistent, lifetime)

			token := p.cookie.Value
			checkTokenCarriesNoData(t, token)
			checkStoredSession(t, ta, token, before, after)
		})
	}
}

func checkCookieAttributes(t *testing.T, step string, c *http.Cookie, persistent bool, lifetime time.Duration) {
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
	raw, err := ta.check.Get(ctx, sessionKey(token)).Result()
	if err != nil {
		t.Fatalf("GET %s: %v", sessionKey(token), err)
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
		{"stored hash presented as token", testCookieName + "=" + tokenHash(live)},
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
			keys := ta.dbsize(t)
			p := sendWithCookie(t, http.MethodGet, ta.url("/"), tc.cookie)
			if p.status != http.StatusOK {
				t.Fatalf("got status %d, want 200; body:\n%s", p.status, p.body)
			}
			if got := greeting(p.body); got != "hello" {
				t.Fatalf("got greeting %q, want %q", got, "hello")
			}
			if got := p.header.Values("Set-Cookie"); len(got) != 0 {
				t.Fatalf("got Set-Cookie %q, want none", got)
			}
			if got := ta.dbsize(t); got != keys {
				t.Fatalf("DBSIZE: got %d after the request, want %d (no new key)", got, keys)
			}
		})
	}
	// None of that touched the real session.
	ta.wantGreeting(t, live, "hello alice")
}

func TestTokensOfEndedSessionsMeanLoggedOut(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts []appOption
		end  func(t *testing.T, ta *testApp, token string)
	}{
		{
			name: "logged out",
			end: func(t *testing.T, ta *testApp, token string) {
				if p := replay(t, http.MethodPost, ta.url("/logout/"), token); p.status != http.StatusSeeOther {
					t.Fatalf("POST /logout/: got status %d, want 303", p.status)
				}
			},
		},
		{
			name: "past absolute lifetime",
			opts: []appOption{withLifetime(time.Second), withIdleTimeout(0)},
			end:  waitForKeyToExpire,
		},
		{
			name: "idle too long",
			opts: []appOption{withLifetime(time.Minute), withIdleTimeout(time.Second)},
			end:  waitForKeyToExpire,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ta := newTestApp(t, redistest.Start(t), tc.opts...)
			token := ta.login(t, newBrowser(t), false)
			tc.end(t, ta, token)

			keys := ta.dbsize(t)
			p := replay(t, http.MethodGet, ta.url("/"), token)
			if got := greeting(p.body); p.status != http.StatusOK || got != "hello" {
				t.Fatalf("GET / with the ended session's token: got status %d, greeting %q; want 200, %q", p.status, got, "hello")
			}
			if got := p.header.Values("Set-Cookie"); len(got) != 0 {
				t.Fatalf("got Set-Cookie %q, want none", got)
			}
			if got := ta.dbsize(t); got != keys {
				t.Fatalf("DBSIZE: got %d after the request, want %d (no new key)", got, keys)
			}
		})
	}
}

// waitForKeyToExpire waits until Redis has expired the session by itself.
func waitForKeyToExpire(t *testing.T, ta *testApp, token string) {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for ta.exists(t, sessionKey(token)) {
		if time.Now().After(deadline) {
			t.Fatalf("session key %s still exists after %v, want it expired", sessionKey(token), hangBound)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A session that Redis still holds but whose absolute lifetime has passed
// (SESSION_LIFETIME was shortened since it was created) ends on its next
// use, on the replica that knows the shorter lifetime.
func TestShortenedLifetimeEndsOlderSessions(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	long := newTestApp(t, rs, withLifetime(time.Hour), withIdleTimeout(0))
	token := long.login(t, newBrowser(t), false)

	short := newTestApp(t, rs, withLifetime(500*time.Millisecond), withIdleTimeout(0))
	time.Sleep(time.Second)
	if !short.exists(t, sessionKey(token)) {
		t.Fatalf("precondition: key %s gone, want Redis to still hold it (lifetime 1h when saved)", sessionKey(token))
	}

	short.wantGreeting(t, token, "hello")
	if short.exists(t, sessionKey(token)) {
		t.Fatalf("after use past the shortened lifetime: key %s exists, want it deleted", sessionKey(token))
	}
	long.wantGreeting(t, token, "hello")
}
