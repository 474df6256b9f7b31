package web

// What a client can send: hostile cookies, bodies, content types, names,
// redirect targets, methods and paths, against one running server, and
// the fuzzed form beside them.

import (
	"bytes"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/auth"
	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// multipartLogin is alice's correct login as multipart/form-data.
func multipartLogin(t testing.TB) (contentType, body string) {
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
	ta := newTestApp(t, rs, withLimits(auth.Limits{PerUser: 1000, PerIP: 1000}), withIdleTimeout(0))
	live := ta.login(t, newBrowser(t), false)

	// A well-formed token whose session Redis has expired: minted by a
	// replica with a one-second lifetime on the same Redis.
	short := newTestApp(t, rs, withLifetime(time.Second), withIdleTimeout(0), withInstanceID("short"))
	expired := short.login(t, newBrowser(t), false)
	short.waitForKeyToExpire(t, expired)
	forged := randomToken(t)

	cookie := func(values ...string) map[string]string {
		parts := make([]string, len(values))
		for i, v := range values {
			parts[i] = testCookieName + "=" + v
		}
		return map[string]string{"Cookie": strings.Join(parts, "; ")}
	}
	home := func(c map[string]string) rawRequest {
		return rawRequest{method: http.MethodGet, path: "/", header: c}
	}
	login := func(username, password string) rawRequest {
		return formPost("/login/", url.Values{"username": {username}, "password": {password}})
	}
	loginNext := func(next string) rawRequest {
		f := aliceForm(false)
		f.Set("next", next)
		return formPost("/login/", f)
	}
	raw := func(contentType, body string) rawRequest {
		r := rawRequest{method: http.MethodPost, path: "/login/", body: body}
		if contentType != "" {
			r = r.with("Content-Type", contentType)
		}
		return r
	}
	logoutWithLive := rawRequest{method: http.MethodPost, path: "/logout/", header: cookie(live)}
	mpType, mpBody := multipartLogin(t)
	aliceBody := aliceForm(false).Encode()

	const (
		loggedOut      = "Hello"
		loggedIn       = "Hello, alice"
		badRequest     = "Bad request"
		tooLarge       = "Request too large"
		crossSiteText  = "This form was sent from another site"
		methodRejected = "Method Not Allowed"
	)
	sessionsBefore := len(ta.sessionKeys(t))
	for _, tc := range []struct {
		name string
		req  rawRequest
		want int
		// text must be in the body; greet, if set, is the page's heading.
		text, greet string
		// location, if set, is the wanted Location header.
		location string
		// newSession: the answer logs in (sets the cookie, adds a session).
		newSession bool
	}{
		// Cookies that name no usable session read as logged out.
		{name: "malformed cookie", req: home(cookie("not a token!")), want: 200, greet: loggedOut},
		{name: "empty cookie", req: home(cookie("")), want: 200, greet: loggedOut},
		{name: "4 KB cookie", req: home(cookie(strings.Repeat("A", 4096))), want: 200, greet: loggedOut},
		{name: "non-ASCII cookie", req: home(cookie("sé∂ssiøn-✓-" + strings.Repeat("ü", 16))), want: 200, greet: loggedOut},
		{name: "binary cookie", req: home(cookie("\x80\x81\xfe\xff\x9b" + strings.Repeat("\xc3", 38))), want: 200, greet: loggedOut},
		{name: "forged well-formed token", req: home(cookie(forged)), want: 200, greet: loggedOut},
		{name: "token of an expired session", req: home(cookie(expired)), want: 200, greet: loggedOut},
		// Duplicate cookies: the live session among them is used (the
		// newest, if several); malformed and forged ones are skipped.
		{name: "duplicate cookies, forged then valid", req: home(cookie(forged, live)), want: 200, greet: loggedIn},
		{name: "duplicate cookies, valid then forged", req: home(cookie(live, forged)), want: 200, greet: loggedIn},
		{name: "duplicate cookies, malformed then valid", req: home(cookie("garbage", live)), want: 200, greet: loggedIn},

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
		{name: "login, own Origin", req: formPost("/login/", aliceForm(false)).with("Origin", ta.srv.URL), want: 303, location: "/", newSession: true},

		// Odd methods and paths.
		{name: "POST /", req: formPost("/", aliceForm(false)), want: 405, text: methodRejected},
		{name: "PUT /login/", req: rawRequest{method: http.MethodPut, path: "/login/", body: aliceBody}, want: 405, text: methodRejected},
		{name: "8 KB path", req: rawRequest{method: http.MethodGet, path: "/" + strings.Repeat("a", 8192)}, want: 404, text: "Page not found"},
		{name: "encoded NUL in the path", req: rawRequest{method: http.MethodGet, path: "/%00"}, want: 404, text: "Page not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(ta.sessionKeys(t))
			p := ta.send(t, tc.req)
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
			setsCookie := ta.sessionCookie(p) != nil
			after := len(ta.sessionKeys(t))
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
	t.Logf("sessions: %d before the table, %d after", sessionsBefore, len(ta.sessionKeys(t)))

	// Refused cross-site logouts left alice logged in; the server still
	// answers and a normal login still works.
	ta.wantGreeting(t, live, "Hello, alice")
	if got := greeting(sendWithCookie(t, http.MethodGet, ta.url("/"), "").body); got != "Hello" {
		t.Fatalf("GET / without a cookie after the table: got greeting %q, want %q", got, "Hello")
	}
	ta.wantGreeting(t, ta.login(t, newBrowser(t), false), "Hello, alice")
}

// TestHostileBinaryCookieOnTheWire sends a Cookie header with control
// characters, which a Go client refuses to send, over a raw connection.
// net/http refuses it before the app sees it: 400, connection closed, and
// the server keeps serving.
func TestHostileBinaryCookieOnTheWire(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	conn, err := net.DialTimeout("tcp", ta.srv.Listener.Addr().String(), testkit.WaitTimeout)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer func() { _ = conn.Close() }()
	if err := conn.SetDeadline(time.Now().Add(testkit.WaitTimeout)); err != nil {
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
	if got := greeting(sendWithCookie(t, http.MethodGet, ta.url("/"), "").body); got != "Hello" {
		t.Fatalf("GET / afterwards: got greeting %q, want %q", got, "Hello")
	}
}

// FuzzLoginForm posts arbitrary bodies, content types and cookies at the
// real routes on a real Redis: whatever comes in, the answer is never a 500
// (which is also what a recovered panic would be) and shows no Go error.
func FuzzLoginForm(f *testing.F) {
	ta := newTestApp(f, redistest.Start(f), withLimits(auth.Limits{PerUser: 5, PerIP: 20}))
	h := ta.app.Handler()
	const formType = "application/x-www-form-urlencoded"
	mpType, mpBody := multipartLogin(f)
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
