package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"

	"loginsvc/internal/store"
	"loginsvc/internal/testkit"
)

const (
	// browserExecPath is Debian's chromium, which ./scripts/test.sh
	// installs. No browser is ever downloaded.
	browserExecPath = "/usr/bin/chromium"
	// browserTimeout bounds the whole browser session, its start included,
	// so a hung page fails the test instead of waiting for go test's -timeout.
	// The session takes about 15s on an idle 2-CPU machine and 40s when
	// other test binaries load it; the rest is headroom.
	browserTimeout = 120 * time.Second
	// browserReloads is how many times the logged-in page is reloaded to see
	// several replicas serve the one session.
	browserReloads = 6
	// browserScreenshot is the file name of the logged-in page's screenshot;
	// the sessions page's are named after it.
	browserScreenshot     = "browser-logged-in.png"
	browserSessionsShot   = "browser-sessions.png"
	browserSessionsZhShot = "browser-sessions-zh.png"
	// browserPhoneUA is the User-Agent of the second device, a Go client
	// that logs in as the same user: a phone, so that its row on the
	// sessions page reads differently from Chromium's.
	browserPhoneUA = "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0"
	// browserNewPassword is what the browser changes testPassword to.
	browserNewPassword = "browser-changed-it-4Rt8-not-a-secret"
	// browserInvalidLogin is the one message of every refused login.
	browserInvalidLogin = "Incorrect username or password."
)

// TestBrowserLoginLogout drives a real headless Chromium through haproxy in
// front of three replicas, as a user would: a wrong password is refused; the
// right one logs in with an HttpOnly, SameSite=Lax session cookie that every
// replica honours; the sessions page lists a second device and signs it out;
// the password page refuses a wrong current password and then changes it,
// signing the other device out (see browserAccountPages); "Sign out" ends the
// session in the browser and in Redis. The browser talks to the load
// balancer only.
func TestBrowserLoginLogout(t *testing.T) {
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Fatal("chromium not found: run ./scripts/test.sh, which installs it")
	}
	if _, err := os.Stat(browserExecPath); err != nil {
		t.Fatalf("chromium not found at %s (%v): run ./scripts/test.sh, which installs it", browserExecPath, err)
	}

	start := time.Now()
	c := startCluster(t, 3)
	rdb := c.Redis.Client(t)
	base := strings.TrimSuffix(c.LB, "/")
	home := base + "/"
	clusterUp := time.Now()
	b := newBrowserTab(t)
	t.Logf("cluster of %d ready in %v, browser started in %v", len(c.Replicas),
		clusterUp.Sub(start).Round(time.Millisecond), time.Since(clusterUp).Round(time.Millisecond))
	defer func() { t.Logf("browser session took %v", time.Since(clusterUp).Round(time.Millisecond)) }()

	// Logged out: "Hello" and a link to the login form.
	resp := b.navigate("open /", chromedp.Navigate(home))
	b.wantDocument("GET /", resp, home, 200)
	b.wantHeading("Hello")
	resp = b.navigate(`click the "Sign in" link`, chromedp.Click(`//a[normalize-space()="Sign in"]`))
	b.wantDocument("login form", resp, base+"/login/", 200)
	b.do("find the login form",
		chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name="password"][type="password"]`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name="remember"][type="checkbox"]`)),
	)

	// A wrong password: the form again, with the one generic message. Once
	// only: failed logins are throttled per account.
	b.do("type a wrong password",
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), testUser),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), testPassword+"-wrong"),
	)
	resp = b.navigate("submit a wrong password", chromedp.Click(`//button[normalize-space()="Sign in"]`))
	b.wantDocument("wrong password", resp, base+"/login/", 400)
	if msg := browserRun(b, "read the error", chromedp.Text(chromedp.CSS(`p.error`))); strings.TrimSpace(msg) != browserInvalidLogin {
		t.Fatalf("wrong password: error %q, want %q", msg, browserInvalidLogin)
	}
	if ck := b.sessionCookie(base); ck != nil {
		t.Fatalf("wrong password: the browser holds a %s cookie: %+v", sessionCookie, *ck)
	}

	// The right password. The form kept the username: type both afresh.
	b.blank(`input[name="username"]`, `input[name="password"]`)
	b.do("type the right credentials",
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), testUser),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), testPassword),
	)
	resp = b.navigate("submit the login form", chromedp.Click(`//button[normalize-space()="Sign in"]`))
	b.wantDocument("after login", resp, home, 200)
	b.wantHeading("Hello, admin")
	t.Logf("logged in; home page served by %s", browserServedBy(resp))

	// The session cookie is in the browser, HttpOnly and SameSite=Lax, and
	// page scripts cannot read it.
	ck := b.sessionCookie(base)
	if ck == nil {
		t.Fatalf("after login the browser holds no %s cookie for %s", sessionCookie, base)
	}
	if !ck.HTTPOnly {
		t.Errorf("cookie %s is not HttpOnly: %+v", sessionCookie, *ck)
	}
	if ck.SameSite != network.CookieSameSiteLax {
		t.Errorf("cookie %s SameSite = %q, want %q", sessionCookie, ck.SameSite, network.CookieSameSiteLax)
	}
	if !ck.Session {
		// "Remember me" was not ticked: the cookie must end with the
		// browser session, not persist.
		t.Errorf("cookie %s persists (expires %v) although remember was not ticked", sessionCookie, ck.Expires)
	}
	if ck.Path != "/" {
		t.Errorf("cookie %s Path = %q, want /", sessionCookie, ck.Path)
	}
	docCookie := browserRun(b, "read document.cookie", chromedp.Evaluate[string](`document.cookie`))
	if strings.Contains(docCookie, sessionCookie) || strings.Contains(docCookie, ck.Value) {
		t.Errorf("document.cookie = %q: page scripts can read the session cookie", docCookie)
	}
	key := testkit.SessionKey(ck.Value)
	if n, err := rdb.Exists(context.Background(), key).Result(); err != nil || n != 1 {
		t.Fatalf("after login: EXISTS %s = %d, %v; want 1 (the cookie names no session in Redis)", key, n, err)
	}

	png := browserRun(b, "screenshot", chromedp.CaptureScreenshot())
	browserSaveArtifact(t, browserScreenshot, png)

	// Reloads: haproxy round-robins, so several replicas serve the session.
	seen := map[string]bool{}
	var servers []string
	for i := range browserReloads {
		what := fmt.Sprintf("reload %d", i+1)
		resp := b.navigate(what, chromedp.Reload())
		b.wantDocument(what, resp, home, 200)
		b.wantHeading("Hello, admin")
		id := browserServedBy(resp)
		seen[id] = true
		servers = append(servers, id)
	}
	t.Logf("reloads served by %v", servers)
	if len(seen) < 2 {
		t.Errorf("all %d reloads were served by %v: want at least 2 distinct replicas", browserReloads, servers)
	}
	for id := range seen {
		if !slices.ContainsFunc(c.Replicas, func(r *replica) bool { return r.ID == id }) {
			t.Errorf("X-Served-By %q names no replica of the cluster", id)
		}
	}

	// A second device, the sessions page and a password change. It leaves
	// the browser logged in and no other session behind.
	browserAccountPages(t, c, b)

	// Sign out: the browser drops the cookie and Redis the session.
	resp = b.navigate(`click "Sign out"`, chromedp.Click(`//button[normalize-space()="Sign out"]`))
	b.wantDocument("after logout", resp, home, 200)
	b.wantHeading("Hello")
	if got := b.sessionCookie(base); got != nil {
		t.Errorf("after logout the browser still holds %s: %+v", sessionCookie, *got)
	}
	device := false
	for _, other := range b.allCookies() {
		if other.Name == sessionCookie {
			t.Errorf("after logout the browser still holds %s for %s: %+v", sessionCookie, other.Domain, *other)
		}
		device = device || other.Name == deviceCookie
	}
	if !device {
		// It is what lets this browser log in while someone keeps the
		// account locked; the owner logging out must not lose it.
		t.Errorf("after logout the browser no longer holds its %s cookie", deviceCookie)
	}
	if n, err := rdb.Exists(context.Background(), key).Result(); err != nil || n != 0 {
		t.Errorf("after logout: EXISTS %s = %d, %v; want 0", key, n, err)
	}
	var left []string
	it := rdb.Scan(context.Background(), 0, store.SessionPrefix+"*", 100).Iterator()
	for it.Next(context.Background()) {
		left = append(left, it.Val())
	}
	if err := it.Err(); err != nil {
		t.Fatalf("SCAN %s*: %v", store.SessionPrefix, err)
	}
	if slices.Contains(left, key) {
		t.Errorf("after logout SCAN still finds %s", key)
	}
	if len(left) != 0 {
		// Nobody else uses this cluster: a session left over is one that
		// logout failed to delete, or one a page view made needlessly.
		t.Errorf("after logout Redis holds session keys %v, want none", left)
	}

	// Every replica now sees a logged-out browser.
	resp = b.navigate("reload after logout", chromedp.Reload())
	b.wantDocument("reload after logout", resp, home, 200)
	b.wantHeading("Hello")
}

// browserTab is one tab of a headless Chromium that a test drives.
type browserTab struct {
	t   *testing.T
	ctx context.Context
}

// newBrowserTab starts Debian's headless Chromium with a fresh profile and
// returns its first tab. Everything it does is bounded by browserTimeout.
// The browser is closed and waited for in t.Cleanup, before its profile
// directory is removed.
func newBrowserTab(t *testing.T) *browserTab {
	t.Helper()
	profile := t.TempDir()
	out := &testkit.Buffer{}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browserExecPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(profile),
		chromedp.CombinedOutput(out),
	}
	ctx, cancelTimeout := context.WithTimeout(context.Background(), browserTimeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	// Registered after t.TempDir, so it runs before the profile is removed.
	t.Cleanup(func() {
		cancelTab()   // closes the browser gracefully
		cancelAlloc() // waits until the process has exited
		cancelTimeout()
		if t.Failed() {
			t.Logf("chromium output:\n%s", out)
		}
	})
	// Start the browser now, so a browser that cannot start is reported as
	// such rather than as a page that failed.
	if err := chromedp.Do(tabCtx); err != nil {
		t.Fatalf("start %s: %v", browserExecPath, err)
	}
	return &browserTab{t: t, ctx: tabCtx}
}

// navigate runs an action that loads a page (a navigation, a click on a link
// or a submit button, a reload), waits until the page has loaded, and returns
// the response of its HTML document, after any redirects.
func (b *browserTab) navigate(what string, a chromedp.Action[chromedp.Void]) *network.Response {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	if resp == nil {
		b.t.Fatalf("%s: no document response", what)
	}
	return resp
}

// blank empties the inputs the CSS selectors name through their value
// property. chromedp.Clear sets the value attribute, and the DOM event
// that change sends races (under -race) with a following SendKeys that
// reads the node's attributes inside chromedp; a property is no
// attribute, so nothing is sent.
func (b *browserTab) blank(sels ...string) {
	b.t.Helper()
	for _, sel := range sels {
		js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.value = ""; return true; })()`, sel)
		if ok := browserRun(b, "empty "+sel, chromedp.Evaluate[bool](js)); !ok {
			b.t.Fatalf("empty %s: no such element", sel)
		}
	}
}

// do runs actions that return nothing.
func (b *browserTab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// browserRun runs an action on b and returns its value (a method cannot have
// type parameters).
func browserRun[T any](b *browserTab, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// wantDocument checks the URL and status of a page's document and that a
// replica answered it.
func (b *browserTab) wantDocument(what string, resp *network.Response, url string, status int64) {
	b.t.Helper()
	if resp.URL != url || resp.Status != status {
		b.t.Fatalf("%s: got %s with status %d (X-Served-By %q), want %s with status %d",
			what, resp.URL, resp.Status, browserServedBy(resp), url, status)
	}
	if browserServedBy(resp) == "" {
		b.t.Fatalf("%s: the document has no X-Served-By header (headers %v)", what, resp.Headers)
	}
}

// wantHeading checks the text of the page's h1.
func (b *browserTab) wantHeading(want string) {
	b.t.Helper()
	if got := browserRun(b, "read the h1", chromedp.Text(chromedp.CSS("h1"))); strings.TrimSpace(got) != want {
		b.t.Fatalf("h1 is %q, want %q", got, want)
	}
}

// sessionCookie returns the session cookie that the browser would send to
// base, or nil.
func (b *browserTab) sessionCookie(base string) *network.Cookie {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/"}})
	if err != nil {
		b.t.Fatalf("Network.getCookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == sessionCookie {
			return c
		}
	}
	return nil
}

// allCookies returns every cookie that the browser holds, for any site.
func (b *browserTab) allCookies() []*network.Cookie {
	b.t.Helper()
	res, err := chromedp.CallBrowser(b.ctx, storage.GetCookies, storage.GetCookiesParams{})
	if err != nil {
		b.t.Fatalf("Storage.getCookies: %v", err)
	}
	return res.Cookies
}

// browserServedBy returns the X-Served-By header of a response, or "".
func browserServedBy(resp *network.Response) string {
	for k, v := range resp.Headers {
		if strings.EqualFold(k, "X-Served-By") {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

// browserSaveArtifact writes a PNG test artifact into $TEST_ARTIFACTS_DIR if
// set, else into test-artifacts/ at the repository root (git-ignored), and
// logs its path.
func browserSaveArtifact(t *testing.T, name string, png []byte) {
	t.Helper()
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("artifact %s: not a PNG (%d bytes)", name, len(png))
	}
	dir := os.Getenv("TEST_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), "test-artifacts")
	}
	path, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("artifact %s: %v", name, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("artifact %s: %v", name, err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("artifact %s: %v", name, err)
	}
	t.Logf("screenshot: %s", path)
}

// browserAccountPages is the account part of TestBrowserLoginLogout. b is
// logged in as testUser with testPassword; a Go client logs in as the same
// user from a "phone". In the browser, through the header's links:
//   - Sessions lists both, newest first, marks the browser's as this
//     device, and signs the phone out: its cookie is anonymous on its very
//     next request, on any replica. The page works in Chinese too. Logged
//     in again, the phone is signed out by "Sign out all other sessions".
//   - Password refuses a wrong current password, then changes it: the
//     phone (logged in again) is signed out, the browser continues under a
//     new cookie, and only the new password logs in.
//
// It returns with b logged in and no other session of testUser left.
func browserAccountPages(t *testing.T, c *cluster, b *browserTab) {
	ctx := context.Background()
	rdb := c.Redis.Client(t)
	base := strings.TrimSuffix(c.LB, "/")
	sessionsURL, passwordURL := base+"/sessions/", base+"/password/"
	start := time.Now()

	phone, phoneToken := browserPhoneLogin(t, c, testPassword)

	// The sessions page, from the header: two sessions, the browser's
	// marked as this device and without a button to sign itself out.
	resp := b.navigate(`click the header's "Sessions" link`, chromedp.Click(chromedp.CSS(`#nav-sessions`)))
	b.wantDocument("sessions page", resp, sessionsURL, 200)
	rows := b.sessionRows()
	if len(rows) != 2 {
		t.Fatalf("sessions page lists %d sessions %+v, want 2 (the browser and the phone)", len(rows), rows)
	}
	// Newest first: the phone logged in after the browser.
	other, current := rows[0], rows[1]
	if !current.Current || other.Current {
		t.Fatalf("sessions page marks this device = %v, %v; want the second row only (the browser's, the older): %+v", other.Current, current.Current, rows)
	}
	if !current.Badge || current.Revoke {
		t.Errorf("this device's row: badge %v, revoke button %v; want the badge and no button: %+v", current.Badge, current.Revoke, current)
	}
	if other.Badge || !other.Revoke {
		t.Errorf("the phone's row: badge %v, revoke button %v; want a button and no badge: %+v", other.Badge, other.Revoke, other)
	}
	if current.Device == "" || other.Device == "" || current.Device == other.Device {
		t.Errorf("devices: this one %q, the other %q; want two different, non-empty summaries (user agents %q and %q)",
			current.Device, other.Device, browserRun(b, "read the user agent", chromedp.Evaluate[string](`navigator.userAgent`)), browserPhoneUA)
	}
	if !b.present(`#revoke-others`) {
		t.Errorf("sessions page with another session has no #revoke-others form")
	}
	t.Logf("sessions page (served by %s): this device %q, the other %q", browserServedBy(resp), current.Device, other.Device)
	browserSaveArtifact(t, browserSessionsShot, browserRun(b, "screenshot the sessions page", chromedp.FullScreenshot(100)))

	// Sign the phone out: back to the list with a confirmation, one row.
	revoke := fmt.Sprintf(`#sessions [data-session-id=%q] form.revoke button[type="submit"]`, other.ID)
	resp = b.navigate("click the phone's sign-out button", chromedp.Click(chromedp.CSS(revoke)))
	b.wantDocument("after signing the phone out", resp, sessionsURL, 200)
	b.wantFlash("after signing the phone out", "session_revoked", "")
	if rows := b.sessionRows(); len(rows) != 1 || rows[0].ID != current.ID || !rows[0].Current {
		t.Errorf("after signing the phone out the page lists %+v, want only this device %s", rows, current.ID)
	}
	if !b.present(`#only-session`) || b.present(`#revoke-others`) {
		t.Errorf("after signing the phone out: #only-session shown %v, #revoke-others shown %v; want true, false",
			b.present(`#only-session`), b.present(`#revoke-others`))
	}
	browserWantAnonymous(t, c, phone, "the phone, right after it was signed out")
	if n, err := rdb.Exists(ctx, testkit.SessionKey(phoneToken)).Result(); err != nil || n != 0 {
		t.Errorf("after signing the phone out: EXISTS its session = %d, %v; want 0", n, err)
	}
	if n, err := rdb.ZCard(ctx, store.UserSessionsKey(testUser)).Result(); err != nil || n != 1 {
		t.Errorf("after signing the phone out: ZCARD %s = %d, %v; want 1", store.UserSessionsKey(testUser), n, err)
	}
	revoked := time.Now()

	// The same page in Chinese, by the page's own switch, and back.
	resp = b.navigate("switch to Chinese", chromedp.Click(chromedp.CSS(`#lang-switch a[data-lang="zh"]`)))
	b.wantDocument("sessions page in Chinese", resp, sessionsURL, 200)
	if lang := b.htmlLang(); !strings.HasPrefix(lang, "zh") {
		t.Errorf(`sessions page after switching to Chinese: <html lang=%q>, want "zh…"`, lang)
	}
	if rows := b.sessionRows(); len(rows) != 1 || !rows[0].Current || !rows[0].Badge {
		t.Errorf("sessions page in Chinese lists %+v, want this device only, with its badge", rows)
	}
	browserSaveArtifact(t, browserSessionsZhShot, browserRun(b, "screenshot the sessions page in Chinese", chromedp.FullScreenshot(100)))
	resp = b.navigate("switch back to English", chromedp.Click(chromedp.CSS(`#lang-switch a[data-lang="en"]`)))
	b.wantDocument("sessions page in English again", resp, sessionsURL, 200)
	if lang := b.htmlLang(); lang != "en" {
		t.Fatalf(`sessions page after switching back: <html lang=%q>, want "en"`, lang)
	}
	switched := time.Now()

	// "Sign out all other sessions", with the phone logged in again.
	phone, phoneToken = browserPhoneLogin(t, c, testPassword)
	resp = b.navigate("reload the sessions page", chromedp.Reload())
	b.wantDocument("sessions page with the phone back", resp, sessionsURL, 200)
	if rows := b.sessionRows(); len(rows) != 2 {
		t.Fatalf("sessions page with the phone back lists %d sessions %+v, want 2", len(rows), rows)
	}
	resp = b.navigate(`click "Sign out all other sessions"`, chromedp.Click(chromedp.CSS(`#revoke-others button[type="submit"]`)))
	b.wantDocument("after signing out all others", resp, sessionsURL, 200)
	b.wantFlash("after signing out all others", "others_revoked", "1")
	if rows := b.sessionRows(); len(rows) != 1 || rows[0].ID != current.ID {
		t.Errorf("after signing out all others the page lists %+v, want only this device %s", rows, current.ID)
	}
	browserWantAnonymous(t, c, phone, "the phone, right after all others were signed out")
	if n, err := rdb.Exists(ctx, testkit.SessionKey(phoneToken)).Result(); err != nil || n != 0 {
		t.Errorf("after signing out all others: EXISTS the phone's session = %d, %v; want 0", n, err)
	}
	othersOut := time.Now()

	// The password page, from the header. The phone logs in again first:
	// the change must sign it out.
	phone, phoneToken = browserPhoneLogin(t, c, testPassword)
	before := b.sessionCookie(base)
	if before == nil {
		t.Fatalf("before the password change the browser holds no %s cookie", sessionCookie)
	}
	resp = b.navigate(`click the header's "Security" link`, chromedp.Click(chromedp.CSS(`#nav-security`)))
	b.wantDocument("security page", resp, base+"/security/", 200)
	resp = b.navigate(`click "Change your password"`, chromedp.Click(chromedp.CSS(`#link-change-password`)))
	b.wantDocument("password page", resp, passwordURL, 200)
	minChars, ok := b.attr(`#password-rule`, "data-min-chars")
	if n, err := strconv.Atoi(minChars); !ok || err != nil || n < 12 || len(browserNewPassword) < n {
		t.Fatalf("password page states #password-rule data-min-chars=%q (present %v): want a number from 12 to len(%q)",
			minChars, ok, browserNewPassword)
	}

	// A wrong current password: the form again, with its error, and nobody
	// is signed out.
	b.fillPassword(testPassword+"-wrong", browserNewPassword)
	resp = b.navigate("submit a wrong current password", chromedp.Click(chromedp.CSS(`#password-form button[type="submit"]`)))
	if resp.URL != passwordURL || (resp.Status != 400 && resp.Status != 429) {
		t.Fatalf("wrong current password: got %s with status %d (X-Served-By %q), want %s with status 400 or 429",
			resp.URL, resp.Status, browserServedBy(resp), passwordURL)
	}
	if kind, ok := b.attr(`#password-error`, "data-error"); kind != "current" {
		t.Errorf(`wrong current password: #password-error data-error=%q (present %v), want "current"`, kind, ok)
	}
	if b.present(`#flash`) {
		t.Errorf("wrong current password: the page shows a flash %+v", b.flash())
	}
	if status, by, body := c.get(t, phone, c.LB+"/"); status != 200 || !loggedIn(body, testUser) {
		t.Errorf("after a refused password change the phone (served by %s) got %d, logged in %v; want 200, still logged in", by, status, loggedIn(body, testUser))
	}

	// The right one: one other session signed out, this one continues
	// under a new cookie.
	b.fillPassword(testPassword, browserNewPassword)
	resp = b.navigate("submit the password change", chromedp.Click(chromedp.CSS(`#password-form button[type="submit"]`)))
	b.wantDocument("after the password change", resp, passwordURL, 200)
	b.wantFlash("after the password change", "password_changed", "1")
	changed := time.Now()
	browserWantAnonymous(t, c, phone, "the phone, after the password change")
	after := b.sessionCookie(base)
	switch {
	case after == nil:
		t.Fatalf("after the password change the browser holds no %s cookie", sessionCookie)
	case after.Value == before.Value:
		t.Errorf("after the password change the browser's %s cookie is unchanged: want a new token", sessionCookie)
	}
	for _, k := range []struct {
		what  string
		token string
		want  int64
	}{
		{"the browser's old token", before.Value, 0},
		{"the browser's new token", after.Value, 1},
		{"the phone's token", phoneToken, 0},
	} {
		if n, err := rdb.Exists(ctx, testkit.SessionKey(k.token)).Result(); err != nil || n != k.want {
			t.Errorf("after the password change: EXISTS session of %s = %d, %v; want %d", k.what, n, err, k.want)
		}
	}
	resp = b.navigate("click the header's brand link", chromedp.Click(chromedp.CSS(`header a.brand`)))
	b.wantDocument("home after the password change", resp, base+"/", 200)
	b.wantHeading("Hello, " + testUser)
	if u, ok := b.attr(`#header-user`, "data-user"); u != testUser {
		t.Errorf("after the password change the header names %q (present %v), want %q", u, ok, testUser)
	}

	// Only the new password logs in now.
	if status, token := browserTryLogin(t, c, testPassword); status != 400 || token != "" {
		t.Errorf("login with the old password: status %d, session cookie %v; want 400 and none", status, token != "")
	}
	phone, _ = browserPhoneLogin(t, c, browserNewPassword)
	if status, by, body := c.get(t, phone, c.LB+"/"); status != 200 || !loggedIn(body, testUser) {
		t.Errorf("after logging in with the new password the phone (served by %s) got %d, logged in %v; want 200, logged in", by, status, loggedIn(body, testUser))
	}
	logout(t, phone, c.LB)

	t.Logf("account pages: sessions + revoke %v, language switch %v, revoke others %v, password change %v, logins after %v",
		revoked.Sub(start).Round(time.Millisecond), switched.Sub(revoked).Round(time.Millisecond),
		othersOut.Sub(switched).Round(time.Millisecond), changed.Sub(othersOut).Round(time.Millisecond),
		time.Since(changed).Round(time.Millisecond))
}

// browserPhoneLogin logs testUser in with password through the load
// balancer from a fresh Go client that says it is a phone, and returns the
// client and its session token.
func browserPhoneLogin(t *testing.T, c *cluster, password string) (*http.Client, string) {
	t.Helper()
	phone := testkit.Browser(t)
	ck := postLogin(t, phone, c.LB, testUser, password, http.Header{"User-Agent": {browserPhoneUA}})
	return phone, ck.Value
}

// browserTryLogin posts the login form for testUser with password through
// the load balancer from a fresh client, and returns the status and the
// session token it set, "" for none.
func browserTryLogin(t *testing.T, c *cluster, password string) (status int, token string) {
	t.Helper()
	client := testkit.Browser(t)
	resp, err := client.PostForm(c.LB+"/login/", url.Values{"username": {testUser}, "password": {password}})
	if err != nil {
		t.Fatalf("POST %s/login/: %v", c.LB, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie && ck.Value != "" {
			token = ck.Value
		}
	}
	return resp.StatusCode, token
}

// browserWantAnonymous checks that client's very next request through the
// load balancer, whichever replica serves it, is a logged-out one.
func browserWantAnonymous(t *testing.T, c *cluster, client *http.Client, who string) {
	t.Helper()
	if status, by, body := c.get(t, client, c.LB+"/"); status != 200 || !loggedOut(body) {
		t.Errorf("%s: GET / (served by %s) got %d, logged out %v; want 200, logged out\n%s", who, by, status, loggedOut(body), firstLine(body))
	}
}

// browserSessionRow is one row of the sessions page, read by its markers.
type browserSessionRow struct {
	ID      string `json:"id"`
	Current bool   `json:"current"`
	// Badge is the "this device" badge, Revoke the row's sign-out button.
	Badge  bool   `json:"badge"`
	Revoke bool   `json:"revoke"`
	Device string `json:"device"`
}

// browserRowsJS reads the sessions page's rows. Runtime.evaluate is not
// page script, so the page's CSP does not stop it.
const browserRowsJS = `[...document.querySelectorAll("#sessions [data-session-id]")].map(li => ({
	id: li.dataset.sessionId,
	current: li.dataset.current === "true",
	badge: li.querySelector("#this-device") !== null,
	revoke: li.querySelector('form.revoke button[type="submit"]') !== null,
	device: (li.querySelector(".device")?.textContent ?? "").trim(),
}))`

// sessionRows returns the rows of the sessions page, in page order.
func (b *browserTab) sessionRows() []browserSessionRow {
	b.t.Helper()
	return browserRun(b, "read the session rows", chromedp.Evaluate[[]browserSessionRow](browserRowsJS))
}

// browserFlash is the page's one-time message, read by its markers.
type browserFlash struct {
	Kind  string `json:"kind"`
	Count string `json:"count"`
	Text  string `json:"text"`
}

// flash returns the page's flash message, or nil when it shows none.
func (b *browserTab) flash() *browserFlash {
	b.t.Helper()
	return browserRun(b, "read the flash", chromedp.Evaluate[*browserFlash](`(() => {
	const f = document.getElementById("flash");
	return f && {kind: f.dataset.flash ?? "", count: f.dataset.count ?? "", text: f.textContent.trim()};
})()`))
}

// wantFlash checks the page's flash message by its kind and count ("" for
// an uncounted one), and that it has some text.
func (b *browserTab) wantFlash(what, kind, count string) {
	b.t.Helper()
	f := b.flash()
	switch {
	case f == nil:
		b.t.Errorf("%s: the page shows no #flash, want kind %q", what, kind)
	case f.Kind != kind || f.Count != count || f.Text == "":
		b.t.Errorf("%s: flash %+v, want kind %q, count %q and some text", what, *f, kind, count)
	default:
		b.t.Logf("%s: flash %q", what, f.Text)
	}
}

// present reports whether the page has an element matching the CSS
// selector sel, without waiting for one.
func (b *browserTab) present(sel string) bool {
	b.t.Helper()
	return browserRun(b, "look for "+sel, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q) !== null`, sel)))
}

// attr returns the attribute name of the first element that matches the
// CSS selector sel, and whether there is one that has it. Unlike
// chromedp.AttributeValue it does not wait for such an element: a page
// without it fails at once rather than at browserTimeout.
func (b *browserTab) attr(sel, name string) (string, bool) {
	b.t.Helper()
	v := browserRun(b, "read "+sel+" "+name, chromedp.Evaluate[*string](
		fmt.Sprintf(`document.querySelector(%q)?.getAttribute(%q) ?? null`, sel, name)))
	if v == nil {
		return "", false
	}
	return *v, true
}

// htmlLang returns the page's <html lang>.
func (b *browserTab) htmlLang() string {
	b.t.Helper()
	return browserRun(b, "read <html lang>", chromedp.Evaluate[string](`document.documentElement.lang`))
}

// fillPassword types into the password form: current, then next twice.
func (b *browserTab) fillPassword(current, next string) {
	b.t.Helper()
	steps := make([]chromedp.Action[chromedp.Void], 0, 3)
	for _, f := range [...]struct{ name, value string }{
		{"current_password", current}, {"new_password", next}, {"confirm_password", next},
	} {
		css := fmt.Sprintf(`#password-form input[name=%q]`, f.name)
		b.blank(css)
		steps = append(steps, chromedp.SendKeys(chromedp.CSS(css), f.value))
	}
	b.do("fill the password form", steps...)
}
