package deploy

import (
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserForwardAuthBehindProxies drives headless Chromium to an app
// protected by each proxy of docs/forward-auth.md (nginx, Traefik, Caddy) with its
// snippet, as a user would: the app's URL shows the login form, logging in
// lands back on the very URL asked for with the app greeting the user it
// was told about and holding none of the service's cookies, and after
// "Sign out" the app's URL asks for a login again.
func TestBrowserForwardAuthBehindProxies(t *testing.T) {
	if _, err := os.Stat(browserExecPath); err != nil {
		t.Fatalf("chromium not found at %s (%v): run ./scripts/test.sh, which installs it", browserExecPath, err)
	}
	for _, gw := range gateways {
		t.Run(gw.Name, func(t *testing.T) { testBrowserForwardAuthBehind(t, gw) })
	}
}

func testBrowserForwardAuthBehind(t *testing.T, gw gateway) {
	start := time.Now()
	s := startForwardAuthSite(t, gw)
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
	resp = b.navigate("submit the login form", chromedp.Click(`//button[normalize-space()="Sign in"]`))
	if resp.URL != original || resp.Status != 200 {
		t.Fatalf("after login: got %s with status %d, want the app's %s with 200", resp.URL, resp.Status, original)
	}
	if got := browserRun(b, "read the user the app saw", chromedp.Text(chromedp.CSS("#user"))); strings.TrimSpace(got) != testUser {
		t.Fatalf("the app saw Remote-User %q, want %q", got, testUser)
	}
	if ck := b.sessionCookie(s.URL); ck == nil || !ck.HTTPOnly {
		t.Fatalf("after login: session cookie %+v, want an HttpOnly one", ck)
	}
	// The browser holds the session and device cookies; the app got
	// neither.
	got := strings.Fields(browserRun(b, "read the cookies the app saw", chromedp.Text(chromedp.CSS("#cookies"))))
	if ours := serviceCookiesIn(got); len(ours) > 0 {
		t.Fatalf("the app got the service's cookies %q, want none", ours)
	}

	resp = b.navigate("open the logout page", chromedp.Navigate(s.URL+"/logout/"))
	b.wantDocument("logout page", resp, s.URL+"/logout/", 200)
	b.navigate("log out", chromedp.Click(`#logout-submit`))
	resp = b.navigate("open the protected app again", chromedp.Navigate(original))
	b.wantDocument("protected app after logout", resp, loginPage, 200)
	t.Logf("Chromium through %s forward auth: login, app, logout in %v", gw.Name, time.Since(start).Round(time.Millisecond))
}
