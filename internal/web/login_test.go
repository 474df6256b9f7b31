package web

import (
	"context"
	"net/http"
	"net/url"
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
