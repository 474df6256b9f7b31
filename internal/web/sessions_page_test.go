package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/activity"
	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

func TestSessionsPageListsEachBrowser(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	firefox, chrome := newBrowser(t), newBrowser(t)
	ta.loginAs(t, firefox, aliceName, alicePassword, firefoxLinux)
	// CreatedAt has nanoseconds, but make "newest first" unambiguous.
	time.Sleep(10 * time.Millisecond)
	ta.loginAs(t, chrome, aliceName, alicePassword, chromeAndroid)

	rowsF, idF := ta.sessionsOf(t, firefox)
	rowsC, idC := ta.sessionsOf(t, chrome)
	if idF == idC {
		t.Fatalf("both browsers got %s as this device, want different ids", idF)
	}
	// Both see the same two sessions, newest (chrome) first.
	want := []string{idC, idF}
	for _, tc := range []struct {
		who  string
		rows []listedSession
	}{{"firefox", rowsF}, {"chrome", rowsC}} {
		var got []string
		for _, r := range tc.rows {
			got = append(got, r.id)
		}
		if !slices.Equal(got, want) {
			t.Errorf("sessions page of %s: got rows %v, want %v (newest first)", tc.who, got, want)
		}
	}

	p := firefox.get(ta.url("/sessions/"))
	rowF, rowC := sessionItem(t, p.body, idF), sessionItem(t, p.body, idC)
	// The device column names the browser and system the parser found.
	for _, tc := range []struct {
		row  string
		want []string
	}{{rowF, []string{"Firefox 133", "Linux"}}, {rowC, []string{"Chrome 131", "Android"}}} {
		for _, w := range tc.want {
			if !strings.Contains(tc.row, w) {
				t.Errorf("session row: got no %q, want it:\n%s", w, tc.row)
			}
		}
	}
	// Each row has its IP and times with the exact time beside them.
	for _, row := range []string{rowF, rowC} {
		if !strings.Contains(row, `<dd data-field="ip">127.0.0.1</dd>`) {
			t.Errorf("session row: got no IP 127.0.0.1, want it:\n%s", row)
		}
		if n := len(timeTag.FindAllString(row, -1)); n != 2 {
			t.Errorf("session row: got %d <time datetime> tags with their exact time, want 2 (created, last seen):\n%s", n, row)
		}
	}
	// Other sessions can be signed out; this one is marked instead.
	if strings.Contains(rowF, "/revoke") || !strings.Contains(rowF, `id="this-device"`) {
		t.Errorf("this device's row: got a revoke form or no this-device badge, want the badge only:\n%s", rowF)
	}
	if !strings.Contains(rowC, `<form method="post" action="/sessions/`+idC+`/revoke"`) {
		t.Errorf("other session's row: got no revoke form for %s:\n%s", idC, rowC)
	}
	if !strings.Contains(p.body, `<form method="post" action="/sessions/revoke-others"`) {
		t.Errorf("sessions page with two sessions: got no revoke-others form; body:\n%s", p.body)
	}

	// Alone, there is nothing else to sign out.
	ta.revokeVia(t, firefox, idC)
	p = firefox.get(ta.url("/sessions/"))
	if strings.Contains(p.body, "revoke-others") || !strings.Contains(p.body, `id="only-session"`) {
		t.Errorf("sessions page with one session: got a revoke-others form or no only-session note; body:\n%s", p.body)
	}
}

// MAX_SESSIONS_PER_USER, as a user meets it: a login past the cap ends
// the user's oldest session, whose browser is then a logged-out visitor,
// and the sessions page lists only the cap's worth, the newest.
func TestLoginPastTheCapEndsTheOldestSession(t *testing.T) {
	t.Parallel()
	const maxSessions = 2
	ta := newTestApp(t, redistest.Start(t), withMaxSessions(maxSessions))
	browsers := []*browser{newBrowser(t), newBrowser(t), newBrowser(t)}
	var tokens []string
	for _, b := range browsers {
		tokens = append(tokens, ta.login(t, b, false))
		// CreatedAt has nanoseconds, but make "oldest" unambiguous.
		time.Sleep(10 * time.Millisecond)
	}

	if p := browsers[0].get(ta.url("/")); p.status != http.StatusOK || greeting(p.body) != "Hello" {
		t.Fatalf("GET / in the first browser after %d newer logins: got status %d, greeting %q; want 200, %q", maxSessions, p.status, greeting(p.body), "Hello")
	}
	if ta.exists(t, testkit.SessionKey(tokens[0])) {
		t.Errorf("after the third login: the first session's key %s exists, want it ended", testkit.SessionKey(tokens[0]))
	}
	for i, b := range browsers[1:] {
		if got := greeting(b.get(ta.url("/")).body); got != "Hello, alice" {
			t.Errorf("GET / in browser %d: got greeting %q, want %q", i+2, got, "Hello, alice")
		}
	}
	_, second := ta.sessionsOf(t, browsers[1])
	rows, third := ta.sessionsOf(t, browsers[2])
	var got []string
	for _, r := range rows {
		got = append(got, r.id)
	}
	if want := []string{third, second}; !slices.Equal(got, want) {
		t.Fatalf("GET /sessions/ with MAX_SESSIONS_PER_USER %d: got rows %v, want the two newest %v", maxSessions, got, want)
	}
}

// timeTag is a relative time with its exact time beside it, visible (not
// in a title, which keyboard and touch users never reach).
var timeTag = regexp.MustCompile(`<time datetime="[0-9TZ:-]+">[^<]+</time> <span class="exact note">\(\d{4}-\d\d-\d\d \d\d:\d\d UTC\)</span>`)

// sessionItem is the <li> of session id on a sessions page.
func sessionItem(t *testing.T, body, id string) string {
	t.Helper()
	start := strings.Index(body, `data-session-id="`+id+`"`)
	if start < 0 {
		t.Fatalf("sessions page: got no row %s; body:\n%s", id, body)
	}
	end := strings.Index(body[start:], "</li>")
	if end < 0 {
		t.Fatalf("sessions page: row %s is not closed", id)
	}
	return body[start : start+end]
}

// revokeVia posts b's revoke button for id on ta and wants the redirect
// back to the list with the "signed out" flash.
func (ta *testApp) revokeVia(t *testing.T, b *browser, id string) {
	t.Helper()
	p := b.post(ta.url("/sessions/"+id+"/revoke"), url.Values{})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/sessions/" {
		t.Fatalf("POST /sessions/%s/revoke: got %d to %q, want 303 to /sessions/; body:\n%s", id, p.status, p.header.Get("Location"), p.body)
	}
}

func TestRevokeEndsTheSessionOnEveryReplicaAtOnce(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	a := newTestApp(t, rs, withInstanceID("replica-a"))
	b := newTestApp(t, rs, withInstanceID("replica-b"))
	mine, theirs := newBrowser(t), newBrowser(t)
	a.login(t, mine, false)
	lost := b.login(t, theirs, false)
	_, lostID := b.sessionsOf(t, theirs)

	a.revokeVia(t, mine, lostID)
	// The very next request with the revoked cookie is anonymous, on the
	// replica that did not revoke it as on the one that did.
	b.wantGreeting(t, lost, "Hello")
	a.wantGreeting(t, lost, "Hello")
	if p := replay(t, http.MethodGet, b.url("/sessions/"), lost); p.status != http.StatusSeeOther {
		t.Errorf("GET /sessions/ on b with the revoked cookie: got status %d, want 303 to the login form", p.status)
	}
	if a.exists(t, testkit.SessionKey(lost)) {
		t.Errorf("after revoke: key %s exists, want it deleted", testkit.SessionKey(lost))
	}

	// The list shows the confirmation once, and only this session.
	p := mine.get(a.url("/sessions/"))
	wantFlash(t, "GET /sessions/ after revoke", p, "session_revoked", "")
	if rows := listedSessions(p.body); len(rows) != 1 || !rows[0].current {
		t.Errorf("GET /sessions/ after revoke: got rows %v, want only this session", rows)
	}
	wantFlash(t, "GET /sessions/ again", mine.get(a.url("/sessions/")), "", "")

	// Revoking it again: it is gone, which the page says with a 404.
	p = mine.post(a.url("/sessions/"+lostID+"/revoke"), url.Values{})
	if p.status != http.StatusNotFound {
		t.Fatalf("POST revoke of an ended session: got status %d, want 404", p.status)
	}
	wantFlash(t, "POST revoke of an ended session", p, "session_not_found", "")
}

func TestRevokeOthersLeavesOnlyThisSession(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	me := newBrowser(t)
	mine := ta.login(t, me, false)
	var others []string
	for range 3 {
		others = append(others, ta.login(t, newBrowser(t), false))
	}
	// Another user's session is not "another session" of alice's.
	ta.addUser(t, bobName, bobPassword)
	bob := ta.loginAs(t, newBrowser(t), bobName, bobPassword, "")

	p := me.post(ta.url("/sessions/revoke-others"), url.Values{})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/sessions/" {
		t.Fatalf("POST /sessions/revoke-others: got %d to %q, want 303 to /sessions/", p.status, p.header.Get("Location"))
	}
	for _, token := range others {
		ta.wantGreeting(t, token, "Hello")
	}
	ta.wantGreeting(t, mine, "Hello, alice")
	ta.wantGreeting(t, bob, "Hello, bob")

	p = me.get(ta.url("/sessions/"))
	wantFlash(t, "GET /sessions/ after revoke-others", p, "others_revoked", "3")
	if rows := listedSessions(p.body); len(rows) != 1 || !rows[0].current {
		t.Fatalf("GET /sessions/ after revoke-others: got rows %v, want only this session", rows)
	}
	// Nothing left to end: the count says so.
	me.post(ta.url("/sessions/revoke-others"), url.Values{})
	wantFlash(t, "revoke-others with no other session", me.get(ta.url("/sessions/")), "others_revoked", "0")
}

func TestUsersCannotRevokeOthersSessions(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	ta.addUser(t, bobName, bobPassword)
	alice, bob := newBrowser(t), newBrowser(t)
	ta.login(t, alice, false)
	bobToken := ta.loginAs(t, bob, bobName, bobPassword, "")
	_, bobID := ta.sessionsOf(t, bob)

	for _, id := range []string{bobID, "AAAAAAAAAAAAAAAA", "not-an-id", strings.Repeat("x", 300)} {
		p := alice.post(ta.url("/sessions/"+url.PathEscape(id)+"/revoke"), url.Values{})
		if p.status != http.StatusNotFound {
			t.Errorf("alice revokes %q: got status %d, want 404", id, p.status)
		}
		wantFlash(t, "alice revokes "+id, p, "session_not_found", "")
		for _, r := range listedSessions(p.body) {
			if r.id == bobID {
				t.Errorf("alice's sessions page lists bob's session %s", bobID)
			}
		}
	}
	ta.wantGreeting(t, bobToken, "Hello, bob")
	if rows, _ := ta.sessionsOf(t, bob); len(rows) != 1 || rows[0].id != bobID {
		t.Fatalf("bob's sessions after alice's attempts: got %v, want his one session %s", rows, bobID)
	}
}

// Revoking this very session through its id is a logout, not a dead
// cookie left in the browser.
func TestRevokingThisSessionLogsOut(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	b := newBrowser(t)
	token := ta.login(t, b, false)
	_, id := ta.sessionsOf(t, b)

	p := b.post(ta.url("/sessions/"+id+"/revoke"), url.Values{})
	if p.status != http.StatusSeeOther || p.cookie == nil || p.cookie.MaxAge >= 0 {
		t.Fatalf("revoke this session: got status %d, session cookie %v; want 303 clearing the cookie", p.status, p.cookie)
	}
	ta.wantGreeting(t, token, "Hello")
}

func TestIndexShowsAccountLinksAndWhenTheSessionEnds(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	for _, tc := range []struct {
		name string
		idle time.Duration
	}{{"idle timeout 30m", 30 * time.Minute}, {"no idle timeout", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			ta := newTestApp(t, rs, withLifetime(2*time.Hour), withIdleTimeout(tc.idle))
			b := newBrowser(t)
			ta.login(t, b, false)
			loggedIn := time.Now()
			p := b.get(ta.url("/"))
			for _, id := range []string{`id="link-sessions"`, `id="link-password"`, `id="nav-sessions"`, `id="nav-security"`, `id="nav-logout"`} {
				if !strings.Contains(p.body, id) {
					t.Errorf("GET / logged in: got no element %s; body:\n%s", id, p.body)
				}
			}
			checkDeadline(t, p.body, "absolute-ends", loggedIn.Add(2*time.Hour))
			if tc.idle == 0 {
				if !strings.Contains(p.body, `data-idle="none"`) {
					t.Errorf("GET / without idle timeout: got no data-idle=none; body:\n%s", p.body)
				}
				return
			}
			checkDeadline(t, p.body, "idle-ends", time.Now().Add(tc.idle))
		})
	}
}

// checkDeadline fails unless the element id holds a <time> within a
// minute of want.
func checkDeadline(t *testing.T, body, id string, want time.Time) {
	t.Helper()
	m := regexp.MustCompile(`id="` + id + `"><time datetime="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("got no <time> in #%s; body:\n%s", id, body)
	}
	got, err := time.Parse(time.RFC3339, m[1])
	if err != nil {
		t.Fatalf("#%s datetime %q: %v", id, m[1], err)
	}
	if d := got.Sub(want); d < -time.Minute || d > time.Minute {
		t.Errorf("#%s: got %v, want about %v", id, got, want.UTC())
	}
}

func TestLogoutShowsTheFlashOnce(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	b := newBrowser(t)
	ta.login(t, b, false)
	b.setCookie(ta, langCookie, "zh")

	p := b.post(ta.url("/logout/"), url.Values{})
	if got := p.header.Get("Location"); p.status != http.StatusSeeOther || got != "/" {
		t.Fatalf("POST /logout/: got %d to %q, want 303 to /", p.status, got)
	}
	flash := cookieSet(p, flashCookie)
	if flash == nil || !flash.HttpOnly || flash.SameSite != http.SameSiteLaxMode || flash.Path != "/" || flash.MaxAge <= 0 || flash.MaxAge > 60 {
		t.Fatalf("POST /logout/: got flash cookie %v, want HttpOnly, SameSite=Lax, Path=/, Max-Age in (0, 60]", flash)
	}

	p = b.get(ta.url("/"))
	wantFlash(t, "GET / after logout", p, "logged_out", "")
	if !strings.Contains(p.body, `<html lang="zh-Hans">`) || greeting(p.body) != "您好" {
		t.Errorf("GET / after logout: got greeting %q, want the page still in Chinese", greeting(p.body))
	}
	wantFlash(t, "GET / a second time", b.get(ta.url("/")), "", "")
	// Logged-out visitors cost no session write, flash or not.
	if n := len(ta.sessionKeys(t)); n != 0 {
		t.Fatalf("after logout: got %d session keys, want 0", n)
	}
}

func TestFlashCookieValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		value, kind string
		count       int
	}{
		{"logged_out", "logged_out", 0},
		{"session_revoked", "session_revoked", 0},
		{"others_revoked.3", "others_revoked", 3},
		{"others_revoked.0", "others_revoked", 0},
		{"password_changed.1000000", "password_changed", 1000000},
		// Refused: unknown kinds, counts where none belong, and counts
		// that are missing, signed, padded, huge or not numbers.
		{"", "", 0},
		{"Hello", "", 0},
		{"logged_out.1", "", 0},
		{"others_revoked", "", 0},
		{"others_revoked.", "", 0},
		{"others_revoked.-1", "", 0},
		{"others_revoked.+1", "", 0},
		{"others_revoked.01", "", 0},
		{"others_revoked.1000001", "", 0},
		{"others_revoked.99999999999999999999", "", 0},
		{"others_revoked.1.2", "", 0},
		{"<script>", "", 0},
	} {
		f := parseFlash(tc.value)
		switch {
		case tc.kind == "" && f != nil:
			t.Errorf("parseFlash(%q): got %+v, want nil", tc.value, f)
		case tc.kind != "" && (f == nil || f.Kind != tc.kind || f.Count != tc.count):
			t.Errorf("parseFlash(%q): got %+v, want kind %q count %d", tc.value, f, tc.kind, tc.count)
		case f != nil && f.value() != tc.value:
			t.Errorf("parseFlash(%q).value(): got %q, want it back unchanged", tc.value, f.value())
		}
	}
}

// A forged or stale flash cookie shows nothing and is cleared.
func TestUnknownFlashIsIgnoredAndCleared(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	b := newBrowser(t)
	b.setCookie(ta, flashCookie, "you_won_a_prize")
	p := b.get(ta.url("/"))
	wantFlash(t, "GET / with a bogus flash", p, "", "")
	if c := cookieSet(p, flashCookie); c == nil || c.MaxAge >= 0 {
		t.Fatalf("GET / with a bogus flash: got flash cookie %v, want it cleared", c)
	}
}

// endedTexts are what a browser whose session someone else ended reads on
// its next page, by language and reason.
var endedTexts = map[string]map[string]string{
	"en": {
		"device":   "You were signed out from another device.",
		"password": "You were signed out because your password was changed.",
		"operator": "You were signed out by an administrator.",
	},
	"zh": {
		"device":   "您已在其他设备上被退出登录。",
		"password": "您的密码已被修改，因此您已退出登录。",
		"operator": "管理员已将您退出登录。",
	},
}

// A browser whose session was ended elsewhere (from the sessions page of
// another device, by a password change there, by an administrator) is
// told so on the next page it opens, home or the login form the page it
// asked for sends it to, in its language; once. A session that ended on
// its own (it timed out) or was logged out by this browser gets no such
// message: it would not be true.
func TestEndedSessionsNextPageSaysItWasSignedOutElsewhere(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	ctx := context.Background()
	for _, lang := range testLanguages {
		for i, tc := range []struct {
			name string
			// end ends the session of victim (token), alice logged in on
			// other too, and returns the text victim's next page must
			// show ("" for none).
			end func(t *testing.T, user string, victim *browser, token string, other *browser) string
		}{
			{"revoked from another device", func(t *testing.T, _ string, _ *browser, _ string, other *browser) string {
				if p := other.post(ta.url("/sessions/revoke-others"), url.Values{}); p.status != http.StatusSeeOther {
					t.Fatalf("POST /sessions/revoke-others: got %d, want 303", p.status)
				}
				return "device"
			}},
			{"password changed on another device", func(t *testing.T, user string, _ *browser, _ string, other *browser) string {
				if p := other.post(ta.url("/password/"), passwordForm(alicePassword, aliceNewPassword, aliceNewPassword)); p.status != http.StatusSeeOther {
					t.Fatalf("POST /password/: got %d, want 303", p.status)
				}
				return "password"
			}},
			{"ended by an administrator", func(t *testing.T, user string, _ *browser, _ string, _ *browser) string {
				if _, err := ta.app.sessions.RevokeAll(activity.Because(ctx, activity.ByOperator), user, ""); err != nil {
					t.Fatalf("RevokeAll: %v", err)
				}
				return "operator"
			}},
			{"timed out", func(t *testing.T, _ string, _ *browser, token string, _ *browser) string {
				// As Redis drops a key at its idle deadline.
				if err := ta.check.Del(ctx, testkit.SessionKey(token)).Err(); err != nil {
					t.Fatal(err)
				}
				return ""
			}},
			{"logged out here, old cookie replayed", func(t *testing.T, _ string, victim *browser, token string, _ *browser) string {
				victim.post(ta.url("/logout/"), url.Values{})
				victim.get(ta.url("/")) // the "signed out" flash
				victim.setToken(ta.url("/"), token)
				return ""
			}},
		} {
			t.Run(lang.code+"/"+tc.name, func(t *testing.T) {
				user := fmt.Sprintf("ended-%s-%d", lang.code, i)
				ta.addUser(t, user, alicePassword)
				victim, other := newBrowser(t), newBrowser(t)
				token := ta.loginAs(t, victim, user, alicePassword, "")
				ta.loginAs(t, other, user, alicePassword, "")
				want := tc.end(t, user, victim, token, other)

				// A page that needs a login sends it to the login form,
				// which says why.
				p := victim.getIn(ta.url("/sessions/"), lang.acceptLanguage)
				if p.status != http.StatusSeeOther {
					t.Fatalf("GET /sessions/ after the end: got %d, want 303 to the login form", p.status)
				}
				p = victim.getIn(ta.url(p.header.Get("Location")), lang.acceptLanguage)
				kind, _ := flashOf(p.body)
				if want == "" {
					if kind != "" {
						t.Fatalf("login form: got flash %q, want none; body:\n%s", kind, p.body)
					}
					return
				}
				text := endedTexts[lang.code][want]
				if kind != "ended_elsewhere" || !strings.Contains(p.body, text) {
					t.Fatalf("login form: got flash %q, want ended_elsewhere saying %q; body:\n%s", kind, text, p.body)
				}
				checkPageLanguage(t, "the login form", p, lang.code, lang.html)
				// Once: home says nothing more.
				if p := victim.getIn(ta.url("/"), lang.acceptLanguage); strings.Contains(p.body, text) {
					t.Errorf("GET / next: got %q again, want it said once", text)
				}
			})
		}
	}
	// Home says it too, when that is where the browser goes first.
	ta.addUser(t, "ended-home", alicePassword)
	victim, other := newBrowser(t), newBrowser(t)
	ta.loginAs(t, victim, "ended-home", alicePassword, "")
	ta.loginAs(t, other, "ended-home", alicePassword, "")
	other.post(ta.url("/sessions/revoke-others"), url.Values{})
	p := victim.get(ta.url("/"))
	if kind, _ := flashOf(p.body); kind != "ended_elsewhere" || greeting(p.body) != "Hello" || !strings.Contains(p.body, endedTexts["en"]["device"]) {
		t.Errorf("GET / after the end: got flash %q, greeting %q; want ended_elsewhere, Hello; body:\n%s", kind, greeting(p.body), p.body)
	}
}
