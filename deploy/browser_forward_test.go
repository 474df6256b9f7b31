package deploy

import (
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserForwardAuthBehindNginx drives headless Chromium to an app
// protected by nginx with deploy/nginx-forward-auth.conf, as a user would:
// the app's URL shows the login form, logging in lands back on the very
// URL asked for with the app greeting the user it was told about, and
// after "Log out" the app's URL asks for a login again.
func TestBrowserForwardAuthBehindNginx(t *testing.T) {
	if _, err := os.Stat(browserExecPath); err != nil {
		t.Fatalf("chromium not found at %s (%v): run ./scripts/test.sh, which installs it", browserExecPath, err)
	}
	start := time.Now()
	s := startForwardAuthSite(t)
	b := newBrowserTab(t)
	original := s.URL + "/private/report?id=7"
	loginPage := s.URL + "/login/?next=" + url.QueryEscape(original)

	resp := b.navigate("open the protected app", chromedp.Navigate(original))
	b.wantDocument("protected app, logged out", resp, loginPage, 200)
	b.do("log in",
		chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), testUser),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), testPassword),
	)
	resp = b.navigate("submit the login form", chromedp.Click(`//button[normalize-space()="Log in"]`))
	if resp.URL != original || resp.Status != 200 {
		t.Fatalf("after login: got %s with status %d, want the app's %s with 200", resp.URL, resp.Status, original)
	}
	if got := browserRun(b, "read the user the app saw", chromedp.Text(chromedp.CSS("#user"))); strings.TrimSpace(got) != testUser {
		t.Fatalf("the app saw Remote-User %q, want %q", got, testUser)
	}
	if ck := b.sessionCookie(s.URL); ck == nil || !ck.HTTPOnly {
		t.Fatalf("after login: session cookie %+v, want an HttpOnly one", ck)
	}

	resp = b.navigate("open the logout page", chromedp.Navigate(s.URL+"/logout/"))
	b.wantDocument("logout page", resp, s.URL+"/logout/", 200)
	b.navigate("log out", chromedp.Click(`#logout-submit`))
	resp = b.navigate("open the protected app again", chromedp.Navigate(original))
	b.wantDocument("protected app after logout", resp, loginPage, 200)
	t.Logf("Chromium through nginx forward auth: login, app, logout in %v", time.Since(start).Round(time.Millisecond))
}
