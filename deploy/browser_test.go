package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	// The session takes about 10s on an idle 2-CPU machine and 30s when
	// other test binaries load it; the rest is headroom.
	browserTimeout = 90 * time.Second
	// browserReloads is how many times the logged-in page is reloaded to see
	// several replicas serve the one session.
	browserReloads = 6
	// browserScreenshot is the file name of the logged-in page's screenshot.
	browserScreenshot = "browser-logged-in.png"
	// browserInvalidLogin is the one message of every refused login.
	browserInvalidLogin = "invalid username or password"
)

// TestBrowserLoginLogout drives a real headless Chromium through nginx in
// front of three replicas, as a user would: a wrong password is refused; the
// right one logs in with an HttpOnly, SameSite=Lax session cookie that every
// replica honours; "Log out" ends the session in the browser and in Redis.
// The browser talks to the load balancer only.
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

	// Logged out: "hello" and a link to the login form.
	resp := b.navigate("open /", chromedp.Navigate(home))
	b.wantDocument("GET /", resp, home, 200)
	b.wantHeading("hello")
	resp = b.navigate(`click the "Log in" link`, chromedp.Click(`//a[normalize-space()="Log in"]`))
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
	resp = b.navigate("submit a wrong password", chromedp.Click(`//button[normalize-space()="Log in"]`))
	b.wantDocument("wrong password", resp, base+"/login/", 400)
	if msg := browserRun(b, "read the error", chromedp.Text(chromedp.CSS(`p.error`))); strings.TrimSpace(msg) != browserInvalidLogin {
		t.Fatalf("wrong password: error %q, want %q", msg, browserInvalidLogin)
	}
	if ck := b.sessionCookie(base); ck != nil {
		t.Fatalf("wrong password: the browser holds a %s cookie: %+v", sessionCookie, *ck)
	}

	// The right password. The form kept the username: type both afresh.
	b.do("type the right credentials",
		chromedp.Clear(chromedp.CSS(`input[name="username"]`)),
		chromedp.Clear(chromedp.CSS(`input[name="password"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), testUser),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), testPassword),
	)
	resp = b.navigate("submit the login form", chromedp.Click(`//button[normalize-space()="Log in"]`))
	b.wantDocument("after login", resp, home, 200)
	b.wantHeading("hello admin")
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

	// Reloads: nginx round-robins, so several replicas serve the session.
	seen := map[string]bool{}
	var servers []string
	for i := range browserReloads {
		what := fmt.Sprintf("reload %d", i+1)
		resp := b.navigate(what, chromedp.Reload())
		b.wantDocument(what, resp, home, 200)
		b.wantHeading("hello admin")
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

	// Log out: the browser drops the cookie and Redis the session.
	resp = b.navigate(`click "Log out"`, chromedp.Click(`//button[normalize-space()="Log out"]`))
	b.wantDocument("after logout", resp, home, 200)
	b.wantHeading("hello")
	if got := b.sessionCookie(base); got != nil {
		t.Errorf("after logout the browser still holds %s: %+v", sessionCookie, *got)
	}
	for _, other := range b.allCookies() {
		if other.Name == sessionCookie {
			t.Errorf("after logout the browser still holds %s for %s: %+v", sessionCookie, other.Domain, *other)
		}
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
	b.wantHeading("hello")
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
	t.Logf("screenshot of the logged-in page: %s", path)
}
