package web

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

func TestLoginDoesNotAdoptAPlantedToken(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	ctx, cancel := context.WithTimeout(context.Background(), testkit.WaitTimeout)
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
		{"random well-formed token", randomToken(t), "Hello"},
		{"another login's live token", attackerToken, "Hello, mallory"},
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
			ta.wantGreeting(t, token, "Hello, alice")
			ta.wantGreeting(t, tc.planted, "Hello")
			if ta.exists(t, testkit.SessionKey(tc.planted)) {
				t.Fatalf("after login: the planted token's key %s exists, want none", testkit.SessionKey(tc.planted))
			}
		})
	}
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
			p := ta.send(t, formPost("/login/", tc.form))
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

func TestTokensOfEndedSessionsMeanLoggedOut(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts []appOption
		end  func(ta *testApp, t testing.TB, token string)
	}{
		{
			name: "logged out",
			end: func(ta *testApp, t testing.TB, token string) {
				if p := replay(t, http.MethodPost, ta.url("/logout/"), token); p.status != http.StatusSeeOther {
					t.Fatalf("POST /logout/: got status %d, want 303", p.status)
				}
			},
		},
		{
			name: "past absolute lifetime",
			opts: []appOption{withLifetime(time.Second), withIdleTimeout(0)},
			end:  (*testApp).waitForKeyToExpire,
		},
		{
			name: "idle too long",
			opts: []appOption{withLifetime(time.Minute), withIdleTimeout(time.Second)},
			end:  (*testApp).waitForKeyToExpire,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ta := newTestApp(t, redistest.Start(t), tc.opts...)
			token := ta.login(t, newBrowser(t), false)
			tc.end(ta, t, token)

			before := ta.keys(t)
			p := replay(t, http.MethodGet, ta.url("/"), token)
			if got := greeting(p.body); p.status != http.StatusOK || got != "Hello" {
				t.Fatalf("GET / with the ended session's token: got status %d, greeting %q; want 200, %q", p.status, got, "Hello")
			}
			if got := p.header.Values("Set-Cookie"); len(got) != 0 {
				t.Fatalf("got Set-Cookie %q, want none", got)
			}
			ta.wantNoNewKey(t, before)
		})
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
	if !short.exists(t, testkit.SessionKey(token)) {
		t.Fatalf("precondition: key %s gone, want Redis to still hold it (lifetime 1h when saved)", testkit.SessionKey(token))
	}

	short.wantGreeting(t, token, "Hello")
	if short.exists(t, testkit.SessionKey(token)) {
		t.Fatalf("after use past the shortened lifetime: key %s exists, want it deleted", testkit.SessionKey(token))
	}
	long.wantGreeting(t, token, "Hello")
}

var (
	passwordInputTag = regexp.MustCompile(`<input type="password" id="([a-z-]+)"[^>]*>`)
	scriptTag        = regexp.MustCompile(`<script[^>]*>`)
	inlineHandler    = regexp.MustCompile(`\son[a-z]+=`)
)

// Every password field has a show-password button, and nothing a strict
// CSP (script-src 'self') would block: the button is wired by a static
// file, and stays hidden without it, so the field is then a plain
// password field and no button does nothing.
func TestPasswordFieldsHaveAShowButtonWithoutInlineScript(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	b := newBrowser(t)
	pages := map[string]page{"login": b.get(ta.url("/login/"))}
	ta.login(t, b, false)
	pages["password"] = b.get(ta.url("/password/"))
	pages["reauth"] = b.get(ta.url("/reauth/?next=%2Fsecurity%2F"))
	for name, p := range pages {
		if p.status != http.StatusOK {
			t.Fatalf("%s page: got status %d, want 200", name, p.status)
		}
		checkHardeningHeaders(t, name+" page", p)
		if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self';") {
			t.Errorf("%s page: got Content-Security-Policy %q, want script-src 'self' alone", name, csp)
		}
		fields := passwordInputTag.FindAllStringSubmatch(p.body, -1)
		if len(fields) == 0 {
			t.Fatalf("%s page: got no password field with an id; body:\n%s", name, p.body)
		}
		for _, f := range fields {
			button := `<button type="button" class="reveal" data-reveal="` + f[1] + `" aria-controls="` + f[1] + `" aria-label="Show password"`
			if !strings.Contains(p.body, button) || !strings.Contains(p.body, `data-hide-label="Hide password" hidden>Show</button>`) {
				t.Errorf("%s page: field %s has no hidden show-password button; body:\n%s", name, f[1], p.body)
			}
		}
		for _, tag := range scriptTag.FindAllString(p.body, -1) {
			if !strings.Contains(tag, ` src="/static/`) {
				t.Errorf("%s page: got inline script %s, want static files only", name, tag)
			}
		}
		if !strings.Contains(p.body, `<script src="/static/reveal.js" defer></script>`) {
			t.Errorf("%s page: got no reveal.js; body:\n%s", name, p.body)
		}
		if m := inlineHandler.FindString(p.body); m != "" {
			t.Errorf("%s page: got an inline event handler %q", name, m)
		}
	}
	js := b.get(ta.url("/static/reveal.js"))
	if js.status != http.StatusOK || !strings.Contains(js.header.Get("Content-Type"), "javascript") || !strings.Contains(js.body, "button[data-reveal]") {
		t.Fatalf("GET /static/reveal.js: got %d %q, want 200 JavaScript that wires button[data-reveal]", js.status, js.header.Get("Content-Type"))
	}
}

// The login a protected app sent the browser to says which app it signs
// in to, from the checked next: people look for it before they type a
// password. A next that may not be returned to names nothing.
func TestLoginFormNamesTheAppItContinuesTo(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t), withForwardAuth("", "app.example.test"))
	b := newBrowser(t)
	for _, tc := range []struct{ next, lang, want string }{
		{"http://app.example.test/reports", "en", "Sign in to continue to app.example.test."},
		{"http://app.example.test/reports", "zh-CN", "登录后继续访问 app.example.test。"},
		{"http://evil.example.test/", "en", ""},
		{"/sessions/", "en", ""},
	} {
		p := b.getIn(ta.url("/login/?next="+url.QueryEscape(tc.next)), tc.lang)
		got := strings.Contains(p.body, `id="continue-to"`)
		if got != (tc.want != "") || tc.want != "" && !strings.Contains(p.body, tc.want) {
			t.Errorf("login with next %s (%s): got the app named %v, want %q; body:\n%s", tc.next, tc.lang, got, tc.want, p.body)
		}
	}
}
