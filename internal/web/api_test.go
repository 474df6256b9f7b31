package web

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/auth"
	"loginsvc/internal/redistest"
	"loginsvc/internal/session"
)

// jsonPost is a POST of body to path as application/json.
func jsonPost(path, body string) rawRequest {
	return rawRequest{method: http.MethodPost, path: path, header: map[string]string{"Content-Type": "application/json"}, body: body}
}

// aliceJSON is alice's login as JSON; password "" sends alicePassword.
func aliceJSON(password string) string {
	if password == "" {
		password = alicePassword
	}
	b, _ := json.Marshal(map[string]string{"username": aliceName, "password": password})
	return string(b)
}

// apiLogin logs alice in through POST /api/login and returns the token.
func (ta *testApp) apiLogin(t *testing.T) string {
	t.Helper()
	p := ta.send(t, jsonPost("/api/login", aliceJSON("")))
	var got apiLoginResponse
	if p.status != http.StatusOK || json.Unmarshal([]byte(p.body), &got) != nil || !session.ValidToken(got.Token) || len(got.SessionID) != 16 {
		t.Fatalf("POST /api/login: got %d %s, want 200 with a token and a session id", p.status, p.body)
	}
	if c := p.header.Values("Set-Cookie"); len(c) > 0 {
		t.Fatalf("POST /api/login: got Set-Cookie %q, want none", c)
	}
	if want := time.Now().Add(ta.settings.lifetime); got.ExpiresAt.Before(want.Add(-time.Minute)) || got.ExpiresAt.After(want.Add(time.Minute)) {
		t.Errorf("POST /api/login: expires_at %v, want about login + lifetime (%v)", got.ExpiresAt, want)
	}
	return got.Token
}

// wantJSONError fails unless p is a JSON error with code.
func wantJSONError(t *testing.T, what string, p page, code string) {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal([]byte(p.body), &got); err != nil || got["error"] != code || !strings.HasPrefix(p.header.Get("Content-Type"), "application/json") {
		t.Errorf("%s: got %d, Content-Type %q, body %q; want JSON {\"error\": %q}", what, p.status, p.header.Get("Content-Type"), p.body, code)
	}
	checkNoGoErrorText(t, what, p.body)
}

func bearer(r rawRequest, token string) rawRequest { return r.with("Authorization", "Bearer "+token) }

func TestAPILoginWhoamiLogout(t *testing.T) {
	ta := newTestApp(t, redistest.Start(t))
	token := ta.apiLogin(t)

	p := ta.send(t, bearer(getRaw("/api/whoami"), token))
	var who whoamiResponse
	if p.status != http.StatusOK || json.Unmarshal([]byte(p.body), &who) != nil || who.User != aliceName || len(who.SessionID) != 16 {
		t.Fatalf("GET /api/whoami: got %d %s, want 200 naming %s", p.status, p.body, aliceName)
	}
	if who.CreatedAt.IsZero() || !who.IdleExpiresAt.After(time.Now()) || who.IdleExpiresAt.After(who.ExpiresAt) {
		t.Errorf("GET /api/whoami: created %v, idle expiry %v, expiry %v; want a login time and an idle deadline before the absolute one", who.CreatedAt, who.IdleExpiresAt, who.ExpiresAt)
	}

	// A cookie is never a bearer token's stand-in, nor the reverse.
	cookie := ta.login(t, newBrowser(t), false)
	for _, tc := range []struct {
		name string
		req  rawRequest
	}{
		{"no credentials", getRaw("/api/whoami")},
		{"a browser's cookie", getRaw("/api/whoami").with("Cookie", testCookieName+"="+cookie)},
		{"a browser's cookie as a bearer token", bearer(getRaw("/api/whoami"), cookie)},
		{"an unknown token", bearer(getRaw("/api/whoami"), randomToken(t))},
		{"a malformed token", getRaw("/api/whoami").with("Authorization", "Bearer x")},
		{"the token in Basic", getRaw("/api/whoami").with("Authorization", "Basic "+token)},
		{"logout with a cookie", jsonPost("/api/logout", "").with("Cookie", testCookieName+"="+cookie)},
	} {
		p := ta.send(t, tc.req)
		if p.status != http.StatusUnauthorized {
			t.Errorf("%s: got %d, want 401", tc.name, p.status)
		}
		wantJSONError(t, tc.name, p, "unauthorized")
	}
	if p := sendWithCookie(t, http.MethodGet, ta.url("/"), testCookieName+"="+token); greeting(p.body) != "Hello" {
		t.Errorf("GET / with the API token as the cookie: got greeting %q, want %q (a page must not ride a script's token)", greeting(p.body), "Hello")
	}
	ta.wantGreeting(t, cookie, "Hello, "+aliceName) // the refused logout ended nothing

	if p := ta.send(t, bearer(jsonPost("/api/logout", ""), token)); p.status != http.StatusNoContent {
		t.Fatalf("POST /api/logout: got %d %s, want 204", p.status, p.body)
	}
	if p := ta.send(t, bearer(getRaw("/api/whoami"), token)); p.status != http.StatusUnauthorized {
		t.Errorf("GET /api/whoami after logout: got %d, want 401", p.status)
	}
}

// TestAPISessionOnTheSessionsPage: the token is a session like the
// browser's, labelled as an API session; signing it out there rejects the
// token at once, on another replica too.
func TestAPISessionOnTheSessionsPage(t *testing.T) {
	rs := redistest.Start(t)
	a, b := newTestApp(t, rs, withInstanceID("replica-a")), newTestApp(t, rs, withInstanceID("replica-b"))
	token := a.apiLogin(t)
	var who whoamiResponse
	if p := b.send(t, bearer(getRaw("/api/whoami"), token)); json.Unmarshal([]byte(p.body), &who) != nil || who.User != aliceName {
		t.Fatalf("whoami on the other replica: got %d %s", p.status, p.body)
	}

	for _, lang := range []struct{ code, label string }{{"en", "API session"}, {"zh", "API 令牌"}} {
		br := newBrowser(t)
		a.login(t, br, false)
		page := br.getIn(a.url("/sessions/"), lang.code)
		if item := sessionItem(t, page.body, who.SessionID); !strings.Contains(item, `data-kind="api"`) || !strings.Contains(item, lang.label) {
			t.Errorf("sessions page (%s): the API session's row lacks the label %q:\n%s", lang.code, lang.label, item)
		}
		if lang.code == "zh" {
			a.revokeVia(t, br, who.SessionID)
		}
	}
	for _, r := range []*testApp{a, b} {
		if p := r.send(t, bearer(getRaw("/api/whoami"), token)); p.status != http.StatusUnauthorized {
			t.Errorf("whoami on %s after the revoke: got %d, want 401", r.settings.instanceID, p.status)
		}
		if p := r.send(t, bearer(getRaw("/auth/verify"), token)); p.status != http.StatusUnauthorized {
			t.Errorf("verify on %s after the revoke: got %d, want 401", r.settings.instanceID, p.status)
		}
	}
}

// TestAPIErrorsAreJSON: whatever goes wrong under /api/ and /auth/, the
// answer is a JSON code with the right status, never a page.
func TestAPIErrorsAreJSON(t *testing.T) {
	ta := newTestApp(t, redistest.Start(t), withLimits(auth.Limits{PerUser: 2, PerIP: 50, Window: time.Minute}))
	for _, tc := range []struct {
		name   string
		req    rawRequest
		status int
		code   string
	}{
		{"wrong password", jsonPost("/api/login", aliceJSON("wrong-password-123")), 401, "invalid_credentials"},
		{"wrong password again, a newline after the JSON", jsonPost("/api/login", aliceJSON("wrong-password-456")+"\n"), 401, "invalid_credentials"},
		{"unknown user", jsonPost("/api/login", `{"username":"nobody","password":"whatever-it-is"}`), 401, "invalid_credentials"},
		{"not JSON", jsonPost("/api/login", `username=alice`), 400, "bad_request"},
		// Refused before the password is checked: neither counts as a
		// failure toward the lockout below.
		{"JSON, then more", jsonPost("/api/login", aliceJSON("")+"xyz"), 400, "bad_request"},
		{"two JSON objects", jsonPost("/api/login", aliceJSON("")+aliceJSON("")), 400, "bad_request"},
		{"a form's content type", jsonPost("/api/login", aliceJSON("")).with("Content-Type", "application/x-www-form-urlencoded"), 415, "unsupported_media_type"},
		{"no content type", rawRequest{method: http.MethodPost, path: "/api/login", body: aliceJSON("")}, 415, "unsupported_media_type"},
		{"too large", jsonPost("/api/login", `{"username":"`+strings.Repeat("a", 8<<10)+`"}`), 413, "too_large"},
		{"unknown path", getRaw("/api/nothing"), 404, "not_found"},
		{"unknown auth path", getRaw("/auth/nothing"), 404, "not_found"},
		{"the API's root without its slash", getRaw("/api"), 404, "not_found"},
		{"forward auth's root without its slash", getRaw("/auth"), 404, "not_found"},
		{"GET of login", getRaw("/api/login"), 405, "method_not_allowed"},
		{"POST of whoami", jsonPost("/api/whoami", ""), 405, "method_not_allowed"},
		{"POST of verify", jsonPost("/auth/verify", ""), 405, "method_not_allowed"},
		{"cross-site POST", jsonPost("/api/login", aliceJSON("")).with("Sec-Fetch-Site", "cross-site"), 403, "forbidden"},
		// Two failures above: the account is throttled, the right
		// password included, with the same generic refusal.
		{"throttled", jsonPost("/api/login", aliceJSON("")), 429, "throttled"},
	} {
		p := ta.send(t, tc.req)
		if p.status != tc.status {
			t.Errorf("%s: got %d %s, want %d", tc.name, p.status, p.body, tc.status)
		}
		wantJSONError(t, tc.name, p, tc.code)
		if tc.status == 429 && p.header.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", tc.name)
		}
		// The body repeats it for clients that show the error, and says
		// nothing else: no account, no limit.
		if want := `{"error":"throttled","retry_after":` + p.header.Get("Retry-After") + "}\n"; tc.status == 429 && p.body != want {
			t.Errorf("%s: got body %q, want %q", tc.name, p.body, want)
		}
	}
}

// TestAPILoginRefusesAmbiguousKeys: a key twice, or a key that is a
// field's name only after case or Unicode folding, is a 400 before any
// password is checked: encoding/json would take the last, or the folded
// one, and log in someone other than the user a WAF or a log reads.
func TestAPILoginRefusesAmbiguousKeys(t *testing.T) {
	ta := newTestApp(t, redistest.Start(t))
	ta.addUser(t, bobName, bobPassword)
	pw := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	for _, tc := range []struct{ name, body string }{
		{"username twice, the real one last", `{"username":"nobody","username":"` + bobName + `","password":` + pw(bobPassword) + `}`},
		{"username twice, the real one first", `{"username":"` + bobName + `","username":"nobody","password":` + pw(bobPassword) + `}`},
		{"password twice", `{"username":"` + bobName + `","password":"wrong-password-1","password":` + pw(bobPassword) + `}`},
		{"device twice", `{"username":"` + bobName + `","password":` + pw(bobPassword) + `,"device":"a","device":"b"}`},
		{"totp twice", `{"username":"` + bobName + `","password":` + pw(bobPassword) + `,"totp":"1","totp":"2"}`},
		{"a long s in username", `{"username":"nobody","uſername":"` + bobName + `","password":` + pw(bobPassword) + `}`},
		{"a long s alone", `{"uſername":"` + bobName + `","password":` + pw(bobPassword) + `}`},
		{"Username", `{"Username":"` + bobName + `","password":` + pw(bobPassword) + `}`},
		{"PASSWORD", `{"username":"` + bobName + `","PASSWORD":` + pw(bobPassword) + `}`},
		{"Recovery_Code", `{"username":"` + bobName + `","password":` + pw(bobPassword) + `,"Recovery_Code":"x"}`},
		{"a long s in password, escaped", `{"username":"` + bobName + `","password":"wrong-password-1","pa\u017fsword":` + pw(bobPassword) + `}`},
	} {
		p := ta.send(t, jsonPost("/api/login", tc.body))
		if p.status != http.StatusBadRequest {
			t.Errorf("%s: got %d %s, want 400", tc.name, p.status, p.body)
			continue
		}
		wantJSONError(t, tc.name, p, "bad_request")
	}
	if keys := ta.sessionKeys(t); len(keys) != 0 {
		t.Errorf("after ambiguous logins: got %d sessions, want none", len(keys))
	}
	// The exact keys, with a key the API does not know, still log in.
	p := ta.send(t, jsonPost("/api/login", `{"username":"`+bobName+`","password":`+pw(bobPassword)+`,"client":"backup.sh","totp":null}`))
	if p.status != http.StatusOK {
		t.Errorf("exact keys and an unknown one: got %d %s, want 200", p.status, p.body)
	}
}

func TestAPIUnavailableIsJSON(t *testing.T) {
	rs := redistest.Start(t)
	ta := newTestApp(t, rs)
	token := ta.apiLogin(t)
	rs.Stop(t)
	for _, req := range []rawRequest{bearer(getRaw("/api/whoami"), token), bearer(getRaw("/auth/verify"), token), jsonPost("/api/login", aliceJSON(""))} {
		p := ta.send(t, req)
		if p.status != http.StatusServiceUnavailable || p.header.Get("Retry-After") == "" {
			t.Errorf("%s %s with Redis down: got %d (Retry-After %q), want 503 with Retry-After", req.method, req.path, p.status, p.header.Get("Retry-After"))
		}
		wantJSONError(t, req.method+" "+req.path+" with Redis down", p, "unavailable")
	}
}

// API logins are counted in the login metrics like form logins.
func TestAPILoginsAreObserved(t *testing.T) {
	t.Parallel()
	obs := &fakeObserver{}
	ta := newTestApp(t, redistest.Start(t), withObserver(obs, obs), withLimits(auth.Limits{PerUser: 1, PerIP: 50, Window: time.Minute}))
	for _, tc := range []struct {
		req    rawRequest
		status int
	}{
		{jsonPost("/api/login", aliceJSON("")), http.StatusOK},
		{jsonPost("/api/login", aliceJSON("wrong-password-123")), http.StatusUnauthorized},
		{jsonPost("/api/login", aliceJSON("wrong-password-456")), http.StatusTooManyRequests},
	} {
		if p := ta.send(t, tc.req); p.status != tc.status {
			t.Fatalf("POST /api/login: got %d, want %d; body %s", p.status, tc.status, p.body)
		}
	}
	_, logins, _, _ := obs.snapshot()
	if want := []string{LoginSuccess, LoginInvalid, LoginThrottled}; !slices.Equal(logins, want) {
		t.Errorf("logins observed: got %q, want %q", logins, want)
	}
}

// A script that keeps the device token of its last API login keeps logging
// in while an attacker keeps the account locked, as the owner's browser
// does with its device cookie; without one, or with another user's, the
// lockout holds.
func TestAPIDeviceTokenLetsTheScriptPastAnAccountLockout(t *testing.T) {
	t.Parallel()
	const perUser, window = 10, 15 * time.Minute
	ta := newTestApp(t, redistest.Start(t), withLimits(auth.Limits{PerUser: perUser, PerIP: 50, Window: window}),
		withTrustedProxies(netip.MustParsePrefix("127.0.0.1/32")))
	ta.addUser(t, bobName, bobPassword)
	login := func(t *testing.T, user, password, device string) page {
		t.Helper()
		b, _ := json.Marshal(apiLoginRequest{Username: user, Password: password, Device: device})
		return ta.send(t, jsonPost("/api/login", string(b)))
	}
	var first apiLoginResponse // yesterday's run of the script
	if p := login(t, aliceName, alicePassword, ""); p.status != http.StatusOK || json.Unmarshal([]byte(p.body), &first) != nil || first.Device == "" {
		t.Fatalf("POST /api/login: got %d %s, want 200 with a device token", p.status, p.body)
	}
	if d := time.Until(first.DeviceExpiresAt); d < auth.DeviceCookieLifetime-time.Minute || d > auth.DeviceCookieLifetime {
		t.Errorf("device_expires_at in %v, want %v", d, auth.DeviceCookieLifetime)
	}
	if strings.Contains(first.Device, first.Token) || strings.Contains(first.Device, aliceName) {
		t.Errorf("device token %q holds the session token or the user name", first.Device)
	}

	for i := range perUser {
		for _, user := range []string{aliceName, bobName} {
			if p := ta.send(t, loginFrom(user, "198.51.100."+strconv.Itoa(i+1))); p.status != http.StatusBadRequest {
				t.Fatalf("attacker's failure %d for %s: got status %d, want 400", i+1, user, p.status)
			}
		}
	}
	for _, tc := range []struct {
		name, user, password, device string
		status                       int
	}{
		{"alice without a device token", aliceName, alicePassword, "", http.StatusTooManyRequests},
		{"alice with a forged device token", aliceName, alicePassword, "v1.AAAAAAAAAAAAAAAAAAAAAA.9999999999.x", http.StatusTooManyRequests},
		{"bob with alice's device token", bobName, bobPassword, first.Device, http.StatusTooManyRequests},
		{"alice with her device token", aliceName, alicePassword, first.Device, http.StatusOK},
	} {
		p := login(t, tc.user, tc.password, tc.device)
		if p.status != tc.status {
			t.Errorf("%s: got %d %s, want %d", tc.name, p.status, p.body, tc.status)
		}
		if tc.status == http.StatusTooManyRequests {
			wantJSONError(t, tc.name, p, codeThrottled)
		}
	}
}

// TestAPILoginWithASecondFactor: a script logs in a user with an
// authenticator app by sending the code with the password; without it,
// or with a wrong one, nothing starts. whoami says how the user
// authenticated, and when.
func TestAPILoginWithASecondFactor(t *testing.T) {
	ta := newTestApp(t, redistest.Start(t))
	_, ph, codes := ta.newEnrolled(t)

	before := ta.keys(t)
	p := ta.send(t, jsonPost("/api/login", aliceJSON("")))
	if p.status != http.StatusUnauthorized {
		t.Errorf("API login without a code: got %d, want 401", p.status)
	}
	wantJSONError(t, "API login without a code", p, "second_factor_required")
	ta.wantNoNewKey(t, before)

	sessions := len(ta.sessionKeys(t))
	for _, tc := range []struct{ name, body string }{
		{"a wrong code", aliceTOTPJSON(ph.wrong())},
		{"a malformed code", aliceTOTPJSON("12345x")},
		{"a wrong password with the right code", func() string {
			b, _ := json.Marshal(map[string]string{"username": aliceName, "password": "wrong-password-123", "totp": ph.codeOf(auth.TOTPStep(time.Now()) + 1)})
			return string(b)
		}()},
	} {
		p := ta.send(t, jsonPost("/api/login", tc.body))
		want := "invalid_code"
		if strings.Contains(tc.name, "password") {
			want = "invalid_credentials"
		}
		if p.status != http.StatusUnauthorized {
			t.Errorf("API login with %s: got %d, want 401", tc.name, p.status)
		}
		wantJSONError(t, "API login with "+tc.name, p, want)
	}
	if got := len(ta.sessionKeys(t)); got != sessions {
		t.Errorf("after refused API logins: got %d sessions, want %d", got, sessions)
	}

	start := time.Now()
	for _, tc := range []struct{ name, body string }{
		{"the app's code", aliceTOTPJSON(ph.code())},
		{"a recovery code", func() string {
			b, _ := json.Marshal(map[string]string{"username": aliceName, "password": alicePassword, "recovery_code": codes[0]})
			return string(b)
		}()},
	} {
		p := ta.send(t, jsonPost("/api/login", tc.body))
		var got apiLoginResponse
		if p.status != http.StatusOK || json.Unmarshal([]byte(p.body), &got) != nil || !session.ValidToken(got.Token) || !slices.Equal(got.AMR, []string{"pwd", "otp"}) {
			t.Fatalf("API login with %s: got %d %s, want 200 with a token and amr [pwd otp]", tc.name, p.status, p.body)
		}
		p = ta.send(t, bearer(getRaw("/api/whoami"), got.Token))
		var who whoamiResponse
		if p.status != http.StatusOK || json.Unmarshal([]byte(p.body), &who) != nil || !slices.Equal(who.AMR, []string{"pwd", "otp"}) ||
			who.AuthTime.Before(start.Add(-time.Second)) || who.AuthTime.After(time.Now().Add(time.Second)) {
			t.Errorf("whoami after an API login with %s: got %d %s, want amr [pwd otp] and auth_time the login's", tc.name, p.status, p.body)
		}
	}
	if p := ta.send(t, jsonPost("/api/login", aliceTOTPJSON(ph.codeOf(ph.last)))); p.status != http.StatusUnauthorized {
		t.Errorf("API login replaying the code just used: got %d, want 401", p.status)
	}
}
