package web

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// Helpers for the account pages (sessions, password) and the tests of
// what they share: login required, the paths people guess.

// A second user, so tests can check that one user cannot act on another's
// sessions.
const (
	bobName     = "bob"
	bobPassword = "bob-uses-a-long-passphrase-4"
)

// Real browsers' user agents, so the device column has something to say.
const (
	firefoxLinux  = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	chromeAndroid = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
)

// addUser creates the user name with password through auth, as
// `server user add` does.
func (ta *testApp) addUser(t *testing.T, name, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.WaitTimeout)
	defer cancel()
	if err := ta.auth.AddUser(ctx, name, password); err != nil {
		t.Fatalf("AddUser(%q): %v", name, err)
	}
}

// listedSession is one row of the sessions page.
type listedSession struct {
	id      string
	current bool
}

var sessionRowTag = regexp.MustCompile(`<li class="session[^"]*" data-session-id="([A-Za-z0-9_-]+)"( data-current="true")?>`)

// listedSessions are the rows of a sessions page, in page order.
func listedSessions(body string) []listedSession {
	var rows []listedSession
	for _, m := range sessionRowTag.FindAllStringSubmatch(body, -1) {
		rows = append(rows, listedSession{id: m[1], current: m[2] != ""})
	}
	return rows
}

// sessionsOf fetches b's sessions page on ta and returns its rows and the
// id of the row marked as this device.
func (ta *testApp) sessionsOf(t *testing.T, b *browser) (rows []listedSession, current string) {
	t.Helper()
	p := b.get(ta.url("/sessions/"))
	if p.status != http.StatusOK {
		t.Fatalf("GET /sessions/: got status %d, want 200; body:\n%s", p.status, p.body)
	}
	rows = listedSessions(p.body)
	for _, r := range rows {
		if r.current {
			if current != "" {
				t.Fatalf("GET /sessions/: got two rows marked current (%s, %s), want one", current, r.id)
			}
			current = r.id
		}
	}
	if current == "" {
		t.Fatalf("GET /sessions/: got no row marked current among %v, want one; body:\n%s", rows, p.body)
	}
	return rows, current
}

var flashTag = regexp.MustCompile(`<p id="flash"[^>]* data-flash="([a-z_]+)"(?: data-count="(\d+)")?`)

// flashOf is the flash a page shows: its kind and count ("" when not
// counted); kind is "" when the page shows none.
func flashOf(body string) (kind, count string) {
	m := flashTag.FindStringSubmatch(body)
	if m == nil {
		return "", ""
	}
	return m[1], m[2]
}

// wantFlash fails unless p shows the flash kind (with count, when not "").
func wantFlash(t *testing.T, what string, p page, kind, count string) {
	t.Helper()
	gotKind, gotCount := flashOf(p.body)
	if gotKind != kind || gotCount != count {
		t.Fatalf("%s: got flash %q (count %q), want %q (count %q); body:\n%s", what, gotKind, gotCount, kind, count, p.body)
	}
}

func TestAccountPagesRequireLogin(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))

	const toLogin = http.StatusSeeOther
	ta.checkRedirects(t, "without a session", []redirectCase{
		{http.MethodGet, "/sessions/", toLogin, "/login/?next=%2Fsessions%2F"},
		{http.MethodGet, "/password/", toLogin, "/login/?next=%2Fpassword%2F"},
		{http.MethodGet, "/sessions/?x=1", toLogin, "/login/?next=%2Fsessions%2F%3Fx%3D1"},
		// A form posted without a session comes back to its page, not
		// to the action.
		{http.MethodPost, "/sessions/AAAAAAAAAAAAAAAA/revoke", toLogin, "/login/?next=%2Fsessions%2F"},
		{http.MethodPost, "/sessions/revoke-others", toLogin, "/login/?next=%2Fsessions%2F"},
		{http.MethodPost, "/password/", toLogin, "/login/?next=%2Fpassword%2F"},
	})
	// Nothing is stored for those visitors.
	if n := len(ta.sessionKeys(t)); n != 0 {
		t.Fatalf("after anonymous visits: got %d session keys, want 0", n)
	}

	// The login form keeps next, and logging in lands on the page.
	b := newBrowser(t)
	p := b.get(ta.url("/login/?next=%2Fsessions%2F"))
	if !hasInput(p.body, "next", `type="hidden"`, `value="/sessions/"`) {
		t.Fatalf("GET /login/?next=/sessions/: got no hidden next=/sessions/ field; body:\n%s", p.body)
	}
	form := aliceForm(false)
	form.Set("next", "/sessions/")
	p = b.post(ta.url("/login/"), form)
	if got := p.header.Get("Location"); p.status != http.StatusSeeOther || got != "/sessions/" {
		t.Fatalf("POST /login/ with next=/sessions/: got %d to %q, want 303 to /sessions/", p.status, got)
	}
	if p = b.get(ta.url("/sessions/")); p.status != http.StatusOK || len(listedSessions(p.body)) != 1 {
		t.Fatalf("GET /sessions/ after login: got status %d, %d rows; want 200, 1 row", p.status, len(listedSessions(p.body)))
	}
}

func TestGuessedAccountPathsRedirect(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))

	// The slashless paths are in TestSlashlessPathsRedirectKeepingTheMethod.
	ta.checkRedirects(t, "a guessed account page", []redirectCase{
		{http.MethodGet, "/account", http.StatusSeeOther, "/sessions/"},
		{http.MethodGet, "/account/", http.StatusSeeOther, "/sessions/"},
	})

	// Unknown paths under the account pages are the site's 404, once
	// logged in.
	b := newBrowser(t)
	ta.login(t, b, false)
	for _, path := range []string{"/sessions/nope", "/sessions/a/b/c", "/password/nope", "/account/x"} {
		p := b.get(ta.url(path))
		if p.status != http.StatusNotFound || !strings.Contains(p.body, `<html lang="en">`) {
			t.Errorf("GET %s logged in: got status %d, want the 404 page; body:\n%s", path, p.status, p.body)
		}
	}
}

// The account forms change state, so they stay behind the cross-origin
// check.
func TestAccountFormsRefuseCrossSitePosts(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	b1, b2 := newBrowser(t), newBrowser(t)
	ta.login(t, b1, false)
	other := ta.login(t, b2, false)
	_, id2 := ta.sessionsOf(t, b2)

	for _, path := range []string{"/sessions/revoke-others", "/sessions/" + id2 + "/revoke", "/password/"} {
		req := newRequest(t, http.MethodPost, ta.url(path), url.Values{
			"current_password": {alicePassword}, "new_password": {"a-new-long-password-1"}, "confirm_password": {"a-new-long-password-1"},
		})
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		if p := b1.do(req); p.status != http.StatusForbidden {
			t.Errorf("cross-site POST %s: got status %d, want 403", path, p.status)
		}
	}
	ta.wantGreeting(t, other, "Hello, alice")
	ta.loginAs(t, newBrowser(t), aliceName, alicePassword, "")
}
