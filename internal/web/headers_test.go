package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"loginsvc/internal/redistest"
)

func TestEveryResponseCarriesTheSecurityHeaders(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t), withInstanceID("replica-h"))
	b := newBrowser(t)

	type step struct {
		name string
		send func() page
		// cookie is what the response must do to the session cookie:
		// "" leave it alone, "set" or "clear".
		cookie string
	}
	steps := []step{
		{"GET / logged out", func() page { return b.get(ta.url("/")) }, ""},
		{"GET /login/", func() page { return b.get(ta.url("/login/")) }, ""},
		{"POST /login/ refused", func() page {
			return b.post(ta.url("/login/"), url.Values{"username": {aliceName}, "password": {"wrong-password"}})
		}, ""},
		{"POST /login/", func() page { return b.post(ta.url("/login/"), aliceForm(false)) }, "set"},
		{"GET / logged in", func() page { return b.get(ta.url("/")) }, "set"}, // idle timeout: re-saved
		{"GET /logout/", func() page { return b.get(ta.url("/logout/")) }, "set"},
		{"POST /logout/", func() page { return b.post(ta.url("/logout/"), url.Values{}) }, "clear"},
		{"GET /login (redirect)", func() page { return b.get(ta.url("/login")) }, ""},
		{"GET /healthz", func() page { return b.get(ta.url("/healthz")) }, ""},
		{"GET /readyz", func() page { return b.get(ta.url("/readyz")) }, ""},
		{"GET /static/style.css", func() page { return b.get(ta.url("/static/style.css")) }, ""},
		{"GET /no-such-page", func() page { return b.get(ta.url("/no-such-page")) }, ""},
	}
	for _, s := range steps {
		p := s.send()
		if p.status >= 500 {
			t.Fatalf("%s: got status %d, want a normal answer; body:\n%s", s.name, p.status, p.body)
		}
		for _, h := range []struct{ name, want string }{
			{"X-Served-By", "replica-h"},
			{"X-Content-Type-Options", "nosniff"},
		} {
			if got := p.header.Get(h.name); got != h.want {
				t.Errorf("%s: got %s %q, want %q", s.name, h.name, got, h.want)
			}
		}
		csp := p.header.Get("Content-Security-Policy")
		for _, directive := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, directive) {
				t.Errorf("%s: got Content-Security-Policy %q, want it to contain %q", s.name, csp, directive)
			}
		}
		if got := p.header.Get("Referrer-Policy"); !slices.Contains([]string{"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}, got) {
			t.Errorf("%s: got Referrer-Policy %q, want one that keeps paths on this site", s.name, got)
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
		if p.cookie != nil {
			if got := p.header.Values("Cache-Control"); !slices.Equal(got, []string{"no-store"}) {
				t.Errorf("%s sets the session cookie: got Cache-Control %q, want exactly [no-store]", s.name, got)
			}
		}
	}
}

// The log of a whole login and logout, including a failed attempt, holds
// neither the password nor the session token nor the token's hash (which
// is the Redis key, as good as the token to anyone who can read Redis).
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	b := newBrowser(t)
	const wrongPassword = "a-wrong-password-9"

	b.get(ta.url("/"))
	b.get(ta.url("/login/?next=/account"))
	b.post(ta.url("/login/"), url.Values{"username": {aliceName}, "password": {wrongPassword}})
	token := ta.login(t, b, true)
	b.get(ta.url("/"))
	b.get(ta.url("/logout/"))
	p := b.post(ta.url("/logout/"), url.Values{})
	if p.status != http.StatusSeeOther {
		t.Fatalf("POST /logout/: got status %d, want 303", p.status)
	}
	// Replaying the dead token must not log it either.
	replay(t, http.MethodGet, ta.url("/"), token)

	logs := ta.logs.String()
	for _, want := range []string{"msg=\"login failed\"", "msg=login", "msg=logout", "user=alice"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs: got no %q, want the flow logged:\n%s", want, logs)
		}
	}
	for _, secret := range []struct{ name, value string }{
		{"password", alicePassword},
		{"wrong password", wrongPassword},
		{"session token", token},
		{"hash of the session token", tokenHash(token)},
		{"session key", sessionKey(token)},
	} {
		if strings.Contains(logs, secret.value) {
			t.Errorf("logs: contain the %s %q, want it never logged:\n%s", secret.name, secret.value, logs)
		}
	}
}
