package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"loginsvc/internal/auth"
	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// checkHardeningHeaders checks the headers every answer must carry.
func checkHardeningHeaders(t *testing.T, what string, p page) {
	t.Helper()
	csp := p.header.Get("Content-Security-Policy")
	for _, directive := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, directive) {
			t.Errorf("%s: got Content-Security-Policy %q, want it to contain %q", what, csp, directive)
		}
	}
	for _, bad := range []string{"'unsafe-inline'", "'unsafe-eval'", "*"} {
		if strings.Contains(csp, bad) {
			t.Errorf("%s: got Content-Security-Policy %q, want no %s", what, csp, bad)
		}
	}
	for _, h := range []struct{ name, want string }{
		{"X-Content-Type-Options", "nosniff"},
		// Keeps paths on this site out of other sites' logs.
		{"Referrer-Policy", "same-origin"},
		{"X-Frame-Options", "DENY"},
	} {
		if got := p.header.Get(h.name); got != h.want {
			t.Errorf("%s: got %s %q, want %q", what, h.name, got, h.want)
		}
	}
}

// TestEveryResponseCarriesTheSecurityHeaders walks one browser through
// every kind of answer, the 403, 404 and 503 error pages included, and
// checks the hardening headers, the replica's name, what each answer does
// to the session cookie, and that whatever shows user data or sets a cookie
// is never cached.
func TestEveryResponseCarriesTheSecurityHeaders(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	ta := newTestApp(t, rs, withInstanceID("replica-h"))
	b := newBrowser(t)

	type step struct {
		name   string
		send   func() page
		status int
		// cookie is what the response must do to the session cookie:
		// "" leave it alone, "set" or "clear".
		cookie string
		// noStore: must be Cache-Control: no-store (user data or cookie).
		noStore bool
		// clearSiteData is the wanted Clear-Site-Data header.
		clearSiteData string
		// redisDown: the step runs with Redis stopped (the last steps).
		redisDown bool
	}
	get := func(path string) func() page { return func() page { return b.get(ta.url(path)) } }
	post := func(path string, form url.Values) func() page {
		return func() page { return b.post(ta.url(path), form) }
	}
	crossSite := func(path string) func() page {
		return func() page {
			req := newRequest(t, http.MethodPost, ta.url(path), url.Values{})
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			return b.do(req)
		}
	}
	steps := []step{
		{name: "GET / logged out", send: get("/"), status: 200, noStore: true},
		{name: "GET /login/", send: get("/login/"), status: 200, noStore: true},
		{name: "POST /login/ refused", send: post("/login/", url.Values{"username": {aliceName}, "password": {"wrong-password"}}), status: 400, noStore: true},
		{name: "POST /login/", send: post("/login/", aliceForm(false)), status: 303, cookie: "set", noStore: true},
		// An unchanged session is not saved again, so it sends no cookie.
		{name: "GET / logged in", send: get("/"), status: 200, noStore: true},
		{name: "GET /sessions/", send: get("/sessions/"), status: 200, noStore: true},
		{name: "GET /password/", send: get("/password/"), status: 200, noStore: true},
		{name: "GET /logout/ logged in", send: get("/logout/"), status: 200, noStore: true},
		{name: "403 cross-site POST /logout/", send: crossSite("/logout/"), status: 403},
		{name: "POST /logout/", send: post("/logout/", url.Values{}), status: 303, cookie: "clear", noStore: true},
		{name: "GET /login (redirect)", send: get("/login"), status: 308},
		{name: "GET /healthz", send: get("/healthz"), status: 200},
		{name: "GET /readyz", send: get("/readyz"), status: 200},
		{name: "GET /static/style.css", send: get("/static/style.css"), status: 200},
		{name: "404", send: get("/no-such-page"), status: 404},
		{name: "503 GET / with a session", send: func() page {
			b.setToken(ta.url("/"), randomToken(t))
			return b.get(ta.url("/"))
		}, status: 503, noStore: true, redisDown: true},
		{name: "503 POST /login/", send: post("/login/", aliceForm(false)), status: 503, noStore: true, redisDown: true},
	}
	stopped := false
	for _, s := range steps {
		if s.redisDown && !stopped {
			rs.Stop(t)
			stopped = true
		}
		p := s.send()
		if p.status != s.status {
			t.Errorf("%s: got status %d, want %d; body:\n%s", s.name, p.status, s.status, p.body)
		}
		checkHardeningHeaders(t, s.name, p)
		if got := p.header.Get("X-Served-By"); got != "replica-h" {
			t.Errorf("%s: got X-Served-By %q, want %q", s.name, got, "replica-h")
		}
		if got := p.header.Get("Strict-Transport-Security"); got != "" {
			t.Errorf("%s: got Strict-Transport-Security %q, want none without COOKIE_SECURE", s.name, got)
		}

		switch s.cookie {
		case "":
			if p.cookie != nil {
				t.Errorf("%s: got session cookie %v, want none", s.name, p.cookie)
			}
		case "set":
			if p.cookie == nil || p.cookie.Value == "" || p.cookie.MaxAge < 0 {
				t.Errorf("%s: got session cookie %v, want it set", s.name, p.cookie)
			}
		case "clear":
			if p.cookie == nil || p.cookie.MaxAge >= 0 {
				t.Errorf("%s: got session cookie %v, want it cleared", s.name, p.cookie)
			}
		}
		if cc := p.header.Values("Cache-Control"); (s.noStore || p.cookie != nil) && !slices.Equal(cc, []string{"no-store"}) {
			t.Errorf("%s (sets the session cookie: %v): got Cache-Control %q, want exactly [no-store]", s.name, p.cookie != nil, cc)
		}
		if got := p.header.Get("Clear-Site-Data"); got != s.clearSiteData {
			t.Errorf("%s: got Clear-Site-Data %q, want %q", s.name, got, s.clearSiteData)
		}
	}
}

// TestLogsHoldNoSecrets runs a whole visit: a failed login, a login, a
// token in the URL, failed logins until throttled (wrong and right
// password) from the logged-in browser, so the live token is in every
// request that reaches a log call, a refused cross-site logout, a logout,
// the dead token replayed and a forged one. The log holds neither password
// nor any token nor a token's hash (the Redis key, as good as the token to
// anyone who can read Redis).
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	const perUser = 2
	ta := newTestApp(t, redistest.Start(t), withLimits(auth.Limits{PerUser: perUser}))
	b := newBrowser(t)
	const wrongPassword = "a-wrong-password-4f2d"
	wrong := url.Values{"username": {aliceName}, "password": {wrongPassword}}
	forged := randomToken(t)

	b.get(ta.url("/"))
	b.get(ta.url("/login/?next=/account"))
	b.post(ta.url("/login/"), wrong)
	token := ta.login(t, b, true)
	b.get(ta.url("/"))
	b.get(ta.url("/?session_id=" + token))
	b.get(ta.url("/logout/"))

	// The login succeeded, so the count of failures starts again.
	var statuses []int
	for _, form := range []url.Values{wrong, wrong, wrong, aliceForm(false)} {
		statuses = append(statuses, b.post(ta.url("/login/"), form).status)
	}
	if want := []int{400, 400, 429, 429}; !slices.Equal(statuses, want) {
		t.Fatalf("failed logins: got statuses %v, want %v (the flow must reach the throttle)", statuses, want)
	}

	req := newRequest(t, http.MethodPost, ta.url("/logout/"), url.Values{})
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if p := b.do(req); p.status != http.StatusForbidden {
		t.Fatalf("cross-site POST /logout/: got status %d, want 403", p.status)
	}
	if p := b.post(ta.url("/logout/"), url.Values{}); p.status != http.StatusSeeOther {
		t.Fatalf("POST /logout/: got status %d, want 303", p.status)
	}
	// Replaying the dead token, or a forged one, must not log it either.
	replay(t, http.MethodGet, ta.url("/"), token)
	replay(t, http.MethodGet, ta.url("/"), forged)

	logs := ta.logs.String()
	for _, want := range []string{`msg=login `, `msg=logout `, `msg="login failed"`, `msg="login throttled"`, `msg="cross-origin request refused"`, "user=alice"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs: got no %q, want the whole flow logged:\n%s", want, logs)
		}
	}
	for _, secret := range []struct{ name, value string }{
		{"password", alicePassword},
		{"wrong password", wrongPassword},
		{"session token", token},
		{"hash of the session token", testkit.TokenHash(token)},
		{"session key", testkit.SessionKey(token)},
		{"forged token", forged},
		{"hash of the forged token", testkit.TokenHash(forged)},
	} {
		if strings.Contains(logs, secret.value) {
			t.Errorf("logs: contain the %s %q, want it never logged:\n%s", secret.name, secret.value, logs)
		}
	}
}
