package web

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// loopback is the test's own address: httptest serves on 127.0.0.1, so
// trusting it makes the test client a trusted proxy.
var loopback = netip.MustParsePrefix("127.0.0.1/32")

// newForwardApp is a replica behind a trusted proxy (the test client) that
// may return logins to app.example.test.
func newForwardApp(t *testing.T, opts ...appOption) *testApp {
	t.Helper()
	return newTestApp(t, redistest.Start(t), append([]appOption{withTrustedProxies(loopback), withForwardAuth("", "app.example.test")}, opts...)...)
}

// forwarded is a forward-auth request as a proxy sends it for a GET of
// https://HOST/URI: the X-Forwarded-* shape Traefik and Caddy document
// (and the repository's nginx snippet writes).
func forwarded(path, host, uri string) rawRequest {
	return getRaw(path).
		with("X-Forwarded-Method", http.MethodGet).
		with("X-Forwarded-Proto", "https").
		with("X-Forwarded-Host", host).
		with("X-Forwarded-Uri", uri).
		with("X-Forwarded-For", "203.0.113.7")
}

// wantIdentity fails unless p is the 200 of a forward auth naming user.
func wantIdentity(t *testing.T, what string, p page, user string) {
	t.Helper()
	if p.status != http.StatusOK || p.header.Get("Remote-User") != user || p.header.Get("X-Auth-Request-User") != user || len(p.header.Get("X-Auth-Session-Id")) != 16 {
		t.Errorf("%s: got %d, Remote-User %q, X-Auth-Request-User %q, X-Auth-Session-Id %q; want 200 naming %s and a session id",
			what, p.status, p.header.Get("Remote-User"), p.header.Get("X-Auth-Request-User"), p.header.Get("X-Auth-Session-Id"), user)
	}
	if c := p.header.Values("Set-Cookie"); len(c) > 0 {
		t.Errorf("%s: got Set-Cookie %q, want none (the proxy would not pass it on)", what, c)
	}
	// The bodyless 200 only the proxy reads carries no document headers
	// (forwardAuth says why), but still no-store.
	for _, name := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"} {
		if got := p.header.Get(name); got != "" {
			t.Errorf("%s: got %s %q on the check's 200, want none", what, name, got)
		}
	}
	if cc := p.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s: got Cache-Control %q, want no-store", what, cc)
	}
}

// wantAnonymous fails unless p is the 401 of a forward auth for a visitor
// without a session, with loginURL in X-Auth-Login-URL.
func wantAnonymous(t *testing.T, what string, p page, loginURL string) {
	t.Helper()
	if p.status != http.StatusUnauthorized || p.header.Get("X-Auth-Login-URL") != loginURL || p.header.Get("Remote-User") != "" {
		t.Errorf("%s: got %d, X-Auth-Login-URL %q, Remote-User %q; want 401 with login URL %q and no user",
			what, p.status, p.header.Get("X-Auth-Login-URL"), p.header.Get("Remote-User"), loginURL)
	}
	wantJSONError(t, what, p, "unauthorized")
	// Traefik and Caddy pass this answer, body and all, to the browser.
	checkHardeningHeaders(t, what, p)
}

func TestVerifyAnswersWhoIsLoggedIn(t *testing.T) {
	ta := newForwardApp(t)
	cookie := ta.login(t, newBrowser(t), false)
	loginTo := func(target string) string { return "https://app.example.test/login/?next=" + url.QueryEscape(target) }
	const original = "https://app.example.test/docs/?page=2"
	// A refused target: the login form on the host the check reached,
	// written out (nginx's error_page needs an absolute URL).
	reached := "https://" + ta.host() + "/login/"

	p := ta.send(t, forwarded("/auth/verify", "app.example.test", "/docs/?page=2").with("Cookie", testCookieName+"="+cookie))
	wantIdentity(t, "cookie", p, aliceName)
	// The answer depends on the session, not the URL: no cache may keep it.
	if cc := p.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("verify: got Cache-Control %q, want no-store", cc)
	}
	if vary := strings.Join(p.header.Values("Vary"), ", "); !strings.Contains(vary, "Cookie") || !strings.Contains(vary, "Authorization") {
		t.Errorf("verify: got Vary %q, want Cookie and Authorization", vary)
	}
	for _, tc := range []struct {
		name  string
		req   rawRequest
		login string
	}{
		{"no cookie", forwarded("/auth/verify", "app.example.test", "/docs/?page=2"), loginTo(original)},
		// Even a browser gets no redirect from verify: nginx would turn a
		// 3xx into a 500. error_page makes the redirect.
		{"no cookie, a browser", forwarded("/auth/verify", "app.example.test", "/docs/?page=2").with("Accept", "text/html"), loginTo(original)},
		{"unknown cookie", forwarded("/auth/verify", "app.example.test", "/").with("Cookie", testCookieName+"="+randomToken(t)), loginTo("https://app.example.test/")},
		{"cookie in a bearer header", forwarded("/auth/verify", "app.example.test", "/").with("Authorization", "Bearer "+cookie), loginTo("https://app.example.test/")},
		// The return target: a host not allowed falls back to "/".
		{"host not allowed", forwarded("/auth/verify", "evil.example", "/"), reached},
		{"look-alike host", forwarded("/auth/verify", "app.example.test.evil.example", "/"), reached},
		{"userinfo in the host", forwarded("/auth/verify", "app.example.test@evil.example", "/"), reached},
		{"scheme-relative uri", forwarded("/auth/verify", "app.example.test", "//evil.example/"), reached},
	} {
		wantAnonymous(t, tc.name, ta.send(t, tc.req), tc.login)
	}
	// Nothing an anonymous check does creates a session.
	if keys := ta.sessionKeys(t); len(keys) != 1 {
		t.Errorf("after anonymous checks: got %d session keys, want only the login's", len(keys))
	}
}

func TestForwardedHeadersAreBelievedOnlyFromTrustedProxies(t *testing.T) {
	ta := newTestApp(t, redistest.Start(t), withForwardAuth("", "app.example.test")) // no TRUSTED_PROXIES
	p := ta.send(t, forwarded("/auth/verify", "app.example.test", "/docs/"))
	wantAnonymous(t, "X-Forwarded-* from an untrusted peer", p, "http://"+ta.host()+"/login/")
}

// TestUntrustedProxyIsNoticed: behind a proxy missing from
// TRUSTED_PROXIES, X-Forwarded-* headers are ignored, and the log says
// so, naming the variable, at most once a minute: not silently, not on
// every request.
func TestUntrustedProxyIsNoticed(t *testing.T) {
	const warning = "X-Forwarded-* headers from a peer outside TRUSTED_PROXIES are ignored"
	warnings := func(ta *testApp) int { return strings.Count(ta.logs.String(), warning) }

	untrusted := newTestApp(t, redistest.Start(t)) // no TRUSTED_PROXIES
	untrusted.send(t, getRaw("/"))
	if n := warnings(untrusted); n != 0 {
		t.Fatalf("a request without X-Forwarded-*: got %d warnings, want none\n%s", n, untrusted.logs)
	}
	for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Uri"} {
		untrusted.app.untrustedWarnedAt.Store(0) // as a minute later
		untrusted.send(t, getRaw("/").with(h, "203.0.113.7"))
		testkit.Eventually(t, "warning about "+h, 0, func() (bool, string) {
			n := warnings(untrusted)
			return n > 0 && strings.Contains(untrusted.logs.String(), "header="+h), "no warning naming " + h
		})
	}
	before := warnings(untrusted)
	for range 5 {
		untrusted.send(t, forwarded("/auth/verify", "app.example.test", "/"))
	}
	if n := warnings(untrusted); n != before {
		t.Errorf("5 more requests within the minute: got %d more warnings, want none", n-before)
	}
	if !strings.Contains(untrusted.logs.String(), "level=WARN") {
		t.Errorf("the warning is not at level WARN:\n%s", untrusted.logs)
	}

	trusted := newForwardApp(t)
	trusted.send(t, forwarded("/auth/verify", "app.example.test", "/"))
	trusted.send(t, getRaw("/"))
	if n := warnings(trusted); n != 0 {
		t.Errorf("X-Forwarded-* from a trusted proxy: got %d warnings, want none\n%s", n, trusted.logs)
	}
}

// TestForwardAuthNeverRedirectsWithoutLocation: whatever the proxy sends
// (trusted or not, with or without the original host), /auth/forward's
// 3xx names where to go, and /auth/verify's login URL is absolute: nginx's
// error_page 401 =302 serves a path in place, a 302 without Location.
func TestForwardAuthNeverRedirectsWithoutLocation(t *testing.T) {
	rs := redistest.Start(t)
	const browserAccept = "text/html,*/*;q=0.8"
	for _, app := range []struct {
		name string
		ta   *testApp
	}{
		{"no TRUSTED_PROXIES", newTestApp(t, rs, withForwardAuth("", "app.example.test"), withInstanceID("untrusted"))},
		{"trusted proxy", newTestApp(t, rs, withTrustedProxies(loopback), withForwardAuth("", "app.example.test"), withInstanceID("trusted"))},
		{"absolute AUTH_LOGIN_URL", newTestApp(t, rs, withForwardAuth("https://login.example.test/login/", "app.example.test"), withInstanceID("absolute"))},
	} {
		for _, req := range []struct {
			name string
			req  rawRequest
		}{
			{"the README's nginx", forwarded("/auth/verify", "app.example.test", "/docs/")},
			{"no X-Forwarded-Host", getRaw("/auth/verify").with("X-Forwarded-Uri", "/docs/").with("X-Forwarded-Proto", "https")},
			{"no X-Forwarded-*", getRaw("/auth/verify")},
			{"a host not allowed", forwarded("/auth/verify", "evil.example", "/")},
		} {
			what := app.name + ", " + req.name
			p := app.ta.send(t, req.req)
			if u, err := url.Parse(p.header.Get("X-Auth-Login-URL")); p.status != http.StatusUnauthorized || err != nil || !u.IsAbs() || u.Host == "" {
				t.Errorf("%s: GET /auth/verify: got %d, X-Auth-Login-URL %q; want 401 with an absolute URL", what, p.status, p.header.Get("X-Auth-Login-URL"))
			}
			fwd := req.req
			fwd.path = "/auth/forward"
			p = app.ta.send(t, fwd.with("Accept", browserAccept))
			if p.status/100 == 3 && p.header.Get("Location") == "" {
				t.Errorf("%s: GET /auth/forward from a browser: got %d without Location", what, p.status)
			}
		}
	}
}

// TestForwardAuthTraefikAndCaddy sends /auth/forward the requests that
// Traefik's ForwardAuth middleware and Caddy's forward_auth directive
// document: a GET to the auth address carrying the client's headers
// (Cookie, Authorization, Accept) plus X-Forwarded-Method, -Proto, -Host,
// -Uri and -For. A 2xx lets the request through, with the response
// headers the config names (Traefik authResponseHeaders, Caddy
// copy_headers) copied onto it; any other answer goes to the client as
// it is, so a browser gets the redirect to the login form.
func TestForwardAuthTraefikAndCaddy(t *testing.T) {
	ta := newForwardApp(t, withForwardAuth("https://login.example.test/login/", "app.example.test"))
	cookie := ta.login(t, newBrowser(t), false)
	bearer := ta.apiLogin(t)
	login := "https://login.example.test/login/?next=" + url.QueryEscape("https://app.example.test/admin/?x=1")

	traefik := forwarded("/auth/forward", "app.example.test", "/admin/?x=1")
	caddy := forwarded("/auth/forward", "app.example.test", "/admin/?x=1").with("X-Forwarded-Method", http.MethodPost)
	browserAccept := "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	for _, proxy := range []struct {
		name string
		req  rawRequest
	}{{"traefik", traefik}, {"caddy", caddy}} {
		t.Run(proxy.name, func(t *testing.T) {
			wantIdentity(t, "cookie", ta.send(t, proxy.req.with("Cookie", testCookieName+"="+cookie).with("Accept", browserAccept)), aliceName)
			wantIdentity(t, "bearer token", ta.send(t, proxy.req.with("Authorization", "Bearer "+bearer)), aliceName)
			// Bearer first: a live cookie beside a dead token is no login.
			wantAnonymous(t, "dead bearer token beside a live cookie",
				ta.send(t, proxy.req.with("Authorization", "Bearer "+randomToken(t)).with("Cookie", testCookieName+"="+cookie)), login)
			// An Authorization of the app's own (Basic, a JWT) leaves the cookie to decide.
			wantIdentity(t, "cookie beside the app's own Authorization", ta.send(t, proxy.req.with("Authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l").with("Cookie", testCookieName+"="+cookie)), aliceName)

			p := ta.send(t, proxy.req.with("Accept", browserAccept))
			if p.status != http.StatusFound || p.header.Get("Location") != login {
				t.Errorf("browser without a session: got %d to %q, want 302 to %q", p.status, p.header.Get("Location"), login)
			}
			checkHardeningHeaders(t, "browser without a session, the 302", p)
			wantAnonymous(t, "script without a session", ta.send(t, proxy.req.with("Accept", "application/json")), login)
		})
	}

	// The login form, reached from that redirect, returns to the app.
	b := newBrowser(t)
	form := aliceForm(false)
	form.Set("next", "https://app.example.test/admin/?x=1")
	p := b.post(ta.url("/login/"), form)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "https://app.example.test/admin/?x=1" {
		t.Errorf("login with next on an allowed host: got %d to %q, want 303 back to the app", p.status, p.header.Get("Location"))
	}
}

// TestLoginReturnsOnlyToAllowedHosts posts the login form with return
// targets; a refused one logs in all the same and lands on "/".
func TestLoginReturnsOnlyToAllowedHosts(t *testing.T) {
	ta := newForwardApp(t)
	for _, tc := range []struct{ next, want string }{
		{"https://app.example.test/x", "https://app.example.test/x"},
		{"/sessions/", "/sessions/"},
		{"https://evil.example/", "/"},
		{"https://app.example.test.evil.example/", "/"},
		{"https://app.example.test@evil.example/", "/"},
		{"//evil.example/", "/"},
		{"/\\evil.example", "/"},
		{"https:/\\evil.example", "/"},
		{"/%2f%2fevil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"https://evil.example#app.example.test", "/"},
	} {
		b := newBrowser(t)
		form := aliceForm(false)
		form.Set("next", tc.next)
		p := b.post(ta.url("/login/"), form)
		if p.status != http.StatusSeeOther || p.header.Get("Location") != tc.want {
			t.Errorf("login with next=%q: got %d to %q, want 303 to %q", tc.next, p.status, p.header.Get("Location"), tc.want)
		}
		if f := b.get(ta.url("/login/?next=" + url.QueryEscape(tc.next))); tc.want == "/" && strings.Contains(f.body, `name="next"`) {
			t.Errorf("login form with next=%q: the refused target is in the form", tc.next)
		}
	}
}

// TestVerifyExtendsTheIdleDeadline: a check by the proxy is a use of the
// session, as a page view is, by cookie and by bearer token.
func TestVerifyExtendsTheIdleDeadline(t *testing.T) {
	ta := newForwardApp(t)
	cookie := ta.login(t, newBrowser(t), false)
	token := ta.apiLogin(t)
	for _, tc := range []struct {
		name, token string
		req         rawRequest
	}{
		{"cookie", cookie, getRaw("/auth/verify").with("Cookie", testCookieName+"="+cookie)},
		{"bearer", token, bearer(getRaw("/auth/verify"), token)},
	} {
		key := testkit.SessionKey(tc.token)
		// Unused for 20 minutes of the 30-minute idle timeout.
		ta.backdateLastSeen(t, tc.token, 20*time.Minute)
		if err := ta.check.PExpire(context.Background(), key, 10*time.Minute).Err(); err != nil {
			t.Fatalf("PEXPIRE %s: %v", key, err)
		}
		wantIdentity(t, tc.name, ta.send(t, tc.req), aliceName)
		ttl, err := ta.check.PTTL(context.Background(), key).Result()
		if err != nil || ttl < 29*time.Minute {
			t.Errorf("%s: idle time left after a verify: got %v (%v), want the full 30 minutes again", tc.name, ttl, err)
		}
	}
}

// TestVerifyReadsOnceAndWritesOnlyTheTouch: a steady check is one read
// of the session and no write; the check that finds the idle touch due
// stores it without reading the session a second time.
func TestVerifyReadsOnceAndWritesOnlyTheTouch(t *testing.T) {
	ta := newForwardApp(t)
	token := ta.login(t, newBrowser(t), false)
	req := getRaw("/auth/verify").with("Cookie", testCookieName+"="+token)
	calls := func() (gets, sets int64) {
		t.Helper()
		info, err := ta.check.Info(context.Background(), "commandstats").Result()
		if err != nil {
			t.Fatalf("INFO commandstats: %v", err)
		}
		for _, line := range strings.Split(info, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
			if !ok {
				continue
			}
			n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
			switch name {
			case "cmdstat_get":
				gets = n
			case "cmdstat_set":
				sets = n
			}
		}
		return gets, sets
	}
	for _, tc := range []struct {
		name                 string
		backdate             time.Duration
		wantGets, wantWrites int64
	}{
		{"steady", 0, 1, 0},
		{"touch due", 20 * time.Minute, 1, 1},
	} {
		if tc.backdate > 0 {
			ta.backdateLastSeen(t, token, tc.backdate)
		}
		g0, s0 := calls()
		wantIdentity(t, tc.name, ta.send(t, req), aliceName)
		g1, s1 := calls()
		if g1-g0 != tc.wantGets || s1-s0 != tc.wantWrites {
			t.Errorf("%s: got %d GET and %d SET, want %d and %d", tc.name, g1-g0, s1-s0, tc.wantGets, tc.wantWrites)
		}
	}
}

// TestTwoFactorHostsAskForASecondFactor: an app in AUTH_TWO_FACTOR_HOSTS
// lets only two-factor sessions through; a one-factor session is sent to
// the step-up page, which returns to the app once the second factor is
// given (or, for a user without one, set up). Other apps take one factor.
func TestTwoFactorHostsAskForASecondFactor(t *testing.T) {
	ta := newForwardApp(t, withForwardAuth("", "app.example.test", "secure.example.test"), withTwoFactorHosts("secure.example.test"))
	const target = "https://secure.example.test/admin/?x=1"
	stepUp := "https://secure.example.test/login/step-up/?next=" + url.QueryEscape(target)
	secure := forwarded("/auth/verify", "secure.example.test", "/admin/?x=1")
	plain := forwarded("/auth/verify", "app.example.test", "/")
	withCookie := func(r rawRequest, token string) rawRequest { return r.with("Cookie", testCookieName+"="+token) }
	wantMethods := func(what string, p page, methods string) {
		t.Helper()
		wantIdentity(t, what, p, aliceName)
		if got := p.header.Get("Remote-Auth-Methods"); got != methods {
			t.Errorf("%s: got Remote-Auth-Methods %q, want %q", what, got, methods)
		}
	}
	wantStepUp := func(what string, p page) {
		t.Helper()
		if p.status != http.StatusUnauthorized || p.header.Get("X-Auth-Login-URL") != stepUp || p.header.Get("Remote-User") != "" {
			t.Errorf("%s: got %d, X-Auth-Login-URL %q, Remote-User %q; want 401 to %q and no user", what, p.status, p.header.Get("X-Auth-Login-URL"), p.header.Get("Remote-User"), stepUp)
		}
		wantJSONError(t, what, p, "second_factor_required")
	}

	// Alice without a second factor: the step-up page offers to set one up,
	// and the enrolment returns to the app.
	b := newBrowser(t)
	token := ta.login(t, b, false)
	wantMethods("one factor, an app not in the list", ta.send(t, withCookie(plain, token)), "pwd")
	wantStepUp("one factor, a two-factor app", ta.send(t, withCookie(secure, token)))
	p := ta.send(t, withCookie(forwarded("/auth/forward", "secure.example.test", "/admin/?x=1"), token).with("Accept", "text/html"))
	if p.status != http.StatusFound || p.header.Get("Location") != stepUp {
		t.Errorf("/auth/forward, a browser with one factor: got %d to %q, want 302 to %q", p.status, p.header.Get("Location"), stepUp)
	}
	p = b.get(ta.url("/login/step-up/?next=" + url.QueryEscape(target)))
	enrol := linkOf(p.body, "enrol-link")
	if p.status != http.StatusOK || enrol.Path != "/security/totp/" || enrol.Query().Get("next") != target {
		t.Fatalf("step-up page without a factor: got %d with enrolment link %q, want one to /security/totp/ returning to %s", p.status, enrol, target)
	}
	p = b.get(ta.url(enrol.String()))
	ph := &phone{t: t, secret: totpSecret(t, p.body)}
	p = b.post(ta.url("/security/totp/"), url.Values{"code": {ph.code()}, "next": {target}})
	if next := linkOf(p.body, "codes-continue"); p.status != http.StatusOK || next.String() != target {
		t.Fatalf("enrolment from the step-up page: got %d, continue link %q; want 200 and a link back to %s", p.status, next, target)
	}
	token = b.tokenInJar(ta.url("/"))
	wantMethods("after enrolment, the two-factor app", ta.send(t, withCookie(secure, token)), "pwd otp")

	// A one-factor session of a user who has an app: the code alone
	// steps it up. No flow of today leaves one (enrolment ends every
	// other session), so its record is made to say password only, as a
	// record from before two-step login reads.
	ta.setStoredAMR(t, token, nil)
	wantStepUp("a password-only session of an enrolled user", ta.send(t, withCookie(secure, token)))
	p = b.get(ta.url("/login/step-up/?next=" + url.QueryEscape(target)))
	if p.status != http.StatusOK || !hasInput(p.body, "code") || !strings.Contains(p.body, `data-app="secure.example.test"`) {
		t.Fatalf("step-up page: got %d, want 200 with a code field naming the app; body:\n%s", p.status, p.body)
	}
	if p := b.post(ta.url("/login/step-up/"), url.Values{"code": {ph.wrong()}, "next": {target}}); p.status != http.StatusBadRequest || codeError(p.body) != invalidCode {
		t.Fatalf("step-up with a wrong code: got %d, error %q; want 400, %q", p.status, codeError(p.body), invalidCode)
	}
	p = b.post(ta.url("/login/step-up/"), url.Values{"code": {ph.code()}, "next": {target}})
	c := ta.sessionCookie(p)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != target || c == nil || c.Value == token {
		t.Fatalf("step-up with the code: got %d to %q, Set-Cookie %q; want 303 back to the app under a new token", p.status, p.header.Get("Location"), p.header.Values("Set-Cookie"))
	}
	wantMethods("after the step-up, the two-factor app", ta.send(t, withCookie(secure, c.Value)), "pwd otp")
	wantAnonymous(t, "the token from before the step-up", ta.send(t, withCookie(secure, token)), "https://secure.example.test/login/?next="+url.QueryEscape(target))
}

// TestEnvoyExtAuthReadsTheOriginalPathAfterThePrefix: Envoy's external
// authorization over HTTP (Envoy Gateway's SecurityPolicy extAuth.http,
// path /auth/envoy) sends the check to the prefix plus the request's own
// path and query, with the request's own method: any method is a check,
// the rest of the path is the app's URL (from a trusted proxy only), and
// a browser without a session is sent to log in and back there.
func TestEnvoyExtAuthReadsTheOriginalPathAfterThePrefix(t *testing.T) {
	ta := newForwardApp(t)
	cookie := ta.login(t, newBrowser(t), false)
	envoy := func(method, path string) rawRequest {
		r := getRaw(path).with("X-Forwarded-Proto", "https").with("X-Forwarded-Host", "app.example.test")
		r.method = method
		return r
	}
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPut} {
		p := ta.send(t, envoy(method, "/auth/envoy/docs/page?x=1").with("Cookie", testCookieName+"="+cookie))
		wantIdentity(t, method+" /auth/envoy/docs/page", p, aliceName)
	}
	want := "https://app.example.test/login/?next=" + url.QueryEscape("https://app.example.test/docs/page?x=1")
	p := ta.send(t, envoy(http.MethodPost, "/auth/envoy/docs/page?x=1").with("Accept", "text/html"))
	if p.status != http.StatusFound || p.header.Get("Location") != want {
		t.Errorf("a browser without a session: got %d to %q, want 302 to %q", p.status, p.header.Get("Location"), want)
	}
	p = ta.send(t, envoy(http.MethodGet, "/auth/envoy/"))
	wantAnonymous(t, "a script without a session, at the app's root", p, "https://app.example.test/login/?next="+url.QueryEscape("https://app.example.test/"))

	// From a peer outside TRUSTED_PROXIES the path names no return target.
	untrusted := newTestApp(t, redistest.Start(t), withForwardAuth("", "app.example.test"))
	p = untrusted.send(t, envoy(http.MethodGet, "/auth/envoy/docs/page?x=1"))
	if got := p.header.Get("X-Auth-Login-URL"); p.status != http.StatusUnauthorized || strings.Contains(got, "next=") {
		t.Errorf("an untrusted peer: got %d with login URL %q, want 401 without a return target", p.status, got)
	}
}
