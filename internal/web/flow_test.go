package web

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

var inputTag = regexp.MustCompile(`<input[^>]*>`)

// hasInput reports whether body has an <input> with the given name whose
// tag also contains every one of attrs.
func hasInput(body, name string, attrs ...string) bool {
	for _, tag := range inputTag.FindAllString(body, -1) {
		if !strings.Contains(tag, `name="`+name+`"`) {
			continue
		}
		ok := true
		for _, a := range attrs {
			ok = ok && strings.Contains(tag, a)
		}
		if ok {
			return true
		}
	}
	return false
}

var logoutForm = regexp.MustCompile(`<form method="post" action="/logout/">`)

func TestLoginLogoutFlow(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	b := newBrowser(t)

	// Not logged in: a greeting without a name and a link to the login form.
	p := b.get(ta.url("/"))
	if p.status != http.StatusOK {
		t.Fatalf("GET /: got status %d, want 200", p.status)
	}
	if got := greeting(p.body); got != "Hello" {
		t.Fatalf("GET / before login: got greeting %q, want %q", got, "Hello")
	}
	if !strings.Contains(p.body, `<a href="/login/">`) {
		t.Fatalf("GET / before login: got no link to /login/, want one; body:\n%s", p.body)
	}
	if strings.Contains(p.body, aliceName) {
		t.Fatalf("GET / before login: got a page naming %q, want none; body:\n%s", aliceName, p.body)
	}

	// The form has the three fields, the password one of type password.
	p = b.get(ta.url("/login/"))
	if p.status != http.StatusOK {
		t.Fatalf("GET /login/: got status %d, want 200", p.status)
	}
	for _, field := range []struct {
		name  string
		attrs []string
	}{
		{"username", nil},
		{"password", []string{`type="password"`}},
		{"remember", []string{`type="checkbox"`}},
	} {
		if !hasInput(p.body, field.name, field.attrs...) {
			t.Errorf("GET /login/: got no <input name=%q %v>, want one; body:\n%s", field.name, field.attrs, p.body)
		}
	}

	// Right credentials: 303 to / with a session cookie.
	p = b.post(ta.url("/login/"), aliceForm(false))
	if p.status != http.StatusSeeOther {
		t.Fatalf("POST /login/: got status %d, want 303; body:\n%s", p.status, p.body)
	}
	if got := p.header.Get("Location"); got != "/" {
		t.Fatalf("POST /login/: got Location %q, want %q", got, "/")
	}
	if p.cookie == nil || p.cookie.Value == "" {
		t.Fatalf("POST /login/: got no %s cookie, want one; Set-Cookie: %q", testCookieName, p.header.Values("Set-Cookie"))
	}
	token := p.cookie.Value
	if !ta.exists(t, testkit.SessionKey(token)) {
		t.Fatalf("after login: got no Redis key %s, want it", testkit.SessionKey(token))
	}

	// Logged in: the name and a log-out form that posts.
	p = b.get(ta.url("/"))
	if got := greeting(p.body); got != "Hello, alice" {
		t.Fatalf("GET / after login: got greeting %q, want %q", got, "Hello, alice")
	}
	if !logoutForm.MatchString(p.body) {
		t.Fatalf("GET / after login: got no form posting to /logout/, want one; body:\n%s", p.body)
	}

	// Log out: 303 to / with the "logged out" flash, the session cookie
	// cleared and no other cookie touched.
	p = b.post(ta.url("/logout/"), url.Values{})
	if p.status != http.StatusSeeOther {
		t.Fatalf("POST /logout/: got status %d, want 303; body:\n%s", p.status, p.body)
	}
	if got := p.header.Get("Location"); got != "/" {
		t.Fatalf("POST /logout/: got Location %q, want %q", got, "/")
	}
	if p.cookie == nil || p.cookie.MaxAge >= 0 || p.cookie.Value != "" {
		t.Fatalf("POST /logout/: got session cookie %v, want it cleared (empty, Max-Age<0)", p.cookie)
	}
	for _, c := range p.header.Values("Set-Cookie") {
		if !strings.HasPrefix(c, testCookieName+"=") && !strings.HasPrefix(c, flashCookie+"=") {
			t.Errorf("POST /logout/: got Set-Cookie %q, want only the session cookie cleared and the flash", c)
		}
	}
	if got := p.header.Get("Clear-Site-Data"); got != "" {
		t.Errorf("POST /logout/: got Clear-Site-Data %q, want none (it would drop the device cookie)", got)
	}
	if got := b.tokenInJar(ta.url("/")); got != "" {
		t.Fatalf("after logout: the browser still holds cookie %q, want none", got)
	}
	if got := greeting(b.get(ta.url("/")).body); got != "Hello" {
		t.Fatalf("GET / after logout: got greeting %q, want %q", got, "Hello")
	}

	// The old cookie, replayed, is worthless and its session is gone.
	ta.wantGreeting(t, token, "Hello")
	if ta.exists(t, testkit.SessionKey(token)) {
		t.Fatalf("after logout: Redis key %s still exists, want it deleted", testkit.SessionKey(token))
	}
}

func TestGetLogoutOnlyShowsTheButton(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	b := newBrowser(t)
	token := ta.login(t, b, false)

	p := b.get(ta.url("/logout/"))
	if p.status != http.StatusOK {
		t.Fatalf("GET /logout/: got status %d, want 200", p.status)
	}
	if !logoutForm.MatchString(p.body) {
		t.Fatalf("GET /logout/: got no form posting to /logout/, want one; body:\n%s", p.body)
	}
	if p.cookie != nil && p.cookie.MaxAge < 0 {
		t.Fatalf("GET /logout/: got the session cookie cleared (%v), want it kept", p.cookie)
	}

	ta.wantGreeting(t, token, "Hello, alice")
	if !ta.exists(t, testkit.SessionKey(token)) {
		t.Fatalf("after GET /logout/: Redis key %s is gone, want it kept", testkit.SessionKey(token))
	}
}

func TestSlashlessPathsRedirectKeepingTheMethod(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))

	// 308, not 301: a form posted to the slashless path keeps its method.
	const keep = http.StatusPermanentRedirect
	ta.checkRedirects(t, "slashless", []redirectCase{
		{http.MethodGet, "/login", keep, "/login/"},
		{http.MethodPost, "/login", keep, "/login/"},
		{http.MethodGet, "/logout", keep, "/logout/"},
		{http.MethodPost, "/logout", keep, "/logout/"},
		{http.MethodGet, "/sessions", keep, "/sessions/"},
		{http.MethodPost, "/sessions", keep, "/sessions/"},
		{http.MethodGet, "/password", keep, "/password/"},
		{http.MethodPost, "/password", keep, "/password/"},
	})

	// A form posted to /login arrives, after the 308, as a login.
	b := newBrowser(t)
	p := b.post(ta.url("/login"), aliceForm(false))
	if p.status != http.StatusPermanentRedirect {
		t.Fatalf("POST /login: got status %d, want 308", p.status)
	}
	p = b.post(ta.url(p.header.Get("Location")), aliceForm(false))
	if p.status != http.StatusSeeOther || p.cookie == nil {
		t.Fatalf("POST to the 308 target: got status %d and cookie %v, want 303 with a session cookie", p.status, p.cookie)
	}
	ta.wantGreeting(t, p.cookie.Value, "Hello, alice")
}

func TestLoginRedirectsOnlyWithinTheSite(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))

	for _, tc := range []struct {
		next, want string
	}{
		{"/account?x=1", "/account?x=1"},
		{"//evil.example/", "/"},
		{"https://evil.example/", "/"},
		{"/%2F%2Fevil.example", "/"},
	} {
		t.Run(tc.next, func(t *testing.T) {
			p := sendWithCookie(t, http.MethodGet, ta.url("/login/?next="+url.QueryEscape(tc.next)), "")
			hidden := hasInput(p.body, "next", `type="hidden"`)
			if keep := tc.want != "/"; hidden != keep {
				t.Errorf("GET /login/?next=%s: got hidden next field %v, want %v", tc.next, hidden, keep)
			}

			form := aliceForm(false)
			form.Set("next", tc.next)
			p = ta.send(t, formPost("/login/", form))
			if p.status != http.StatusSeeOther {
				t.Fatalf("POST /login/ with next=%q: got status %d, want 303", tc.next, p.status)
			}
			if got := p.header.Get("Location"); got != tc.want {
				t.Fatalf("POST /login/ with next=%q: got Location %q, want %q", tc.next, got, tc.want)
			}
		})
	}
}
