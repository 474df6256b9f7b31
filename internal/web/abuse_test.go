package web

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"loginsvc/internal/auth"
	"loginsvc/internal/redistest"
	"loginsvc/internal/store"
	"loginsvc/templates"
)

// Abuse tests: what an attacker can send a running server, and what it
// answers. newAbuseApp is the shared harness with the settings these tests
// vary (login limits, a Secure cookie, trusted proxies) and a client that
// sends every request exactly as written.

// abuseSettings are the deployment choices an abuse test may change. Zero
// values mean: lifetime 1h, no idle timeout, cookie "session_id", not
// Secure, no trusted proxies, auth's default limits.
type abuseSettings struct {
	limits         auth.Limits
	lifetime       time.Duration
	idle           time.Duration
	cookieName     string
	cookieSecure   bool
	trustedProxies []netip.Prefix
	instanceID     string
}

// abuseApp is one replica wired as cmd/server/serve.go wires it.
type abuseApp struct {
	app    *App
	srv    *httptest.Server
	client *http.Client // no jar, no redirects: every answer is seen as sent
	check  *redis.Client
	auth   *auth.Service
	logs   *syncBuffer
	cookie string // the session cookie's name
}

func newAbuseApp(tb testing.TB, rs *redistest.Server, s abuseSettings) *abuseApp {
	tb.Helper()
	ta := newTestApp(tb, rs, withIdleTimeout(s.idle), func(a *appSettings) {
		if s.lifetime != 0 {
			a.lifetime = s.lifetime
		}
		if s.cookieName != "" {
			a.cookieName = s.cookieName
		}
		if s.instanceID != "" {
			a.instanceID = s.instanceID
		}
		a.limits = s.limits
		a.cookieSecure = s.cookieSecure
		a.trustedProxies = s.trustedProxies
	})
	tr := &http.Transport{}
	tb.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{
		Transport: tr,
		Timeout:   hangBound,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return &abuseApp{app: ta.app, srv: ta.srv, client: client, check: ta.check, auth: ta.auth, logs: ta.logs, cookie: ta.settings.cookieName}
}

// abuseRequest is one request exactly as an attacker would send it.
type abuseRequest struct {
	method string
	path   string
	header map[string]string
	body   string
}

// formPost is a POST of form to path with the form content type.
func formPost(path string, form url.Values) abuseRequest {
	return abuseRequest{
		method: http.MethodPost,
		path:   path,
		header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		body:   form.Encode(),
	}
}

// with returns r with header k set to v.
func (r abuseRequest) with(k, v string) abuseRequest {
	h := make(map[string]string, len(r.header)+1)
	for hk, hv := range r.header {
		h[hk] = hv
	}
	h[k] = v
	r.header = h
	return r
}

func (aa *abuseApp) send(t *testing.T, r abuseRequest) page {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, aa.srv.URL+r.path, body)
	if err != nil {
		t.Fatalf("http.NewRequest(%s %s): %v", r.method, r.path, err)
	}
	req.Header.Set("User-Agent", testUserAgent)
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	return doRequest(t, aa.client, req)
}

// sessionCookie is the value of the session cookie p sets, and whether it
// sets one.
func (aa *abuseApp) sessionCookie(p page) (string, bool) {
	for _, line := range p.header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err == nil && c.Name == aa.cookie {
			return c.Value, true
		}
	}
	return "", false
}

// login logs alice in and returns the session token.
func (aa *abuseApp) login(t *testing.T) string {
	t.Helper()
	p := aa.send(t, formPost("/login/", aliceForm(false)))
	token, ok := aa.sessionCookie(p)
	if p.status != http.StatusSeeOther || !ok || token == "" {
		t.Fatalf("POST /login/ as alice: got status %d, Set-Cookie %q; want 303 with a session cookie; body:\n%s", p.status, p.header.Values("Set-Cookie"), p.body)
	}
	return token
}

// greetingWith is the heading GET / shows with the Cookie header cookie.
func (aa *abuseApp) greetingWith(t *testing.T, cookie string) string {
	t.Helper()
	r := abuseRequest{method: http.MethodGet, path: "/"}
	if cookie != "" {
		r = r.with("Cookie", cookie)
	}
	p := aa.send(t, r)
	if p.status != http.StatusOK {
		t.Fatalf("GET / with Cookie %.60q: got status %d, want 200; body:\n%s", cookie, p.status, p.body)
	}
	return greeting(p.body)
}

// wantLoggedIn fails unless token still names alice's session.
func (aa *abuseApp) wantLoggedIn(t *testing.T, token string) {
	t.Helper()
	if got := aa.greetingWith(t, aa.cookie+"="+token); got != "hello alice" {
		t.Fatalf("GET / with alice's session: got greeting %q, want %q", got, "hello alice")
	}
}

// goErrorText is what would show that a Go error, panic or stack reached
// the browser. Compared in lower case.
var goErrorText = []string{
	"goroutine", "panic", "runtime error", "runtime/", ".go:", "net/http", "http: ",
	"redis", "dial tcp", "connection refused", "eof", "invalid url escape",
	"request body too large", "mime:", "<nil>", "%!", "deadline exceeded",
}

func checkNoGoErrorText(t *testing.T, what, body string) {
	t.Helper()
	lower := strings.ToLower(body)
	for _, s := range goErrorText {
		if strings.Contains(lower, s) {
			t.Errorf("%s: got body containing %q, want no Go error text:\n%s", what, s, body)
		}
	}
}

// waitForSessionToExpire waits until Redis itself has dropped token's session.
func (aa *abuseApp) waitForSessionToExpire(t *testing.T, token string) {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for {
		n, err := aa.check.Exists(context.Background(), sessionKey(token)).Result()
		if err != nil {
			t.Fatalf("EXISTS %s: %v", sessionKey(token), err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session key %s still exists after %v, want it expired", sessionKey(token), hangBound)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (aa *abuseApp) sessionCount(t *testing.T) int {
	t.Helper()
	keys, err := aa.check.Keys(context.Background(), store.SessionPrefix+"*").Result()
	if err != nil {
		t.Fatalf("KEYS %s*: %v", store.SessionPrefix, err)
	}
	return len(keys)
}

// multipartLogin is alice's correct login as multipart/form-data.
func multipartLogin(t *testing.T) (contentType, body string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range map[string]string{"username": aliceName, "password": alicePassword} {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatalf("multipart WriteField: %v", err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatalf("multipart Close: %v", err)
	}
	return mw.FormDataContentType(), buf.String()
}

// TestHostileRequestsNeverBreakTheServer sends one running server a table
// of hostile requests. Each gets its documented status and page, none a
// 500 or Go error text, and afterwards the server still works.
func TestHostileRequestsNeverBreakTheServer(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	// Limits raised: this test is about inputs, not throttling.
	aa := newAbuseApp(t, rs, abuseSettings{limits: auth.Limits{PerUser: 1000, PerIP: 1000}})
	live := aa.login(t)

	// A well-formed token whose session Redis has expired: minted by a
	// replica with a one-second lifetime on the same Redis.
	short := newAbuseApp(t, rs, abuseSettings{lifetime: time.Second, instanceID: "short"})
	expired := short.login(t)
	short.waitForSessionToExpire(t, expired)
	forged := randomToken(t)

	cookie := func(values ...string) map[string]string {
		parts := make([]string, len(values))
		for i, v := range values {
			parts[i] = testCookieName + "=" + v
		}
		return map[string]string{"Cookie": strings.Join(parts, "; ")}
	}
	get := func(c map[string]string) abuseRequest {
		return abuseRequest{method: http.MethodGet, path: "/", header: c}
	}
	login := func(username, password string) abuseRequest {
		return formPost("/login/", url.Values{"username": {username}, "password": {password}})
	}
	loginNext := func(next string) abuseRequest {
		f := aliceForm(false)
		f.Set("next", next)
		return formPost("/login/", f)
	}
	raw := func(contentType, body string) abuseRequest {
		r := abuseRequest{method: http.MethodPost, path: "/login/", body: body}
		if contentType != "" {
			r = r.with("Content-Type", contentType)
		}
		return r
	}
	logoutWithLive := abuseRequest{method: http.MethodPost, path: "/logout/", header: cookie(live)}
	mpType, mpBody := multipartLogin(t)
	aliceBody := aliceForm(false).Encode()

	const (
		loggedOut      = "hello"
		loggedIn       = "hello alice"
		badRequest     = "Bad request"
		tooLarge       = "Request too large"
		crossSiteText  = "This form was sent from another site"
		methodRejected = "Method Not Allowed"
	)
	sessionsBefore := aa.sessionCount(t)
	for _, tc := range []struct {
		name string
		req  abuseRequest
		want int
		// text must be in the body; greet, if set, is the page's heading.
		text, greet string
		// location, if set, is the wanted Location header.
		location string
		// newSession: the answer logs in (sets the cookie, adds a session).
		newSession bool
	}{
		// Cookies that name no usable session read as logged out.
		{name: "malformed cookie", req: get(cookie("not a token!")), want: 200, greet: loggedOut},
		{name: "empty cookie", req: get(cookie("")), want: 200, greet: loggedOut},
		{name: "4 KB cookie", req: get(cookie(strings.Repeat("A", 4096))), want: 200, greet: loggedOut},
		{name: "non-ASCII cookie", req: get(cookie("sé∂ssiøn-✓-" + strings.Repeat("ü", 16))), want: 200, greet: loggedOut},
		{name: "binary cookie", req: get(cookie("\x80\x81\xfe\xff\x9b" + strings.Repeat("\xc3", 38))), want: 200, greet: loggedOut},
		{name: "forged well-formed token", req: get(cookie(forged)), want: 200, greet: loggedOut},
		{name: "token of an expired session", req: get(cookie(expired)), want: 200, greet: loggedOut},
		// Duplicate cookies: the first WELL-FORMED one is used, whether it
		// names a session or not; malformed ones are skipped.
		{name: "duplicate cookies, forged then valid", req: get(cookie(forged, live)), want: 200, greet: loggedOut},
		{name: "duplicate cookies, valid then forged", req: get(cookie(live, forged)), want: 200, greet: loggedIn},
		{name: "duplicate cookies, malformed then valid", req: get(cookie("garbage", live)), want: 200, greet: loggedIn},

		// Form bodies: 4 KB is the limit.
		{name: "form body of exactly 4 KB", req: raw("application/x-www-form-urlencoded", "username=alice&password="+strings.Repeat("x", maxFormBytes-len("username=alice&password="))), want: 400, text: invalidLogin},
		{name: "form body one byte over 4 KB", req: raw("application/x-www-form-urlencoded", "username=alice&password="+strings.Repeat("x", maxFormBytes+1-len("username=alice&password="))), want: 413, text: tooLarge},
		{name: "1 MB password", req: login(aliceName, strings.Repeat("p", 1<<20)), want: 413, text: tooLarge},
		{name: "2000-byte password", req: login(aliceName, strings.Repeat("p", 2000)), want: 400, text: invalidLogin},
		{name: "bad percent-encoding in the body", req: raw("application/x-www-form-urlencoded", "username=%zz&password=x"), want: 400, text: badRequest},
		{name: "truncated percent-encoding in the body", req: raw("application/x-www-form-urlencoded", "username=alice&password=%4"), want: 400, text: badRequest},
		{name: "bad percent-encoding in the query of a correct login", req: formPost("/login/?x=%zz", aliceForm(false)), want: 400, text: badRequest},
		{name: "unparsable content type", req: raw("application/x-www-form-urlencoded; =;", aliceBody), want: 400, text: badRequest},

		// Other content types are not read as forms: even alice's correct
		// credentials are an empty, refused login.
		{name: "JSON body", req: raw("application/json", `{"username":"alice","password":"`+alicePassword+`"}`), want: 400, text: invalidLogin},
		{name: "multipart body", req: raw(mpType, mpBody), want: 400, text: invalidLogin},
		{name: "text/plain body", req: raw("text/plain", aliceBody), want: 400, text: invalidLogin},
		{name: "no content type", req: raw("", aliceBody), want: 400, text: invalidLogin},
		{name: "1 MB JSON body", req: raw("application/json", `{"p":"`+strings.Repeat("p", 1<<20)+`"}`), want: 400, text: invalidLogin},

		// Control characters in the username: the generic refusal.
		{name: "NUL in username", req: login("ali\x00ce", alicePassword), want: 400, text: invalidLogin},
		{name: "newline in username", req: login("alice\n", alicePassword), want: 400, text: invalidLogin},
		{name: "CRLF and header in username", req: login("alice\r\nSet-Cookie: x=y", alicePassword), want: 400, text: invalidLogin},
		{name: "tab in username", req: login("ali\tce", alicePassword), want: 400, text: invalidLogin},
		{name: "ESC in username", req: login("\x1b[31malice", alicePassword), want: 400, text: invalidLogin},
		{name: "DEL in username", req: login("alice\x7f", alicePassword), want: 400, text: invalidLogin},
		{name: "line separator in username", req: login("alice\u2028", alicePassword), want: 400, text: invalidLogin},
		{name: "invalid UTF-8 in username", req: login("alice\xff", alicePassword), want: 400, text: invalidLogin},
		{name: "empty username and password", req: login("", ""), want: 400, text: invalidLogin},

		// Open redirects: a successful login goes home instead.
		{name: "next https://evil.example", req: loginNext("https://evil.example"), want: 303, location: "/", newSession: true},
		{name: "next //evil.example", req: loginNext("//evil.example"), want: 303, location: "/", newSession: true},
		{name: `next /\evil.example`, req: loginNext(`/\evil.example`), want: 303, location: "/", newSession: true},
		{name: `next \\evil.example`, req: loginNext(`\\evil.example`), want: 303, location: "/", newSession: true},
		{name: "next /%2F%2Fevil.example", req: loginNext("/%2F%2Fevil.example"), want: 303, location: "/", newSession: true},
		{name: "next %2F%2Fevil", req: loginNext("%2F%2Fevil"), want: 303, location: "/", newSession: true},
		{name: "next /%5Cevil", req: loginNext("/%5Cevil"), want: 303, location: "/", newSession: true},
		{name: "next javascript:alert(1)", req: loginNext("javascript:alert(1)"), want: 303, location: "/", newSession: true},
		{name: "next /<tab>/evil", req: loginNext("/\t/evil"), want: 303, location: "/", newSession: true},
		{name: "next /?x=1 is kept", req: loginNext("/?x=1"), want: 303, location: "/?x=1", newSession: true},

		// Cross-site POSTs, login included, are refused before any session
		// or credential is looked at.
		{name: "login, Sec-Fetch-Site cross-site", req: formPost("/login/", aliceForm(false)).with("Sec-Fetch-Site", "cross-site"), want: 403, text: crossSiteText},
		{name: "login, Sec-Fetch-Site same-site", req: formPost("/login/", aliceForm(false)).with("Sec-Fetch-Site", "same-site"), want: 403, text: crossSiteText},
		{name: "login, foreign Origin without Sec-Fetch-Site", req: formPost("/login/", aliceForm(false)).with("Origin", "https://evil.example"), want: 403, text: crossSiteText},
		{name: "login, Origin null", req: formPost("/login/", aliceForm(false)).with("Origin", "null"), want: 403, text: crossSiteText},
		{name: "logout, Sec-Fetch-Site cross-site", req: logoutWithLive.with("Sec-Fetch-Site", "cross-site"), want: 403, text: crossSiteText},
		{name: "logout, foreign Origin without Sec-Fetch-Site", req: logoutWithLive.with("Origin", "https://evil.example"), want: 403, text: crossSiteText},
		// The controls: same-origin POSTs pass.
		{name: "login, Sec-Fetch-Site same-origin", req: formPost("/login/", aliceForm(false)).with("Sec-Fetch-Site", "same-origin"), want: 303, location: "/", newSession: true},
		{name: "login, own Origin", req: formPost("/login/", aliceForm(false)).with("Origin", aa.srv.URL), want: 303, location: "/", newSession: true},

		// Odd methods and paths.
		{name: "POST /", req: formPost("/", aliceForm(false)), want: 405, text: methodRejected},
		{name: "PUT /login/", req: abuseRequest{method: http.MethodPut, path: "/login/", body: aliceBody}, want: 405, text: methodRejected},
		{name: "8 KB path", req: abuseRequest{method: http.MethodGet, path: "/" + strings.Repeat("a", 8192)}, want: 404, text: "Not found"},
		{name: "encoded NUL in the path", req: abuseRequest{method: http.MethodGet, path: "/%00"}, want: 404, text: "Not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := aa.sessionCount(t)
			p := aa.send(t, tc.req)
			if p.status != tc.want {
				t.Fatalf("got status %d, want %d; body:\n%s", p.status, tc.want, p.body)
			}
			checkNoGoErrorText(t, tc.name, p.body)
			if tc.text != "" && !strings.Contains(p.body, tc.text) {
				t.Errorf("got body without %q:\n%s", tc.text, p.body)
			}
			if tc.greet != "" {
				if got := greeting(p.body); got != tc.greet {
					t.Errorf("got greeting %q, want %q", got, tc.greet)
				}
			}
			if got := p.header.Get("Location"); got != tc.location {
				t.Errorf("got Location %q, want %q", got, tc.location)
			}
			_, setsCookie := aa.sessionCookie(p)
			after := aa.sessionCount(t)
			if tc.newSession {
				if !setsCookie || after != before+1 {
					t.Errorf("got Set-Cookie %v and %d→%d sessions, want a cookie and one new session", setsCookie, before, after)
				}
			} else if tc.greet != loggedIn {
				// Only a request carrying alice's live session may get
				// its cookie back; nothing else may log in or add a
				// session.
				if setsCookie || after != before {
					t.Errorf("got Set-Cookie %q and %d→%d sessions, want no cookie and no new session", p.header.Values("Set-Cookie"), before, after)
				}
			}
		})
	}
	t.Logf("sessions: %d before the table, %d after", sessionsBefore, aa.sessionCount(t))

	// Refused cross-site logouts left alice logged in; the server still
	// answers and a normal login still works.
	aa.wantLoggedIn(t, live)
	if got := aa.greetingWith(t, ""); got != "hello" {
		t.Fatalf("GET / without a cookie after the table: got greeting %q, want %q", got, "hello")
	}
	aa.wantLoggedIn(t, aa.login(t))
}

// TestHostileBinaryCookieOnTheWire sends a Cookie header with control
// characters, which a Go client refuses to send, over a raw connection.
// net/http refuses it before the app sees it: 400, connection closed, and
// the server keeps serving.
func TestHostileBinaryCookieOnTheWire(t *testing.T) {
	t.Parallel()
	aa := newAbuseApp(t, redistest.Start(t), abuseSettings{})
	conn, err := net.DialTimeout("tcp", aa.srv.Listener.Addr().String(), hangBound)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(hangBound)); err != nil {
		t.Fatal(err)
	}
	req := "GET / HTTP/1.1\r\nHost: x\r\nCookie: " + testCookieName + "=\x00\x01\x02\x7f\x1b\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatalf("write: %v", err)
	}
	reply, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	status, _, _ := strings.Cut(string(reply), "\r\n")
	if !strings.HasPrefix(status, "HTTP/1.1 400 ") {
		t.Fatalf("got status line %q, want 400; reply:\n%s", status, reply)
	}
	t.Logf("net/http's own answer (the app never sees the request): %q", reply)
	if got := aa.greetingWith(t, ""); got != "hello" {
		t.Fatalf("GET / afterwards: got greeting %q, want %q", got, "hello")
	}
}

// retryAfter parses a 429's Retry-After and checks it is a whole number of
// seconds, at least 1 and at most the window.
func retryAfter(t *testing.T, what string, p page, window time.Duration) int {
	t.Helper()
	v := p.header.Get("Retry-After")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > int(window.Seconds()) {
		t.Fatalf("%s: got Retry-After %q, want whole seconds from 1 to %d", what, v, int(window.Seconds()))
	}
	return n
}

// pttl checks that key exists with a TTL no longer than window.
func pttl(t *testing.T, c *redis.Client, key string, window time.Duration) {
	t.Helper()
	d, err := c.PTTL(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	if d <= 0 || d > window {
		t.Errorf("PTTL %s: got %v, want > 0 and <= %v", key, d, window)
	}
}

func zcard(t *testing.T, c *redis.Client, key string) int64 {
	t.Helper()
	n, err := c.ZCard(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("ZCARD %s: %v", key, err)
	}
	return n
}

func keyExists(t *testing.T, c *redis.Client, key string) bool {
	t.Helper()
	n, err := c.Exists(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("EXISTS %s: %v", key, err)
	}
	return n == 1
}

// TestBruteForceAcrossReplicasIsCapped: 100 wrong passwords for alice from
// one address, alternating between two replicas on one Redis. The account
// limit is shared: exactly the first 10 are checked.
func TestBruteForceAcrossReplicasIsCapped(t *testing.T) {
	t.Parallel()
	const perUser, window = 10, 15 * time.Minute
	rs := redistest.Start(t)
	limits := auth.Limits{PerUser: perUser, PerIP: 50, Window: window}
	replicas := []*abuseApp{
		newAbuseApp(t, rs, abuseSettings{limits: limits, instanceID: "replica-a"}),
		newAbuseApp(t, rs, abuseSettings{limits: limits, instanceID: "replica-b"}),
	}
	wrong := formPost("/login/", url.Values{"username": {aliceName}, "password": {"not-alices-password"}})

	var refused string // the body of the first 400
	for i := range 100 {
		aa := replicas[i%2]
		p := aa.send(t, wrong)
		what := "attempt " + strconv.Itoa(i+1) + " on " + p.header.Get("X-Served-By")
		if _, ok := aa.sessionCookie(p); ok {
			t.Fatalf("%s: got a session cookie, want none", what)
		}
		if i < perUser {
			if p.status != http.StatusBadRequest {
				t.Fatalf("%s: got status %d, want 400; body:\n%s", what, p.status, p.body)
			}
			if refused == "" {
				refused = p.body
			}
			continue
		}
		if p.status != http.StatusTooManyRequests {
			t.Fatalf("%s: got status %d, want 429; body:\n%s", what, p.status, p.body)
		}
		retryAfter(t, what, p, window)
		if p.body != refused {
			t.Fatalf("%s: 429 body differs from the 400 body for the same form:\n429:\n%s\n400:\n%s", what, p.body, refused)
		}
	}

	// While throttled, the right password is not even checked.
	for _, aa := range replicas {
		p := aa.send(t, formPost("/login/", aliceForm(false)))
		what := "right password on " + p.header.Get("X-Served-By")
		if p.status != http.StatusTooManyRequests {
			t.Fatalf("%s: got status %d, want 429; body:\n%s", what, p.status, p.body)
		}
		retryAfter(t, what, p, window)
		if p.body != refused {
			t.Fatalf("%s: 429 body differs from the 400 body:\n%s", what, p.body)
		}
		if _, ok := aa.sessionCookie(p); ok {
			t.Fatalf("%s: got a session cookie, want none", what)
		}
	}

	check := replicas[0].check
	userKey, ipKey := store.ThrottleUserKey(aliceName), store.ThrottleIPKey("127.0.0.1")
	for _, key := range []string{userKey, ipKey} {
		pttl(t, check, key, window)
		// Refused attempts are not recorded: only the 10 checked ones.
		if got := zcard(t, check, key); got != perUser {
			t.Errorf("ZCARD %s: got %d, want %d", key, got, perUser)
		}
	}
}

// TestBruteForceLockoutEndsWithTheWindow: once the window has passed the
// right password works, and it wipes the account's failures.
func TestBruteForceLockoutEndsWithTheWindow(t *testing.T) {
	t.Parallel()
	const perUser, window = 3, 2 * time.Second
	aa := newAbuseApp(t, redistest.Start(t), abuseSettings{limits: auth.Limits{PerUser: perUser, PerIP: 100, Window: window}})
	wrong := formPost("/login/", url.Values{"username": {aliceName}, "password": {"not-alices-password"}})
	userKey := store.ThrottleUserKey(aliceName)

	for i := range perUser {
		if p := aa.send(t, wrong); p.status != http.StatusBadRequest {
			t.Fatalf("wrong password %d: got status %d, want 400", i+1, p.status)
		}
	}
	p := aa.send(t, formPost("/login/", aliceForm(false)))
	if p.status != http.StatusTooManyRequests {
		t.Fatalf("right password after %d failures: got status %d, want 429", perUser, p.status)
	}
	t.Logf("throttled with Retry-After %d", retryAfter(t, "right password while throttled", p, window))
	pttl(t, aa.check, userKey, window)

	// Redis expires the counter by itself (PEXPIRE window).
	deadline := time.Now().Add(window + hangBound)
	for keyExists(t, aa.check, userKey) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists %v after the last failure, want it expired", userKey, window+hangBound)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Two failures, then success: the success must wipe them, so that
	// perUser more failures are all checked (400), none throttled.
	for i := range 2 {
		if p := aa.send(t, wrong); p.status != http.StatusBadRequest {
			t.Fatalf("after the window, wrong password %d: got status %d, want 400", i+1, p.status)
		}
	}
	aa.wantLoggedIn(t, aa.login(t))
	if keyExists(t, aa.check, userKey) {
		t.Fatalf("after a successful login: %s exists, want the account's failures reset", userKey)
	}
	for i := range perUser {
		if p := aa.send(t, wrong); p.status != http.StatusBadRequest {
			t.Fatalf("after the reset, wrong password %d: got status %d, want 400 (2 earlier failures must not count)", i+1, p.status)
		}
	}
}

// loginFrom posts a wrong password for username with the given
// X-Forwarded-For ("" for none).
func loginFrom(username, xff string) abuseRequest {
	r := formPost("/login/", url.Values{"username": {username}, "password": {"spray-password-1"}})
	if xff != "" {
		r = r.with("X-Forwarded-For", xff)
	}
	return r
}

func TestThrottlePerIPStopsPasswordSpraying(t *testing.T) {
	t.Parallel()
	const perIP, window = 5, 15 * time.Minute
	aa := newAbuseApp(t, redistest.Start(t), abuseSettings{limits: auth.Limits{PerUser: 10, PerIP: perIP, Window: window}})

	for i := range perIP {
		if p := aa.send(t, loginFrom("sprayed-"+strconv.Itoa(i), "")); p.status != http.StatusBadRequest {
			t.Fatalf("failure %d: got status %d, want 400", i+1, p.status)
		}
	}
	for _, tc := range []struct {
		name string
		req  abuseRequest
	}{
		{"a sixth user", loginFrom("sprayed-next", "")},
		{"alice with the right password", formPost("/login/", aliceForm(false))},
	} {
		p := aa.send(t, tc.req)
		if p.status != http.StatusTooManyRequests {
			t.Fatalf("%s after %d failures from one address: got status %d, want 429", tc.name, perIP, p.status)
		}
		retryAfter(t, tc.name, p, window)
		if _, ok := aa.sessionCookie(p); ok {
			t.Fatalf("%s: got a session cookie, want none", tc.name)
		}
	}
	if got := zcard(t, aa.check, store.ThrottleIPKey("127.0.0.1")); got != perIP {
		t.Errorf("ZCARD of the address: got %d, want %d", got, perIP)
	}
	// The refused attempts' per-account reservations were given back.
	for _, name := range []string{"sprayed-next", aliceName} {
		if key := store.ThrottleUserKey(name); keyExists(t, aa.check, key) {
			t.Errorf("%s exists after a refused attempt, want the reservation released", key)
		}
	}
}

func TestThrottleIgnoresXForwardedForFromUntrustedPeers(t *testing.T) {
	t.Parallel()
	const perIP = 5
	aa := newAbuseApp(t, redistest.Start(t), abuseSettings{limits: auth.Limits{PerIP: perIP}})

	for i := range perIP {
		p := aa.send(t, loginFrom("sprayed-"+strconv.Itoa(i), "203.0.113."+strconv.Itoa(i+1)))
		if p.status != http.StatusBadRequest {
			t.Fatalf("failure %d: got status %d, want 400", i+1, p.status)
		}
	}
	p := aa.send(t, loginFrom("sprayed-next", "203.0.113.99"))
	if p.status != http.StatusTooManyRequests {
		t.Fatalf("sixth attempt with yet another fake X-Forwarded-For: got status %d, want 429", p.status)
	}
	if got := zcard(t, aa.check, store.ThrottleIPKey("127.0.0.1")); got != perIP {
		t.Errorf("ZCARD of the real peer's address: got %d, want %d", got, perIP)
	}
	keys, err := aa.check.Keys(context.Background(), "throttle:ip:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{store.ThrottleIPKey("127.0.0.1")}; !slices.Equal(keys, want) {
		t.Errorf("per-address keys: got %q, want only %q", keys, want)
	}
}

func TestThrottleKeyIsTheClientBehindATrustedProxy(t *testing.T) {
	t.Parallel()
	const perIP = 5
	aa := newAbuseApp(t, redistest.Start(t), abuseSettings{
		limits:         auth.Limits{PerIP: perIP},
		trustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	const clientA, clientB = "198.51.100.1", "198.51.100.2"

	for i := range perIP {
		if p := aa.send(t, loginFrom("sprayed-"+strconv.Itoa(i), clientA)); p.status != http.StatusBadRequest {
			t.Fatalf("failure %d from %s: got status %d, want 400", i+1, clientA, p.status)
		}
	}
	for _, tc := range []struct {
		name, xff string
		want      int
	}{
		{"client A again", clientA, http.StatusTooManyRequests},
		{"client A with spoofed hops on the left", "6.6.6.6, 7.7.7.7, " + clientA, http.StatusTooManyRequests},
		{"client B has its own counter", clientB, http.StatusBadRequest},
		{"no header: the proxy itself", "", http.StatusBadRequest},
	} {
		if p := aa.send(t, loginFrom("sprayed-next", tc.xff)); p.status != tc.want {
			t.Errorf("%s (X-Forwarded-For %q): got status %d, want %d", tc.name, tc.xff, p.status, tc.want)
		}
	}
	for _, tc := range []struct {
		ip   string
		want int64
	}{{clientA, perIP}, {clientB, 1}, {"127.0.0.1", 1}, {"6.6.6.6", 0}, {"7.7.7.7", 0}} {
		if got := zcard(t, aa.check, store.ThrottleIPKey(tc.ip)); got != tc.want {
			t.Errorf("ZCARD %s: got %d, want %d", store.ThrottleIPKey(tc.ip), got, tc.want)
		}
	}
}

// TestThrottleFailsClosedWhenRedisIsDown: without Redis the failures
// cannot be counted, so no password is checked: 503, never 400 or 429.
func TestThrottleFailsClosedWhenRedisIsDown(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	aa := newAbuseApp(t, rs, abuseSettings{limits: auth.Limits{PerUser: 1}})
	// alice is throttled, "bob" is not, before Redis goes away.
	if p := aa.send(t, loginFrom(aliceName, "")); p.status != http.StatusBadRequest {
		t.Fatalf("precondition: wrong password: got status %d, want 400", p.status)
	}
	if p := aa.send(t, formPost("/login/", aliceForm(false))); p.status != http.StatusTooManyRequests {
		t.Fatalf("precondition: right password while throttled: got status %d, want 429", p.status)
	}
	rs.Stop(t)

	for _, tc := range []struct {
		name string
		req  abuseRequest
	}{
		{"right password of a throttled account", formPost("/login/", aliceForm(false))},
		{"wrong password of a throttled account", loginFrom(aliceName, "")},
		{"unthrottled name", loginFrom("bob", "")},
		{"malformed name (address counter only)", loginFrom("bad\x00name", "")},
	} {
		p := aa.send(t, tc.req)
		if p.status != http.StatusServiceUnavailable {
			t.Errorf("%s, Redis down: got status %d, want 503; body:\n%s", tc.name, p.status, p.body)
			continue
		}
		if !strings.Contains(p.body, "Temporarily unavailable") {
			t.Errorf("%s, Redis down: got body without %q:\n%s", tc.name, "Temporarily unavailable", p.body)
		}
		checkNoGoErrorText(t, tc.name, p.body)
		if _, ok := aa.sessionCookie(p); ok {
			t.Errorf("%s, Redis down: got a session cookie, want none", tc.name)
		}
	}
}

// TestEnumerationUnknownWrongAndThrottledLookTheSame compares, for ONE
// username and form, the answer while the account does not exist, after it
// is created (wrong password), once throttled, and once throttled after the
// account is deleted again. Only the status may differ (400 vs 429).
func TestEnumerationUnknownWrongAndThrottledLookTheSame(t *testing.T) {
	t.Parallel()
	const perUser = 2
	aa := newAbuseApp(t, redistest.Start(t), abuseSettings{limits: auth.Limits{PerUser: perUser, PerIP: 100}})
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	form := formPost("/login/", url.Values{"username": {"carol"}, "password": {"not-carols-password"}})

	unknown := aa.send(t, form) // failure 1, no such user
	if err := aa.auth.AddUser(ctx, "carol", "carols-real-password"); err != nil {
		t.Fatalf("AddUser(carol): %v", err)
	}
	wrong := aa.send(t, form)     // failure 2, user exists
	throttled := aa.send(t, form) // refused
	if _, err := aa.auth.DeleteUser(ctx, "carol"); err != nil {
		t.Fatalf("DeleteUser(carol): %v", err)
	}
	throttledUnknown := aa.send(t, form)

	for _, tc := range []struct {
		name string
		p    page
		want int
	}{
		{"unknown user", unknown, http.StatusBadRequest},
		{"wrong password", wrong, http.StatusBadRequest},
		{"throttled existing user", throttled, http.StatusTooManyRequests},
		{"throttled unknown user", throttledUnknown, http.StatusTooManyRequests},
	} {
		if tc.p.status != tc.want {
			t.Errorf("%s: got status %d, want %d", tc.name, tc.p.status, tc.want)
		}
		if !strings.Contains(tc.p.body, invalidLogin) {
			t.Errorf("%s: got body without %q", tc.name, invalidLogin)
		}
		if tc.p.body != unknown.body {
			t.Errorf("%s: body differs from the unknown user's:\n%s\nunknown user:\n%s", tc.name, tc.p.body, unknown.body)
		}
	}
	// An unknown name is throttled after the same number of failures as a
	// real one, so the 429 itself says nothing about existence.
	var statuses []int
	for range perUser + 1 {
		statuses = append(statuses, aa.send(t, formPost("/login/", url.Values{"username": {"never-existed"}, "password": {"x"}})).status)
	}
	if want := []int{400, 400, 429}; !slices.Equal(statuses, want) {
		t.Errorf("unknown name, %d failures: got statuses %v, want %v", perUser+1, statuses, want)
	}
}

// enumerationTimings logs in n times as an unknown user and n times as
// alice with a wrong password, interleaved, and returns each answer's time.
func enumerationTimings(tb testing.TB, send func(abuseRequest) page, n int) (unknown, wrong []time.Duration) {
	tb.Helper()
	unknownForm := formPost("/login/", url.Values{"username": {"nobody-here"}, "password": {"a-wrong-password"}})
	wrongForm := formPost("/login/", url.Values{"username": {aliceName}, "password": {"a-wrong-password"}})
	for i := range n {
		for _, c := range []struct {
			req abuseRequest
			out *[]time.Duration
		}{{unknownForm, &unknown}, {wrongForm, &wrong}} {
			start := time.Now()
			p := send(c.req)
			took := time.Since(start)
			if p.status != http.StatusBadRequest {
				tb.Fatalf("timing login %d: got status %d, want 400", i+1, p.status)
			}
			*c.out = append(*c.out, took)
		}
	}
	return unknown, wrong
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestEnumerationTimingFigures reports (it does not judge) how long an
// unknown user and a wrong password take: both should cost one argon2id
// comparison. Read the figures with -v.
func TestEnumerationTimingFigures(t *testing.T) {
	t.Parallel()
	aa := newAbuseApp(t, redistest.Start(t), abuseSettings{limits: auth.Limits{PerUser: 1000, PerIP: 1000}})
	send := func(r abuseRequest) page { return aa.send(t, r) }
	enumerationTimings(t, send, 2) // warm up pools and the hasher
	unknown, wrong := enumerationTimings(t, send, 30)
	mu, mw := median(unknown), median(wrong)
	t.Logf("median of 30: unknown user %v, wrong password %v (difference %v)", mu.Round(time.Microsecond), mw.Round(time.Microsecond), (mu - mw).Round(time.Microsecond))
}

// BenchmarkEnumerationTiming reports the median answer time of an unknown
// user and of a wrong password:
//
//	go test -run '^$' -bench EnumerationTiming -benchtime 30x ./internal/web
func BenchmarkEnumerationTiming(b *testing.B) {
	aa := newAbuseApp(b, redistest.Start(b), abuseSettings{limits: auth.Limits{PerUser: 1 << 30, PerIP: 1 << 30}})
	send := func(r abuseRequest) page {
		req, err := http.NewRequest(r.method, aa.srv.URL+r.path, strings.NewReader(r.body))
		if err != nil {
			b.Fatal(err)
		}
		for k, v := range r.header {
			req.Header.Set(k, v)
		}
		p, err := fetch(aa.client, req)
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	enumerationTimings(b, send, 2)
	var unknown, wrong []time.Duration
	for b.Loop() {
		u, w := enumerationTimings(b, send, 1)
		unknown, wrong = append(unknown, u...), append(wrong, w...)
	}
	b.ReportMetric(float64(median(unknown).Microseconds())/1000, "unknown-median-ms")
	b.ReportMetric(float64(median(wrong).Microseconds())/1000, "wrong-median-ms")
}

// setCookieAttrs splits a Set-Cookie line into its name=value and a map of
// lower-cased attribute names to values.
func setCookieAttrs(line string) (nameValue string, attrs map[string]string) {
	parts := strings.Split(line, ";")
	attrs = map[string]string{}
	for _, a := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(a), "=")
		attrs[strings.ToLower(k)] = v
	}
	return strings.TrimSpace(parts[0]), attrs
}

func TestSecureCookieAndHSTS(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	const hostCookie = "__Host-session_id"
	for _, tc := range []struct {
		name     string
		settings abuseSettings
		secure   bool
	}{
		{"COOKIE_SECURE=true", abuseSettings{cookieName: hostCookie, cookieSecure: true, instanceID: "secure"}, true},
		{"COOKIE_SECURE=false", abuseSettings{instanceID: "plain"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			aa := newAbuseApp(t, rs, tc.settings)
			token := aa.login(t)
			cookie := aa.cookie + "=" + token
			steps := []struct {
				name string
				req  abuseRequest
				// sets: the answer writes the session cookie.
				sets bool
			}{
				{"GET /", abuseRequest{method: http.MethodGet, path: "/"}, false},
				{"GET /login/", abuseRequest{method: http.MethodGet, path: "/login/"}, false},
				{"POST /login/", formPost("/login/", aliceForm(true)), true},
				{"GET / logged in", abuseRequest{method: http.MethodGet, path: "/"}.with("Cookie", cookie), false},
				{"GET /no-such-page", abuseRequest{method: http.MethodGet, path: "/no-such-page"}, false},
				{"POST /logout/", abuseRequest{method: http.MethodPost, path: "/logout/"}.with("Cookie", cookie), true},
			}
			for _, s := range steps {
				p := aa.send(t, s.req)
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
				if len(lines) != 1 {
					t.Fatalf("%s: got Set-Cookie %q, want exactly one", s.name, lines)
				}
				nv, attrs := setCookieAttrs(lines[0])
				name, _, _ := strings.Cut(nv, "=")
				if name != aa.cookie {
					t.Errorf("%s: got cookie %q, want %q", s.name, name, aa.cookie)
				}
				if tc.secure && !strings.HasPrefix(name, "__Host-") {
					t.Errorf("%s: got cookie name %q, want the __Host- prefix", s.name, name)
				}
				_, secure := attrs["secure"]
				if secure != tc.secure {
					t.Errorf("%s: got Secure %v in %q, want %v", s.name, secure, lines[0], tc.secure)
				}
				if _, ok := attrs["httponly"]; !ok {
					t.Errorf("%s: got %q, want HttpOnly", s.name, lines[0])
				}
				if got := attrs["samesite"]; got != "Lax" {
					t.Errorf("%s: got SameSite %q in %q, want Lax", s.name, got, lines[0])
				}
				if got, ok := attrs["path"]; !ok || got != "/" {
					t.Errorf("%s: got Path %q in %q, want /", s.name, got, lines[0])
				}
				if _, ok := attrs["domain"]; ok {
					t.Errorf("%s: got a Domain in %q, want none (__Host- forbids it)", s.name, lines[0])
				}
			}
		})
	}
}

// checkHardeningHeaders checks the headers every answer must carry.
func checkHardeningHeaders(t *testing.T, what string, p page) {
	t.Helper()
	csp := p.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("%s: got Content-Security-Policy %q, want frame-ancestors 'none'", what, csp)
	}
	for _, bad := range []string{"'unsafe-inline'", "'unsafe-eval'", "*"} {
		if strings.Contains(csp, bad) {
			t.Errorf("%s: got Content-Security-Policy %q, want no %s", what, csp, bad)
		}
	}
	for _, h := range []struct{ name, want string }{
		{"X-Content-Type-Options", "nosniff"},
		{"Referrer-Policy", "same-origin"},
		{"X-Frame-Options", "DENY"},
	} {
		if got := p.header.Get(h.name); got != h.want {
			t.Errorf("%s: got %s %q, want %q", what, h.name, got, h.want)
		}
	}
}

// TestAbuseSecurityHeadersOnEveryPage covers the pages a user sees,
// including the 403, 404 and 503 error pages.
func TestAbuseSecurityHeadersOnEveryPage(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	aa := newAbuseApp(t, rs, abuseSettings{idle: 30 * time.Minute})
	token := aa.login(t)
	cookie := aa.cookie + "=" + token
	get := func(path string) abuseRequest { return abuseRequest{method: http.MethodGet, path: path} }

	steps := []struct {
		name   string
		req    abuseRequest
		status int
		// noStore: must be Cache-Control: no-store (user data or cookie).
		noStore bool
		// clearSiteData is the wanted Clear-Site-Data header.
		clearSiteData string
		redisDown     bool
	}{
		{name: "GET / logged out", req: get("/"), status: 200, noStore: true},
		{name: "GET / logged in", req: get("/").with("Cookie", cookie), status: 200, noStore: true},
		{name: "GET /login/", req: get("/login/"), status: 200, noStore: true},
		{name: "GET /logout/ logged in", req: get("/logout/").with("Cookie", cookie), status: 200, noStore: true},
		{name: "POST /login/ refused", req: loginFrom(aliceName, ""), status: 400, noStore: true},
		{name: "POST /login/", req: formPost("/login/", aliceForm(false)), status: 303, noStore: true},
		{name: "404", req: get("/no-such-page"), status: 404},
		{name: "403 cross-site POST", req: formPost("/logout/", url.Values{}).with("Cookie", cookie).with("Sec-Fetch-Site", "cross-site"), status: 403},
		{name: "POST /logout/", req: formPost("/logout/", url.Values{}).with("Cookie", cookie), status: 303, noStore: true, clearSiteData: `"cookies"`},
		{name: "503 GET / with a session", req: get("/").with("Cookie", aa.cookie+"="+randomToken(t)), status: 503, noStore: true, redisDown: true},
		{name: "503 POST /login/", req: formPost("/login/", aliceForm(false)), status: 503, noStore: true, redisDown: true},
	}
	stopped := false
	for _, s := range steps {
		if s.redisDown && !stopped {
			rs.Stop(t)
			stopped = true
		}
		p := aa.send(t, s.req)
		if p.status != s.status {
			t.Errorf("%s: got status %d, want %d; body:\n%s", s.name, p.status, s.status, p.body)
		}
		checkHardeningHeaders(t, s.name, p)
		cc := p.header.Values("Cache-Control")
		_, setsCookie := aa.sessionCookie(p)
		if (s.noStore || setsCookie) && !slices.Equal(cc, []string{"no-store"}) {
			t.Errorf("%s (sets cookie: %v): got Cache-Control %q, want exactly [no-store]", s.name, setsCookie, cc)
		}
		if got := p.header.Get("Clear-Site-Data"); got != s.clearSiteData {
			t.Errorf("%s: got Clear-Site-Data %q, want %q", s.name, got, s.clearSiteData)
		}
	}
}

// TestAbuseSessionIDNotAcceptedFromURLOrForm: only the cookie carries the
// session; a token in the query or the form is ignored.
func TestAbuseSessionIDNotAcceptedFromURLOrForm(t *testing.T) {
	t.Parallel()
	aa := newAbuseApp(t, redistest.Start(t), abuseSettings{})
	token := aa.login(t)

	for _, name := range []string{testCookieName, "session", "token"} {
		for _, path := range []string{"/?" + name + "=" + token, "/logout/?" + name + "=" + token} {
			p := aa.send(t, abuseRequest{method: http.MethodGet, path: path})
			if p.status != http.StatusOK || strings.Contains(p.body, aliceName) {
				t.Errorf("GET %s without a cookie: got status %d, alice named %v; want 200, not logged in", path, p.status, strings.Contains(p.body, aliceName))
			}
		}
		// Logging out "by form field" must not end alice's session.
		p := aa.send(t, formPost("/logout/", url.Values{name: {token}}))
		if p.status != http.StatusSeeOther {
			t.Errorf("POST /logout/ with form field %s: got status %d, want 303", name, p.status)
		}
		aa.wantLoggedIn(t, token)
		// Nor does a login form field adopt the token.
		p = aa.send(t, formPost("/login/", url.Values{"username": {aliceName}, "password": {"wrong"}, name: {token}}))
		if _, ok := aa.sessionCookie(p); ok || p.status != http.StatusBadRequest {
			t.Errorf("POST /login/ wrong password with form field %s: got status %d, cookie %v; want 400 without a cookie", name, p.status, ok)
		}
	}
	aa.wantLoggedIn(t, token)
}

// panickyFS is the static file system the App serves: opening one of
// its trap names panics, so a panic happens inside the real middleware
// chain; every other name is the real static file.
type panickyFS struct{ fs.FS }

const panicSecret = "abuse-boom-detail-7c1e"

func (p panickyFS) Open(name string) (fs.File, error) {
	switch name {
	case "static/boom.css":
		panic(panicSecret)
	case "static/index.css":
		var none []string
		_ = none[len(name)] // a runtime error, not a panic(value)
	case "static/abort.css":
		panic(http.ErrAbortHandler)
	case "static/error.css":
		panic(errors.New(panicSecret))
	}
	return p.FS.Open(name)
}

// TestPanicInAHandlerIsAGeneric500 makes handlers behind App.Handler panic
// and checks the answer, the log and that the server carries on.
func TestPanicInAHandlerIsAGeneric500(t *testing.T) {
	t.Parallel()
	aa := newAbuseApp(t, redistest.Start(t), abuseSettings{})
	a := aa.app
	a.static = panickyFS{templates.FS}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	client := newClient(t, nil)
	home := func(t *testing.T) {
		t.Helper()
		p := doRequest(t, client, newRequest(t, http.MethodGet, srv.URL+"/", nil))
		if p.status != http.StatusOK || greeting(p.body) != "hello" {
			t.Fatalf("GET / after the panic: got status %d, greeting %q; want 200, %q", p.status, greeting(p.body), "hello")
		}
	}
	check := func(t *testing.T, p page, logged string, logsBefore int) {
		t.Helper()
		if p.status != http.StatusInternalServerError {
			t.Fatalf("got status %d, want 500; body:\n%s", p.status, p.body)
		}
		if !strings.Contains(p.body, "Something went wrong") {
			t.Errorf("got body without the generic message:\n%s", p.body)
		}
		for _, leak := range []string{panicSecret, "partial page", aliceName, "index out of range"} {
			if strings.Contains(p.body, leak) {
				t.Errorf("got body containing %q, want the generic page only:\n%s", leak, p.body)
			}
		}
		checkNoGoErrorText(t, "panic page", p.body)
		checkHardeningHeaders(t, "panic page", p)
		if got := strings.Count(aa.logs.String(), logged) - logsBefore; got != 1 {
			t.Errorf("got %d log lines with %q, want 1:\n%s", got, logged, aa.logs.String())
		}
	}

	for _, tc := range []struct {
		path string
		// logged is what the one log line about the panic contains.
		logged string
	}{
		{"/static/boom.css", panicSecret},
		{"/static/index.css", "index out of range"},
		{"/static/error.css", panicSecret},
	} {
		t.Run(tc.path, func(t *testing.T) {
			before := strings.Count(aa.logs.String(), tc.logged)
			check(t, doRequest(t, client, newRequest(t, http.MethodGet, srv.URL+tc.path, nil)), tc.logged, before)
			home(t)
		})
	}

	t.Run("after part of a page was written", func(t *testing.T) {
		// The session chain buffers the page, so none of it may leak
		// out next to the error page. Built as Handler builds it.
		const marker = "abuse-partial-write-3b9a"
		h := a.recoverPanics(a.logRequests(a.securityHeaders(a.crossOrigin(
			noStore(limitBody(a.loadAndSave(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, "partial page "+aliceName)
				panic(marker)
			}))))))))
		partial := httptest.NewServer(h)
		t.Cleanup(partial.Close)
		before := strings.Count(aa.logs.String(), marker)
		check(t, doRequest(t, client, newRequest(t, http.MethodGet, partial.URL+"/", nil)), marker, before)
		home(t)
	})

	t.Run("ErrAbortHandler", func(t *testing.T) {
		// net/http's way to abort a response: the connection is cut, no
		// page is written, and the server carries on.
		if _, err := fetch(client, newRequest(t, http.MethodGet, srv.URL+"/static/abort.css", nil)); err == nil {
			t.Fatalf("GET /static/abort.css: got a response, want the connection cut")
		}
		home(t)
	})
	if n := strings.Count(aa.logs.String(), "level=ERROR"); n != 4 {
		t.Errorf("got %d ERROR log lines, want 4 (one per recovered panic):\n%s", n, aa.logs.String())
	}
}

// TestPanicLogLineCarriesTheRequestID: the one log line about a panic must
// name the request id the client was given in X-Request-Id, and the panicked
// request must be in the access log like every other ("one line per
// request", logRequests), or an operator cannot connect a user's report to
// the error.
func TestPanicLogLineCarriesTheRequestID(t *testing.T) {
	t.Parallel()
	aa := newAbuseApp(t, redistest.Start(t), abuseSettings{})
	aa.app.static = panickyFS{templates.FS}
	srv := httptest.NewServer(aa.app.Handler())
	t.Cleanup(srv.Close)

	p := doRequest(t, newClient(t, nil), newRequest(t, http.MethodGet, srv.URL+"/static/boom.css", nil))
	if p.status != http.StatusInternalServerError {
		t.Fatalf("GET /static/boom.css: got status %d, want 500", p.status)
	}
	id := p.header.Get("X-Request-Id")
	if id == "" {
		t.Fatalf("GET /static/boom.css: got no X-Request-Id, want one")
	}
	var panicLine, accessLine string
	for _, line := range strings.Split(aa.logs.String(), "\n") {
		switch {
		case strings.Contains(line, panicSecret):
			panicLine = line
		case strings.Contains(line, "msg=request ") && strings.Contains(line, "path=/static/boom.css"):
			accessLine = line
		}
	}
	if !strings.Contains(panicLine, "request_id="+id) {
		t.Errorf("panic log line: got %q, want it to carry request_id=%s (the X-Request-Id sent)", panicLine, id)
	}
	if !strings.Contains(accessLine, "status=500") || !strings.Contains(accessLine, "request_id="+id) {
		t.Errorf("access log line for the panicked request: got %q, want one with status=500 and request_id=%s", accessLine, id)
	}
}

// TestSecretsNeverLoggedThroughThrottling runs a login, failed logins
// until throttled (wrong and right password), a refused cross-site logout,
// a token in the URL, a logout and a forged cookie, and checks the log
// holds no secret.
func TestSecretsNeverLoggedThroughThrottling(t *testing.T) {
	t.Parallel()
	const perUser = 2
	aa := newAbuseApp(t, redistest.Start(t), abuseSettings{limits: auth.Limits{PerUser: perUser}, idle: 30 * time.Minute})
	const wrongPassword = "a-wrong-password-4f2d"
	forged := randomToken(t)

	token := aa.login(t)
	cookie := aa.cookie + "=" + token
	// The failed and throttled logins come from alice's logged-in browser,
	// so the live token is in every request that reaches a log call.
	var statuses []int
	for _, form := range []url.Values{
		{"username": {aliceName}, "password": {wrongPassword}},
		{"username": {aliceName}, "password": {wrongPassword}},
		{"username": {aliceName}, "password": {wrongPassword}},
		{"username": {aliceName}, "password": {alicePassword}},
	} {
		statuses = append(statuses, aa.send(t, formPost("/login/", form).with("Cookie", cookie)).status)
	}
	if want := []int{400, 400, 429, 429}; !slices.Equal(statuses, want) {
		t.Fatalf("failed logins: got statuses %v, want %v (the flow must reach the throttle)", statuses, want)
	}
	for _, r := range []abuseRequest{
		{method: http.MethodGet, path: "/", header: map[string]string{"Cookie": cookie}},
		{method: http.MethodGet, path: "/?session_id=" + token},
		formPost("/logout/", url.Values{}).with("Cookie", cookie).with("Sec-Fetch-Site", "cross-site"),
		formPost("/logout/", url.Values{}).with("Cookie", cookie),
		{method: http.MethodGet, path: "/", header: map[string]string{"Cookie": cookie}},
		{method: http.MethodGet, path: "/", header: map[string]string{"Cookie": aa.cookie + "=" + forged}},
	} {
		aa.send(t, r)
	}

	logs := aa.logs.String()
	for _, want := range []string{`msg=login `, `msg=logout `, `msg="login failed"`, `msg="login throttled"`, `msg="cross-origin request refused"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs: got no %q, want the whole flow logged:\n%s", want, logs)
		}
	}
	for _, secret := range []struct{ name, value string }{
		{"password", alicePassword},
		{"wrong password", wrongPassword},
		{"session token", token},
		{"hash of the session token", tokenHash(token)},
		{"forged token", forged},
		{"hash of the forged token", tokenHash(forged)},
	} {
		if strings.Contains(logs, secret.value) {
			t.Errorf("logs: contain the %s %q, want it never logged:\n%s", secret.name, secret.value, logs)
		}
	}
}

// FuzzLoginForm posts arbitrary bodies, content types and cookies at the
// real routes on a real Redis: whatever comes in, the answer is never a 500
// (which is also what a recovered panic would be) and shows no Go error.
func FuzzLoginForm(f *testing.F) {
	aa := newAbuseApp(f, redistest.Start(f), abuseSettings{limits: auth.Limits{PerUser: 5, PerIP: 20}})
	h := aa.app.Handler()
	const formType = "application/x-www-form-urlencoded"
	mpType, mpBody := func() (string, string) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("username", aliceName)
		_ = mw.WriteField("password", alicePassword)
		_ = mw.Close()
		return mw.FormDataContentType(), buf.String()
	}()
	alice := aliceForm(true).Encode()
	for _, s := range []struct {
		target      uint8
		ip          uint8
		contentType string
		cookie      string
		body        string
	}{
		{0, 1, formType, "", alice},
		{0, 1, formType, "", "username=alice&password=wrong"},
		{0, 2, formType, "", "username=%zz&password=%"},
		{0, 2, formType + "; charset=utf-8", "", "username=ali%00ce&password=x&next=//evil"},
		{0, 3, "application/json", "", `{"username":"alice"}`},
		{0, 3, mpType, "", mpBody},
		{0, 3, "multipart/form-data", "", "--x\r\n"},
		{0, 4, "text/plain", "", alice},
		{0, 4, "", "", alice},
		{0, 4, ";;;=", "", alice},
		{0, 5, formType, testCookieName + "=" + strings.Repeat("A", 43), alice},
		{0, 5, formType, testCookieName + "=\x80\xff; " + testCookieName + "=" + strings.Repeat("_", 43), "username=b&password=" + strings.Repeat("p", 2000)},
		{0, 6, formType, "", "password=" + strings.Repeat("p", 5000)},
		{1, 6, formType, testCookieName + "=" + strings.Repeat("-", 43), ""},
		{2, 7, "", "\x00\x01; ;;=", ""},
		{3, 7, formType, "", alice},
	} {
		f.Add(s.target, s.ip, s.contentType, s.cookie, []byte(s.body))
	}
	targets := []struct{ method, path string }{
		{http.MethodPost, "/login/"},
		{http.MethodPost, "/logout/"},
		{http.MethodGet, "/"},
		{http.MethodPost, "/login/?next=%2F%2Fevil"},
	}
	allowed := []int{200, 303, 400, 403, 405, 413, 429}
	f.Fuzz(func(t *testing.T, target, ip uint8, contentType, cookie string, body []byte) {
		tg := targets[int(target)%len(targets)]
		req := httptest.NewRequest(tg.method, tg.path, bytes.NewReader(body))
		req.RemoteAddr = "10.0.0." + strconv.Itoa(int(ip)) + ":4321"
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !slices.Contains(allowed, rec.Code) {
			t.Fatalf("%s %s, Content-Type %q, Cookie %q, body %q: got status %d, want one of %v; body:\n%s",
				tg.method, tg.path, contentType, cookie, body, rec.Code, allowed, rec.Body.String())
		}
		checkNoGoErrorText(t, "fuzzed request", rec.Body.String())
	})
}
