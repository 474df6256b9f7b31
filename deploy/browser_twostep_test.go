package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"loginsvc/internal/auth"
)

// pendingLoginCookie is the cookie of a two-step login between its steps
// (internal/web: never a session).
const pendingLoginCookie = "login_pending"

// browserTwoStep is one language's run of TestBrowserTwoStepLogin.
type browserTwoStep struct {
	lang, user, password string
	// htmlLang is the <html lang> every page has in this language.
	htmlLang string
	// codeTitle is the code page's h1; invalidCode a part of its error;
	// recoveryLeft a part of the flash after a recovery code, 9 left.
	codeTitle, invalidCode, recoveryLeft string
}

// TestBrowserTwoStepLogin drives a real headless Chromium through haproxy
// in front of two replicas, in English and again in Chinese (chosen with
// the page's language switch), as a user would: log in with the password;
// on the security page set up the authenticator app, with the code the
// test computes from the secret the page shows; see ten recovery codes;
// log out. The password then leads to the code page, not to a session; a
// wrong code and the enrolment's code again (a replay, on whichever
// replica) are refused with the page's error; the next step's code logs
// in with a session on two factors. Logged out again, "use a recovery
// code" logs in with one of the ten, and the flash and the security page
// say nine are left. Screenshots of the enrolment and code pages of each
// language are saved with browserSaveArtifact.
func TestBrowserTwoStepLogin(t *testing.T) {
	if _, err := os.Stat(browserExecPath); err != nil {
		t.Fatalf("chromium not found at %s (%v): run ./scripts/test.sh, which installs it", browserExecPath, err)
	}
	if out, err := exec.Command("fc-list", ":lang=zh").Output(); err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Fatalf("no CJK font (fc-list :lang=zh: %v): the Chinese pages would be boxes; run ./scripts/test.sh, which installs one", err)
	}
	start := time.Now()
	c := startCluster(t, 2)
	const zhUser, zhPassword = "lihua", "two-step-browser-only-5Kp9-not-a-secret"
	c.addUser(t, zhUser, zhPassword)
	t.Logf("cluster of %d ready in %v", len(c.Replicas), time.Since(start).Round(time.Millisecond))

	for _, run := range []browserTwoStep{
		{lang: "en", user: testUser, password: testPassword, htmlLang: "en",
			codeTitle: "Two-step verification", invalidCode: "That code didn't work", recoveryLeft: "9 codes are left"},
		{lang: "zh", user: zhUser, password: zhPassword, htmlLang: "zh-Hans",
			codeTitle: "两步验证", invalidCode: "验证码无效", recoveryLeft: "还剩 9 个恢复码"},
	} {
		t.Run(run.lang, func(t *testing.T) {
			began := time.Now()
			browserTwoStepRun(t, c, run)
			t.Logf("%s: two-step login in Chromium took %v", run.lang, time.Since(began).Round(time.Millisecond))
		})
	}
}

func browserTwoStepRun(t *testing.T, c *cluster, run browserTwoStep) {
	base := strings.TrimSuffix(c.LB, "/")
	home, loginURL, codeURL := base+"/", base+"/login/", base+"/login/code/"
	securityURL, totpURL := base+"/security/", base+"/security/totp/"
	b := newBrowserTab(t)

	resp := b.navigate("open the login form", chromedp.Navigate(loginURL))
	b.wantDocument("login form", resp, loginURL, 200)
	if run.lang != "en" {
		resp = b.navigate("switch the language to "+run.lang, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#lang-switch a[data-lang=%q]`, run.lang))))
		b.wantDocument("login form in "+run.lang, resp, loginURL, 200)
	}
	b.wantLang("login form", run.htmlLang)

	// Set up the authenticator app from the security page.
	resp = b.submitLogin(run.user, run.password)
	b.wantDocument("after the password", resp, home, 200)
	b.wantUser(run.user)
	resp = b.navigate(`click the header's "Security" link`, chromedp.Click(chromedp.CSS(`#nav-security`)))
	b.wantDocument("security page", resp, securityURL, 200)
	if on, _ := b.attr(`#method-totp`, "data-enabled"); on != "false" {
		t.Fatalf("security page before enrolment: #method-totp data-enabled=%q, want false", on)
	}
	resp = b.navigate(`click "Set up an authenticator app"`, chromedp.Click(chromedp.CSS(`#link-add-totp`)))
	b.wantDocument("enrolment page", resp, totpURL, 200)
	b.wantLang("enrolment page", run.htmlLang)
	secret := strings.ReplaceAll(b.text(`#totp-secret`), " ", "")
	if len(secret) < 16 {
		t.Fatalf("enrolment page: #totp-secret %q, want a base32 secret", secret)
	}
	if uri, _ := b.attr(`#totp-uri`, "href"); !strings.HasPrefix(uri, "otpauth://totp/") || !strings.Contains(uri, "secret="+secret) {
		t.Errorf("enrolment page: #totp-uri href %q, want an otpauth://totp/ URI with secret=%s", uri, secret)
	}
	// The QR code is an image of this site (the CSP allows no other), and
	// it loaded.
	if w := browserRun(b, "read the QR code's width", chromedp.Evaluate[int](`document.getElementById("totp-qr").naturalWidth`)); w == 0 {
		t.Errorf("enrolment page: #totp-qr did not load (naturalWidth 0)")
	}
	browserSaveArtifact(t, "browser-2fa-enrol-"+run.lang+".png", browserRun(b, "screenshot the enrolment page", chromedp.FullScreenshot(100)))

	enrolCode := browserTOTPCode(t, secret, time.Now())
	b.fill(`#totp-form input[name="code"]`, enrolCode)
	resp = b.navigate("submit the first code", chromedp.Click(chromedp.CSS(`#totp-form button[type="submit"]`)))
	b.wantDocument("recovery codes page", resp, totpURL, 200)
	codes := browserRun(b, "read the recovery codes", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#recovery-codes li code")].map(c => c.textContent.trim())`))
	if len(codes) != 10 || slices.Contains(codes, "") || len(slices.Compact(slices.Sorted(slices.Values(codes)))) != 10 {
		t.Fatalf("recovery codes page shows %q, want 10 different codes", codes)
	}
	if !b.present(`#totp-enabled`) {
		t.Errorf("recovery codes page has no #totp-enabled confirmation")
	}
	resp = b.navigate(`click "I've saved my codes"`, chromedp.Click(chromedp.CSS(`#codes-continue`)))
	b.wantDocument("security page after enrolment", resp, securityURL, 200)
	if on, _ := b.attr(`#method-totp`, "data-enabled"); on != "true" {
		t.Errorf("security page after enrolment: #method-totp data-enabled=%q, want true", on)
	}
	if left, _ := b.attr(`#method-recovery`, "data-left"); left != "10" {
		t.Errorf("security page after enrolment: #method-recovery data-left=%q, want 10", left)
	}
	b.logOut(home)

	// Two steps: the password leads to the code page, holding a pending
	// login and no session.
	b.navigate("open the login form", chromedp.Navigate(loginURL))
	resp = b.submitLogin(run.user, run.password)
	b.wantDocument("after the password, with a second factor", resp, codeURL, 200)
	b.wantLang("code page", run.htmlLang)
	b.wantHeading(run.codeTitle)
	if ck := b.sessionCookie(base); ck != nil {
		t.Fatalf("code page: the browser holds a %s cookie before the second step: %+v", sessionCookie, *ck)
	}
	if !b.holdsCookie(pendingLoginCookie) {
		t.Errorf("code page: the browser holds no %s cookie", pendingLoginCookie)
	}
	if !b.present(`#code-form input[name="code"]`) || !b.present(`#use-recovery`) {
		t.Fatalf("code page: #code-form's code field %v, #use-recovery %v; want both", b.present(`#code-form input[name="code"]`), b.present(`#use-recovery`))
	}
	browserSaveArtifact(t, "browser-2fa-code-"+run.lang+".png", browserRun(b, "screenshot the code page", chromedp.FullScreenshot(100)))

	// A wrong code, then the enrolment's code again: each refused with
	// the page's error, and still no session.
	for _, bad := range []struct{ what, code string }{
		{"a wrong code", browserWrongTOTPCode(t, secret)},
		{"the enrolment's code again", enrolCode},
	} {
		b.fill(`#code-form input[name="code"]`, bad.code)
		resp = b.navigate("submit "+bad.what, chromedp.Click(chromedp.CSS(`#code-form button[type="submit"]`)))
		b.wantDocument(bad.what, resp, codeURL, 400)
		if msg := b.text(`#code-error`); !strings.Contains(msg, run.invalidCode) {
			t.Errorf("%s: #code-error %q, want it to contain %q", bad.what, msg, run.invalidCode)
		}
		if ck := b.sessionCookie(base); ck != nil {
			t.Fatalf("%s: the browser holds a %s cookie: %+v", bad.what, sessionCookie, *ck)
		}
	}

	// The right code: the next step's, since the enrolment used this one's.
	b.fill(`#code-form input[name="code"]`, browserTOTPCode(t, secret, time.Now().Add(30*time.Second)))
	resp = b.navigate("submit the right code", chromedp.Click(chromedp.CSS(`#code-form button[type="submit"]`)))
	b.wantDocument("after the right code", resp, home, 200)
	b.wantUser(run.user)
	ck := b.sessionCookie(base)
	if ck == nil {
		t.Fatalf("after the right code the browser holds no %s cookie", sessionCookie)
	}
	if values, ok := c.sessionValues(t, ck.Value); !ok || fmt.Sprint(values["amr"]) != "[pwd otp]" {
		t.Errorf("after the right code: the session in Redis (found %v) has amr %v, want [pwd otp]", ok, values["amr"])
	}
	if b.holdsCookie(pendingLoginCookie) {
		t.Errorf("after the right code the browser still holds its %s cookie", pendingLoginCookie)
	}
	b.logOut(home)

	// A recovery code instead of the app's.
	b.navigate("open the login form", chromedp.Navigate(loginURL))
	resp = b.submitLogin(run.user, run.password)
	b.wantDocument("after the password, for a recovery code", resp, codeURL, 200)
	resp = b.navigate(`click "use a recovery code"`, chromedp.Click(chromedp.CSS(`#use-recovery`)))
	b.wantDocument("recovery code page", resp, codeURL+"?recovery=1", 200)
	b.wantLang("recovery code page", run.htmlLang)
	b.fill(`#code-form input[name="code"]`, codes[3])
	resp = b.navigate("submit a recovery code", chromedp.Click(chromedp.CSS(`#code-form button[type="submit"]`)))
	b.wantDocument("after a recovery code", resp, home, 200)
	b.wantUser(run.user)
	b.wantFlash("after a recovery code", "recovery_used", "9")
	if f := b.flash(); f == nil || !strings.Contains(f.Text, run.recoveryLeft) {
		t.Errorf("after a recovery code: flash %+v, want it to contain %q", f, run.recoveryLeft)
	}
	resp = b.navigate(`click the header's "Security" link`, chromedp.Click(chromedp.CSS(`#nav-security`)))
	b.wantDocument("security page after a recovery code", resp, securityURL, 200)
	if left, _ := b.attr(`#method-recovery`, "data-left"); left != "9" {
		t.Errorf("security page after a recovery code: #method-recovery data-left=%q, want 9", left)
	}
	b.logOut(home)
}

// browserTOTPCode is the code an authenticator app shows for secret at t.
func browserTOTPCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := auth.TOTPCode(secret, at)
	if err != nil {
		t.Fatalf("TOTP code of the page's secret %q: %v", secret, err)
	}
	return code
}

// browserWrongTOTPCode is a six-digit code that is none of the codes of
// secret a little before or after now.
func browserWrongTOTPCode(t *testing.T, secret string) string {
	t.Helper()
	var near []string
	for d := -2; d <= 3; d++ {
		near = append(near, browserTOTPCode(t, secret, time.Now().Add(time.Duration(d)*30*time.Second)))
	}
	for n := 0; ; n++ {
		if code := fmt.Sprintf("%06d", n*111111%1000000); !slices.Contains(near, code) {
			return code
		}
	}
}

// submitLogin types user and password into the login form of the page
// and submits it.
func (b *browserTab) submitLogin(user, password string) *network.Response {
	b.t.Helper()
	b.fill(`input[name="username"]`, user)
	b.fill(`input[name="password"]`, password)
	return b.navigate("submit the login form", chromedp.Click(chromedp.CSS(`form[action="/login/"] button[type="submit"]`)))
}

// logOut clicks the header's "Sign out" and checks that it lands on home
// without a session cookie.
func (b *browserTab) logOut(home string) {
	b.t.Helper()
	resp := b.navigate(`click the header's "Sign out"`, chromedp.Click(chromedp.CSS(`#nav-logout`)))
	b.wantDocument("after logout", resp, home, 200)
	if ck := b.sessionCookie(strings.TrimSuffix(home, "/")); ck != nil {
		b.t.Fatalf("after logout the browser still holds %s: %+v", sessionCookie, *ck)
	}
}

// fill replaces the value of the input that matches the CSS selector sel
// by typing value.
func (b *browserTab) fill(sel, value string) {
	b.t.Helper()
	b.blank(sel)
	b.do("fill "+sel, chromedp.SendKeys(chromedp.CSS(sel), value))
}

// text returns the trimmed text of the first element that matches the
// CSS selector sel; it fails the test at once without one.
func (b *browserTab) text(sel string) string {
	b.t.Helper()
	v := browserRun(b, "read "+sel, chromedp.Evaluate[*string](fmt.Sprintf(`document.querySelector(%q)?.textContent ?? null`, sel)))
	if v == nil {
		b.t.Fatalf("the page has no %s", sel)
	}
	return strings.TrimSpace(*v)
}

// wantLang checks the page's <html lang>.
func (b *browserTab) wantLang(what, want string) {
	b.t.Helper()
	if got := b.htmlLang(); got != want {
		b.t.Errorf("%s: <html lang=%q>, want %q", what, got, want)
	}
}

// wantUser checks that the header names user as logged in.
func (b *browserTab) wantUser(user string) {
	b.t.Helper()
	if u, ok := b.attr(`#header-user`, "data-user"); u != user {
		b.t.Fatalf("the header names %q (present %v), want %q logged in", u, ok, user)
	}
}

// holdsCookie reports whether the browser holds a cookie named name, for
// any site.
func (b *browserTab) holdsCookie(name string) bool {
	b.t.Helper()
	return slices.ContainsFunc(b.allCookies(), func(c *network.Cookie) bool { return c.Name == name })
}
