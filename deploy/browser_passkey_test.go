package deploy

// Passkeys in a real browser: headless Chromium with a virtual
// authenticator of the DevTools WebAuthn domain (CTAP2, internal
// transport, resident keys, user verification), driving the service's
// pages and its /static/passkeys.js as a person would. Pages are loaded
// from http://localhost:PORT: an IP address is no WebAuthn relying party,
// and localhost is a secure context without TLS.

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"

	"loginsvc/internal/testkit"
)

const (
	// passkeyActionTimeout bounds one step that runs a ceremony (the
	// options fetched, the authenticator asked, the form posted): a
	// ceremony that fails in the page never navigates, and must fail the
	// test now rather than at browserTimeout.
	passkeyActionTimeout = 30 * time.Second
	// ceremonyCookie is the cookie that binds a ceremony to the browser
	// (internal/web, without COOKIE_SECURE).
	ceremonyCookie = "passkey_ceremony"
	// passkeyRefused is part of the English message of a refused passkey.
	passkeyRefused = "passkey wasn't accepted"
)

// requireChromium fails the test (never skips it) without the browser.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(browserExecPath); err != nil {
		t.Fatalf("chromium not found at %s (%v): run ./scripts/test.sh, which installs it", browserExecPath, err)
	}
}

// passkeyTab is a browser tab with a virtual authenticator: a platform
// authenticator (transport internal) that keeps discoverable credentials
// and verifies the user, with presence simulated.
type passkeyTab struct {
	*browserTab
	authenticator webauthn.AuthenticatorID
	// noAutofill is the script that hides conditional mediation from
	// pages, "" while pages see it.
	noAutofill page.ScriptIdentifier
}

// noAutofillJS makes the browser say it cannot offer passkeys in the
// name field's autofill. The virtual authenticator answers a conditional
// request at once, as a person picking the offered passkey would: the
// login page would sign in as it loads, before any button is clicked.
const noAutofillJS = `if (window.PublicKeyCredential) {
	PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);
}`

// setAutofill lets the next pages offer passkeys in the name field's
// autofill (conditional mediation), or not.
func (b *passkeyTab) setAutofill(on bool) {
	b.t.Helper()
	switch {
	case on && b.noAutofill != "":
		if _, err := chromedp.Call(b.ctx, page.RemoveScriptToEvaluateOnNewDocument, page.RemoveScriptToEvaluateOnNewDocumentParams{Identifier: b.noAutofill}); err != nil {
			b.t.Fatalf("Page.removeScriptToEvaluateOnNewDocument: %v", err)
		}
		b.noAutofill = ""
	case !on && b.noAutofill == "":
		res, err := chromedp.Call(b.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: noAutofillJS})
		if err != nil {
			b.t.Fatalf("Page.addScriptToEvaluateOnNewDocument: %v", err)
		}
		b.noAutofill = res.Identifier
	}
}

// newPasskeyTab starts a browser and adds the authenticator to its tab:
// the WebAuthn domain and its authenticators are per tab, so both are
// called on the page's target.
func newPasskeyTab(t *testing.T) *passkeyTab {
	t.Helper()
	requireChromium(t)
	b := newBrowserTab(t)
	if _, err := chromedp.Call(b.ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	res, err := chromedp.Call(b.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:            webauthn.AuthenticatorProtocolCtap2,
			Transport:           webauthn.AuthenticatorTransportInternal,
			HasResidentKey:      true,
			HasUserVerification: true,
			IsUserVerified:      true,
			// cdproto sends this bool even when false, which overrides
			// Chrome's default of true: without it create() hangs.
			AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	pb := &passkeyTab{browserTab: b, authenticator: res.AuthenticatorID}
	// The passkey buttons are what the tests click; the autofill is
	// checked on its own.
	pb.setAutofill(false)
	return pb
}

// credentials returns the virtual authenticator's credentials.
func (b *passkeyTab) credentials() []*webauthn.Credential {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: b.authenticator})
	if err != nil {
		b.t.Fatalf("WebAuthn.getCredentials: %v", err)
	}
	return res.Credentials
}

// oneCredential returns the authenticator's only credential.
func (b *passkeyTab) oneCredential() *webauthn.Credential {
	b.t.Helper()
	creds := b.credentials()
	if len(creds) != 1 {
		b.t.Fatalf("the virtual authenticator holds %d credentials, want 1", len(creds))
	}
	return creds[0]
}

// setUserVerified makes the authenticator's user verification succeed or
// fail.
func (b *passkeyTab) setUserVerified(ok bool) {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, webauthn.SetUserVerified, webauthn.SetUserVerifiedParams{AuthenticatorID: b.authenticator, IsUserVerified: ok}); err != nil {
		b.t.Fatalf("WebAuthn.setUserVerified(%v): %v", ok, err)
	}
}

// passkeyErrorHook records what passkeys.js logs when a ceremony fails
// (console.warn('passkey:', err)), for the failure message. Runtime.evaluate
// is not page script: the CSP does not stop it.
const passkeyErrorHook = `(() => {
	if (window.__passkeyHooked) { return; }
	window.__passkeyHooked = true;
	window.__passkeyWarning = "";
	const warn = console.warn;
	console.warn = (...args) => { window.__passkeyWarning = args.map(String).join(" "); warn.apply(console, args); };
})()`

// ceremony runs an action that starts a passkey ceremony in the page (a
// click on a passkey button) and returns the response of the page the
// form's post loads. It fails within passkeyActionTimeout, saying what
// the page showed, when no page loads.
func (b *passkeyTab) ceremony(what string, a chromedp.Action[chromedp.Void]) *network.Response {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[any](passkeyErrorHook, chromedp.EvalIgnoreExceptions)); err != nil {
		b.t.Fatalf("%s: hook console.warn: %v", what, err)
	}
	// Derived from the tab's context, after the browser started: its
	// timeout ends this action, not the browser.
	ctx, cancel := context.WithTimeout(b.ctx, passkeyActionTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, a)
	if err != nil || resp == nil {
		shown := browserRun(b.browserTab, "read the passkey error", chromedp.Evaluate[bool](
			`[...document.querySelectorAll("[data-passkey-error]")].some(e => !e.hidden)`))
		warning := browserRun(b.browserTab, "read the script's warning", chromedp.Evaluate[string](`window.__passkeyWarning ?? ""`))
		b.t.Fatalf("%s: no page loaded (%v); the page's passkey error shown %v, the script warned %q", what, err, shown, warning)
	}
	return resp
}

// wantPasskeyError waits (bounded) until the page shows its passkey
// error: the ceremony failed in the browser and nothing was posted.
func (b *passkeyTab) wantPasskeyError(what string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, passkeyActionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#passkey-signin [data-passkey-error]`))); err != nil {
		b.t.Fatalf("%s: the page shows no passkey error: %v", what, err)
	}
	return browserRun(b.browserTab, "read the script's warning", chromedp.Evaluate[string](`window.__passkeyWarning ?? ""`))
}

// localhostURL is raw (http://127.0.0.1:PORT...) with localhost as its
// host.
func localhostURL(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() != "127.0.0.1" {
		t.Fatalf("localhostURL(%q): want an http://127.0.0.1:PORT URL (%v)", raw, err)
	}
	u.Host = "localhost:" + u.Port()
	return strings.TrimSuffix(u.String(), "/")
}

// passkeyRow is one passkey of the security page's list.
type passkeyRow struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Synced   string `json:"synced"`
	LastUsed string `json:"lastUsed"`
	Text     string `json:"text"`
}

// passkeyRows reads the security page's passkeys.
func (b *passkeyTab) passkeyRows() []passkeyRow {
	b.t.Helper()
	return browserRun(b.browserTab, "read the passkeys", chromedp.Evaluate[[]passkeyRow](`[...document.querySelectorAll("#passkeys li[data-passkey-id]")].map(li => ({
	id: li.dataset.passkeyId,
	name: (li.querySelector(".device")?.textContent ?? "").trim(),
	synced: li.dataset.synced ?? "",
	lastUsed: li.dataset.lastUsed ?? "",
	text: li.textContent.replace(/\s+/g, " ").trim(),
}))`))
}

// registerPasskey adds a passkey named name (replacing the form's
// default, which it returns) on base's security page, which the logged-in
// browser may use now (a recent login). It returns the recovery codes the
// page shows, none if the user had a second factor already.
func (b *passkeyTab) registerPasskey(base, name string) (defaultName string, codes []string) {
	b.t.Helper()
	resp := b.navigate("open the security page", chromedp.Navigate(base+"/security/"))
	b.wantDocument("security page", resp, base+"/security/", 200)
	if !b.present(`#passkey-add-button`) {
		b.t.Fatalf("security page: no #passkey-add-button (#passkey-add-reauth %v, #passkeys-unavailable %v)",
			b.present(`#passkey-add-reauth`), b.present(`#passkeys-unavailable`))
	}
	defaultName = browserRun(b.browserTab, "read the default name", chromedp.Evaluate[string](`document.querySelector('#passkey-add input[name="name"]').value`))
	b.fill(`#passkey-add input[name="name"]`, name)
	resp = b.ceremony("add a passkey", chromedp.Click(chromedp.CSS(`#passkey-add-button`)))
	if resp.Status != 200 || !b.present(`#passkey-added`) {
		b.t.Fatalf("after adding a passkey: got %s with status %d, #passkey-added %v; want the codes page (flash %+v)",
			resp.URL, resp.Status, b.present(`#passkey-added`), b.flash())
	}
	codes = browserRun(b.browserTab, "read the recovery codes", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#recovery-codes li code")].map(c => c.textContent.trim())`))
	return defaultName, codes
}

// passkeySignIn opens base's login page and clicks "Sign in with a
// passkey"; it returns the response of the page the post loads.
func (b *passkeyTab) passkeySignIn(base string) *network.Response {
	b.t.Helper()
	resp := b.navigate("open the login page", chromedp.Navigate(base+"/login/"))
	b.wantDocument("login page", resp, base+"/login/", 200)
	return b.ceremony(`click "Sign in with a passkey"`, chromedp.Click(chromedp.CSS(`#passkey-signin-button`)))
}

// passwordLogin opens base's login page and logs in with the password.
func (b *passkeyTab) passwordLogin(base, user, password string) *network.Response {
	b.t.Helper()
	resp := b.navigate("open the login page", chromedp.Navigate(base+"/login/"))
	b.wantDocument("login page", resp, base+"/login/", 200)
	return b.submitLogin(user, password)
}

// sessionAMR returns how the browser's session (in Redis) says its user
// authenticated.
func (b *passkeyTab) sessionAMR(c *cluster, base string) []string {
	b.t.Helper()
	ck := b.sessionCookie(base)
	if ck == nil {
		b.t.Fatalf("the browser holds no %s cookie for %s", sessionCookie, base)
	}
	values, ok := c.sessionValues(b.t, ck.Value)
	if !ok {
		b.t.Fatalf("the browser's session is not in Redis")
	}
	raw, _ := values["amr"].([]any)
	amr := make([]string, 0, len(raw))
	for _, m := range raw {
		s, _ := m.(string)
		amr = append(amr, s)
	}
	return amr
}

// storedPasskeys returns user's passkey records from Redis (the
// documented layout: user:{<name>}:passkeys, credential id -> JSON).
func storedPasskeys(t *testing.T, c *cluster, user string) map[string]map[string]any {
	t.Helper()
	raw, err := c.Redis.Client(t).HGetAll(context.Background(), "user:{"+user+"}:passkeys").Result()
	if err != nil {
		t.Fatalf("HGETALL user:{%s}:passkeys: %v", user, err)
	}
	out := make(map[string]map[string]any, len(raw))
	for id, v := range raw {
		var rec map[string]any
		if err := json.Unmarshal([]byte(v), &rec); err != nil {
			t.Fatalf("passkey %s of %s: %v\n%s", id, user, err, v)
		}
		out[id] = rec
	}
	return out
}

// getAssertionJS fetches a sign-in's options from the page's own origin,
// asks the authenticator, and returns what the page script would post
// (credential.toJSON()) and which replica made the options, without
// posting anything.
const getAssertionJS = `(async () => {
	const r = await fetch("/login/passkey/options", {method: "POST", credentials: "same-origin", headers: {"Accept": "application/json"}});
	if (!r.ok) { throw new Error("options: HTTP " + r.status); }
	const opts = await r.json();
	const cred = await navigator.credentials.get({publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(opts.publicKey)});
	return {credential: JSON.stringify(cred.toJSON()), servedBy: r.headers.get("X-Served-By") ?? ""};
})()`

// assertion is what getAssertionJS returns.
type assertion struct {
	Credential string `json:"credential"`
	ServedBy   string `json:"servedBy"`
}

// getAssertion runs getAssertionJS in the page (bounded).
func (b *passkeyTab) getAssertion(what string) assertion {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, passkeyActionTimeout)
	defer cancel()
	a, err := chromedp.Run(ctx, chromedp.Evaluate[assertion](getAssertionJS, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	if a.Credential == "" {
		b.t.Fatalf("%s: no credential", what)
	}
	return a
}

// cookieValue returns the value of the browser's cookie name for base.
func (b *passkeyTab) cookieValue(base, name string) string {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/"}})
	if err != nil {
		b.t.Fatalf("Network.getCookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return c.Value
		}
	}
	b.t.Fatalf("the browser holds no %s cookie for %s", name, base)
	return ""
}

// passkeyRun is one language's run of TestBrowserPasskeyRegisterAndSignIn.
type passkeyRun struct {
	lang, user, password, htmlLang string
	// term is what the pages call a passkey; name and rename the names
	// given to it; lastUsed the list's label.
	term, name, rename, lastUsed string
}

// TestBrowserPasskeyRegisterAndSignIn: in English and in Chinese (by the
// page's language switch), a user logs in with the password, adds a
// passkey on the security page (the name field's default comes from the
// device; the test changes it), sees the recovery codes (the first second
// factor), and the list shows it, renamed too. Logged out, "Sign in with a
// passkey" logs in without a password: the session's amr is the device's
// methods, ["hwk", "user"] for the virtual platform authenticator, which
// is not backup eligible (checked in the authenticator and in the record
// in Redis); the security page then shows when it was last used.
func TestBrowserPasskeyRegisterAndSignIn(t *testing.T) {
	requireChromium(t)
	start := time.Now()
	c := startCluster(t, 2)
	const zhUser, zhPassword = "lihua", "passkey-browser-only-3Hw7-not-a-secret"
	c.addUser(t, zhUser, zhPassword)
	base := localhostURL(t, c.LB)
	t.Logf("cluster of %d ready in %v; pages from %s", len(c.Replicas), time.Since(start).Round(time.Millisecond), base)

	for _, run := range []passkeyRun{
		{lang: "en", user: testUser, password: testPassword, htmlLang: "en",
			term: "passkey", name: "Test key", rename: "Work laptop", lastUsed: "Last used"},
		{lang: "zh", user: zhUser, password: zhPassword, htmlLang: "zh-Hans",
			term: "通行密钥", name: "测试密钥", rename: "工作电脑", lastUsed: "上次使用"},
	} {
		t.Run(run.lang, func(t *testing.T) {
			began := time.Now()
			passkeyRegisterAndSignIn(t, c, base, run)
			t.Logf("%s: passkey added and signed in with in %v", run.lang, time.Since(began).Round(time.Millisecond))
		})
	}
}

func passkeyRegisterAndSignIn(t *testing.T, c *cluster, base string, run passkeyRun) {
	home := base + "/"
	b := newPasskeyTab(t)
	resp := b.navigate("open the login page", chromedp.Navigate(base+"/login/"))
	b.wantDocument("login page", resp, base+"/login/", 200)
	if run.lang != "en" {
		resp = b.navigate("switch the language to "+run.lang, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#lang-switch a[data-lang=%q]`, run.lang))))
		b.wantDocument("login page in "+run.lang, resp, base+"/login/", 200)
	}
	b.wantLang("login page", run.htmlLang)
	if label := b.text(`#passkey-signin-button`); !strings.Contains(strings.ToLower(label), run.term) {
		t.Errorf("login page: #passkey-signin-button reads %q, want it to name a %q", label, run.term)
	}
	resp = b.submitLogin(run.user, run.password)
	b.wantDocument("after the password", resp, home, 200)
	b.wantUser(run.user)

	defaultName, codes := b.registerPasskey(base, run.name)
	if defaultName == "" || defaultName == "Passkey" {
		t.Errorf("security page: the new passkey's name field holds %q, want a default from the device", defaultName)
	}
	t.Logf("default name %q", defaultName)
	if len(codes) != 10 || slices.Contains(codes, "") {
		t.Errorf("after the first passkey the page shows recovery codes %q, want 10", codes)
	}
	b.wantLang("recovery codes page", run.htmlLang)
	resp = b.navigate(`click "I've saved my codes"`, chromedp.Click(chromedp.CSS(`#codes-continue`)))
	b.wantDocument("security page after adding", resp, base+"/security/", 200)
	if body := b.text(`#method-passkeys`); !strings.Contains(strings.ToLower(body), run.term) {
		t.Errorf("security page: #method-passkeys reads %q, want it to contain %q", body, run.term)
	}
	rows := b.passkeyRows()
	if len(rows) != 1 || rows[0].Name != run.name || rows[0].LastUsed != "" {
		t.Fatalf("security page lists %+v, want one passkey %q, not used yet", rows, run.name)
	}

	// What the authenticator made, and what Redis keeps of it.
	cred := b.oneCredential()
	if !cred.IsResidentCredential || cred.RpID != "localhost" || cred.BackupEligibility || cred.BackupState {
		t.Errorf("the authenticator's credential: resident %v, RP ID %q, backup eligible %v, backed up %v; want a resident, device-bound credential of localhost",
			cred.IsResidentCredential, cred.RpID, cred.BackupEligibility, cred.BackupState)
	}
	recs := storedPasskeys(t, c, run.user)
	rec, ok := recs[rows[0].ID]
	if len(recs) != 1 || !ok {
		t.Fatalf("Redis holds passkeys %v of %s, want the one the page lists (%s)", slices.Collect(maps.Keys(recs)), run.user, rows[0].ID)
	}
	if rec["backup_eligible"] != false || rec["rp_id"] != "localhost" || rec["name"] != run.name {
		t.Errorf("the passkey in Redis: backup_eligible %v, rp_id %v, name %v; want false, localhost, %q", rec["backup_eligible"], rec["rp_id"], rec["name"], run.name)
	}
	if rows[0].Synced != "false" {
		t.Errorf("security page: the passkey's data-synced=%q, want false", rows[0].Synced)
	}

	// Rename it.
	b.fill(`#passkeys li[data-passkey-id] form.rename input[name="name"]`, run.rename)
	resp = b.navigate("rename the passkey", chromedp.Click(chromedp.CSS(`#passkeys li[data-passkey-id] form.rename button[type="submit"]`)))
	b.wantDocument("after the rename", resp, base+"/security/", 200)
	if rows := b.passkeyRows(); len(rows) != 1 || rows[0].Name != run.rename {
		t.Errorf("after the rename the page lists %+v, want one passkey %q", rows, run.rename)
	}
	b.logOut(home)

	// The passkey alone: no name, no password typed.
	signedInAt := time.Now()
	resp = b.passkeySignIn(base)
	b.wantDocument("after the passkey", resp, home, 200)
	b.wantUser(run.user)
	if amr := b.sessionAMR(c, base); !slices.Equal(amr, []string{"hwk", "user"}) {
		t.Errorf("after the passkey sign-in the session's amr is %q, want [hwk user] (a device-bound key, user verified)", amr)
	}
	if n := b.oneCredential().SignCount; n < 2 {
		t.Errorf("after a registration and a sign-in the authenticator's sign count is %v, want at least 2", n)
	}
	resp = b.navigate(`click the header's "Security" link`, chromedp.Click(chromedp.CSS(`#nav-security`)))
	b.wantDocument("security page after the passkey", resp, base+"/security/", 200)
	rows = b.passkeyRows()
	if len(rows) != 1 {
		t.Fatalf("security page after the passkey lists %+v, want one passkey", rows)
	}
	used, err := time.Parse(time.RFC3339, rows[0].LastUsed)
	if err != nil || used.Before(signedInAt.Add(-2*time.Second)) || used.After(time.Now().Add(2*time.Second)) {
		t.Errorf("security page after the passkey: data-last-used=%q (%v), want the sign-in's time (%v)", rows[0].LastUsed, err, signedInAt)
	}
	if !strings.Contains(rows[0].Text, run.lastUsed) {
		t.Errorf("security page after the passkey: the row reads %q, want it to say %q", rows[0].Text, run.lastUsed)
	}
	browserSaveArtifact(t, "browser-passkeys-"+run.lang+".png", browserRun(b.browserTab, "screenshot the security page", chromedp.FullScreenshot(100)))
	b.logOut(home)

	// Conditional UI: the name field's autofill offers the passkey, which
	// the virtual authenticator picks at once; the login page signs in
	// with it without a click.
	b.setAutofill(true)
	resp = b.navigate("open the login page with passkeys in the autofill", chromedp.Navigate(base+"/login/"))
	b.wantDocument("login page with the autofill", resp, base+"/login/", 200)
	// The autofill's post may have loaded home already, or be on its
	// way: ask until home has loaded (a navigation in between makes an
	// evaluation fail: ask again).
	loaded := fmt.Sprintf(`location.href === %q && document.readyState === "complete" && document.querySelector("#header-user") !== null`, home)
	for deadline := time.Now().Add(passkeyActionTimeout); ; time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](loaded))
		cancel()
		if err == nil && ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the login page with passkeys in the autofill did not sign in within %v (last: %v, %v)", passkeyActionTimeout, ok, err)
		}
	}
	b.wantUser(run.user)
	if amr := b.sessionAMR(c, base); !slices.Equal(amr, []string{"hwk", "user"}) {
		t.Errorf("after the autofill's passkey the session's amr is %q, want [hwk user]", amr)
	}
	b.logOut(home)
}

// TestBrowserPasskeyOnAnyReplica: a sign-in's options are fetched from
// replica A (the page on A's own localhost port), and the answer is
// posted in replica B's login form (B's page): B finishes the ceremony A
// began, and logs the user in.
func TestBrowserPasskeyOnAnyReplica(t *testing.T) {
	requireChromium(t)
	c := startCluster(t, 2)
	a, bURL := localhostURL(t, c.Replicas[0].URL), localhostURL(t, c.Replicas[1].URL)
	b := newPasskeyTab(t)
	resp := b.passwordLogin(a, testUser, testPassword)
	b.wantDocument("after the password on A", resp, a+"/", 200)
	b.registerPasskey(a, "Replica test")
	b.logOut(a + "/")

	b.navigate("open A's home page", chromedp.Navigate(a+"/"))
	got := b.getAssertion("fetch A's options and ask the authenticator")
	if got.ServedBy != c.Replicas[0].ID {
		t.Fatalf("the options came from %q, want %s", got.ServedBy, c.Replicas[0].ID)
	}
	resp = b.navigate("open B's login page", chromedp.Navigate(bURL+"/login/"))
	b.wantDocument("B's login page", resp, bURL+"/login/", 200)
	b.do("put A's answer into B's form", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`document.querySelector('#passkey-signin input[name="credential"]').value = %q`, got.Credential)))
	resp = b.ceremony("post the answer to B", chromedp.Evaluate[chromedp.Void](`document.getElementById("passkey-signin").submit()`))
	b.wantDocument("after B finished A's ceremony", resp, bURL+"/", 200)
	if by := browserServedBy(resp); by != c.Replicas[1].ID {
		t.Errorf("the sign-in was answered by %q, want %s", by, c.Replicas[1].ID)
	}
	b.wantUser(testUser)
	if amr := b.sessionAMR(c, bURL); !slices.Equal(amr, []string{"hwk", "user"}) {
		t.Errorf("the session's amr is %q, want [hwk user]", amr)
	}
}

// TestBrowserPasskeyAsSecondStep: a user with a password and a passkey,
// and no authenticator app: the password leads to the code page, which
// offers the passkey; the passkey logs in on two factors, the password
// and the device ("pwd", "hwk", "user").
func TestBrowserPasskeyAsSecondStep(t *testing.T) {
	requireChromium(t)
	c := startCluster(t, 2)
	base := localhostURL(t, c.LB)
	b := newPasskeyTab(t)
	b.passwordLogin(base, testUser, testPassword)
	b.registerPasskey(base, "Second step")
	b.logOut(base + "/")

	resp := b.passwordLogin(base, testUser, testPassword)
	b.wantDocument("after the password", resp, base+"/login/code/", 200)
	if ck := b.sessionCookie(base); ck != nil {
		t.Fatalf("code page: the browser holds a session cookie before the second step")
	}
	if b.present(`#code-form input[name="code"]`) {
		t.Errorf("code page of a user without an authenticator app asks for its code")
	}
	resp = b.ceremony(`click "Use your passkey"`, chromedp.Click(chromedp.CSS(`#passkey-button`)))
	b.wantDocument("after the passkey", resp, base+"/", 200)
	b.wantUser(testUser)
	amr := b.sessionAMR(c, base)
	if !slices.Equal(amr, []string{"pwd", "hwk", "user"}) {
		t.Errorf("after the password and the passkey the session's amr is %q, want [pwd hwk user]", amr)
	}
	if b.holdsCookie(pendingLoginCookie) {
		t.Errorf("after the second step the browser still holds its %s cookie", pendingLoginCookie)
	}
}

// TestBrowserPasskeyRemovedIsRefused: a passkey removed on the security
// page (right after a login: a recent authentication) no longer signs in,
// although the authenticator still holds it: the login page says the
// passkey was not accepted (400), and no session starts.
func TestBrowserPasskeyRemovedIsRefused(t *testing.T) {
	requireChromium(t)
	c := startCluster(t, 2)
	base := localhostURL(t, c.LB)
	b := newPasskeyTab(t)
	b.passwordLogin(base, testUser, testPassword)
	b.registerPasskey(base, "To remove")
	resp := b.navigate("open the security page", chromedp.Navigate(base+"/security/"))
	b.wantDocument("security page", resp, base+"/security/", 200)
	resp = b.navigate("remove the passkey", chromedp.Click(chromedp.CSS(`#passkeys li[data-passkey-id] form.remove-passkey button[type="submit"]`)))
	b.wantDocument("after the removal", resp, base+"/security/", 200)
	b.wantFlash("after the removal", "passkey_removed", "0")
	if rows := b.passkeyRows(); len(rows) != 0 {
		t.Errorf("after the removal the page lists %+v, want none", rows)
	}
	if recs := storedPasskeys(t, c, testUser); len(recs) != 0 {
		t.Errorf("after the removal Redis holds %d passkeys, want none", len(recs))
	}
	b.logOut(base + "/")

	if len(b.credentials()) != 1 {
		t.Fatalf("the authenticator should still hold the removed passkey")
	}
	resp = b.passkeySignIn(base)
	b.wantDocument("the removed passkey", resp, base+"/login/passkey/", 400)
	if msg := b.text(`#login-error`); !strings.Contains(msg, passkeyRefused) {
		t.Errorf("the removed passkey: #login-error %q, want it to say %q", msg, passkeyRefused)
	}
	if ck := b.sessionCookie(base); ck != nil {
		t.Errorf("the removed passkey: the browser holds a session cookie")
	}
}

// passkeyPost posts a sign-in answer (credential) with the browser's
// ceremony token to base from a Go client, and returns the status and
// the session token it set ("" for none).
func passkeyPost(t *testing.T, base, ceremony, credential string) (int, string, string) {
	t.Helper()
	client := testkit.Client(t, fixedJar{{Name: ceremonyCookie, Value: ceremony}})
	resp, body := fetchPage(t, client, http.MethodPost, base+"/login/passkey/", strings.NewReader(url.Values{"credential": {credential}}.Encode()),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	token := ""
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie && ck.Value != "" {
			token = ck.Value
		}
	}
	return resp.StatusCode, token, body
}

// TestPasskeyReplayedAssertionRefused: an assertion the browser made (the
// page's own options and authenticator, not posted by the page) is
// accepted once, on replica A, and refused when posted again, on A or on
// B: the ceremony is single use on every replica. Then the authenticator's
// credential is put back with an old signature counter: its next
// assertion, on a fresh ceremony, is refused as a clone and logged.
func TestPasskeyReplayedAssertionRefused(t *testing.T) {
	requireChromium(t)
	c := startCluster(t, 2)
	base := localhostURL(t, c.LB)
	b := newPasskeyTab(t)
	b.passwordLogin(base, testUser, testPassword)
	b.registerPasskey(base, "Replay")
	b.logOut(base + "/")

	b.navigate("open the home page", chromedp.Navigate(base+"/"))
	got := b.getAssertion("make an assertion")
	ceremony := b.cookieValue(base, ceremonyCookie)
	a, other := localhostURL(t, c.Replicas[0].URL), localhostURL(t, c.Replicas[1].URL)
	if status, token, body := passkeyPost(t, a, ceremony, got.Credential); status != http.StatusSeeOther || token == "" {
		t.Fatalf("the assertion, first posted: status %d, session %v; want 303 and a session\n%s", status, token != "", firstLine(body))
	}
	for _, to := range []string{a, other} {
		status, token, body := passkeyPost(t, to, ceremony, got.Credential)
		if status != http.StatusBadRequest || token != "" || !strings.Contains(html.UnescapeString(body), passkeyRefused) {
			t.Errorf("the assertion replayed to %s: status %d, session %v; want 400, none, and %q\n%s", to, status, token != "", passkeyRefused, firstLine(body))
		}
	}

	// An old counter: the same key, as a copy made before the last use
	// would hold it.
	cred := b.oneCredential()
	stored := storedPasskeys(t, c, testUser)
	var count float64
	for _, rec := range stored {
		count, _ = rec["sign_count"].(float64)
	}
	if count < 2 || cred.SignCount != count {
		t.Fatalf("sign count: the authenticator's %v, Redis's %v; want the same, at least 2", cred.SignCount, count)
	}
	// WebAuthn.setCredentialProperties, not removeCredential and
	// addCredential: cdproto sends addCredential's CMTG flag even when
	// false, which this authenticator refuses.
	if _, err := chromedp.Call(b.ctx, webauthn.SetCredentialProperties, webauthn.SetCredentialPropertiesParams{
		AuthenticatorID: b.authenticator, CredentialID: cred.CredentialID, SignCount: new(float64(0)),
	}); err != nil {
		t.Fatalf("WebAuthn.setCredentialProperties(signCount 0): %v", err)
	}
	resp := b.passkeySignIn(base)
	b.wantDocument("an assertion with an old counter", resp, base+"/login/passkey/", 400)
	if msg := b.text(`#login-error`); !strings.Contains(msg, passkeyRefused) {
		t.Errorf("an old counter: #login-error %q, want it to say %q", msg, passkeyRefused)
	}
	if ck := b.sessionCookie(base); ck != nil {
		t.Errorf("an old counter: the browser holds a session cookie")
	}
	// The replicas' output reaches their log files through a pipe: ask
	// until it has.
	testkit.Eventually(t, "a replica logs the counter that went backwards", harnessReadyTimeout, func() (bool, string) {
		for _, r := range c.Replicas {
			if strings.Contains(r.Log(t), "signature counter went backwards") {
				return true, ""
			}
		}
		return false, "no replica's log says so"
	})
}

// TestBrowserPasskeyWithoutUserVerificationRefused: user verification is
// required. An authenticator that fails it gives the page nothing to post
// (the page shows its passkey error); one whose answer says the user was
// not verified (the UV flag cleared) is refused by the server (400). No
// session starts either way.
func TestBrowserPasskeyWithoutUserVerificationRefused(t *testing.T) {
	requireChromium(t)
	c := startCluster(t, 2)
	base := localhostURL(t, c.LB)
	b := newPasskeyTab(t)
	b.passwordLogin(base, testUser, testPassword)
	b.registerPasskey(base, "No UV")
	b.logOut(base + "/")

	b.setUserVerified(false)
	resp := b.navigate("open the login page", chromedp.Navigate(base+"/login/"))
	b.wantDocument("login page", resp, base+"/login/", 200)
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[any](passkeyErrorHook, chromedp.EvalIgnoreExceptions)); err != nil {
		t.Fatal(err)
	}
	b.do(`click "Sign in with a passkey"`, chromedp.Click(chromedp.CSS(`#passkey-signin-button`)))
	warning := b.wantPasskeyError("an authenticator that cannot verify the user")
	t.Logf("without user verification the page's script warned %q", warning)
	if ck := b.sessionCookie(base); ck != nil {
		t.Errorf("without user verification the browser holds a session cookie")
	}

	b.setUserVerified(true)
	if _, err := chromedp.Call(b.ctx, webauthn.SetResponseOverrideBits, webauthn.SetResponseOverrideBitsParams{AuthenticatorID: b.authenticator, IsBadUV: new(true)}); err != nil {
		t.Fatalf("WebAuthn.setResponseOverrideBits: %v", err)
	}
	resp = b.passkeySignIn(base)
	b.wantDocument("an answer without the UV flag", resp, base+"/login/passkey/", 400)
	if msg := b.text(`#login-error`); !strings.Contains(msg, passkeyRefused) {
		t.Errorf("an answer without the UV flag: #login-error %q, want it to say %q", msg, passkeyRefused)
	}
	if ck := b.sessionCookie(base); ck != nil {
		t.Errorf("an answer without the UV flag: the browser holds a session cookie")
	}
}

// TestPasskeyStepUpThroughNginx runs docs/forward-auth.md's nginx snippet in front
// of one app on two localhost ports, the second in AUTH_TWO_FACTOR_HOSTS.
// The user logs in with the password (one factor) and then adds a passkey
// on the security page, through nginx: adding a factor leaves the session
// on what it proved, the password, so no stored session is rewritten to
// get a one-factor session of a user with a passkey. The two-factor app
// sends the browser to the step-up page, whose passkey button brings it
// back to the app, which is now told "pwd hwk user".
func TestPasskeyStepUpThroughNginx(t *testing.T) {
	requireChromium(t)
	s := startForwardAuthSite(t, nginxGateway, withTwoFactorApp(), withLocalhost())
	b := newPasskeyTab(t)
	oneFactorApp := s.URL + "/reports/?year=2026"
	twoFactorApp := s.TwoFactorURL + "/admin/users?page=2"
	appMethods := func(what string) echoed {
		t.Helper()
		var e echoed
		raw := browserRun(b.browserTab, what, chromedp.Evaluate[string](
			`fetch(location.href, {headers: {"Accept": "application/json"}}).then(r => r.text())`, chromedp.EvalAwaitPromise))
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			t.Fatalf("%s: the app answered %q: %v", what, raw, err)
		}
		return e
	}

	resp := b.navigate("open the one-factor app", chromedp.Navigate(oneFactorApp))
	b.wantDocument("one-factor app, logged out", resp, s.URL+"/login/?next="+url.QueryEscape(oneFactorApp), 200)
	resp = b.submitLogin(testUser, testPassword)
	if resp.URL != oneFactorApp || resp.Status != 200 {
		t.Fatalf("after the password: got %s with status %d, want the app's %s", resp.URL, resp.Status, oneFactorApp)
	}
	b.registerPasskey(s.URL, "Step-up key")
	// Adding the passkey proved it (with user verification), as the
	// app's first code does: the session stands on it now, and the
	// two-factor app opens at once.
	b.navigate("back to the one-factor app", chromedp.Navigate(oneFactorApp))
	if e := appMethods("ask the one-factor app"); e.RemoteUser != testUser || e.Methods != "pwd hwk user" {
		t.Errorf("after adding a passkey the one-factor app saw %q with %q, want %q with %q", e.RemoteUser, e.Methods, testUser, "pwd hwk user")
	}
	resp = b.navigate("open the two-factor app right after adding the passkey", chromedp.Navigate(twoFactorApp))
	if resp.URL != twoFactorApp || resp.Status != 200 {
		t.Fatalf("two-factor app after adding a passkey: got %s with status %d, want the app", resp.URL, resp.Status)
	}
	// A one-factor session of a user who has a passkey is one from before
	// the passkey (adding it ends every other session, and a login with a
	// passkey user asks for it): made here by rewriting the stored
	// session's methods, as a session of an older version reads.
	ck := b.sessionCookie(s.URL)
	if ck == nil {
		t.Fatalf("the browser holds no session cookie for %s", s.URL)
	}
	setStoredMethods(t, s.Redis.Client(t), ck.Value, nil)
	b.navigate("back to the one-factor app, one factor again", chromedp.Navigate(oneFactorApp))
	if e := appMethods("ask the one-factor app"); e.RemoteUser != testUser || e.Methods != "pwd" {
		t.Errorf("with the rewritten session the one-factor app saw %q with %q, want %q with %q", e.RemoteUser, e.Methods, testUser, "pwd")
	}

	stepUp := s.TwoFactorURL + "/login/step-up/?next=" + url.QueryEscape(twoFactorApp)
	resp = b.navigate("open the two-factor app", chromedp.Navigate(twoFactorApp))
	b.wantDocument("two-factor app, one factor", resp, stepUp, 200)
	if b.present(`#enrol-needed`) {
		t.Fatalf("the step-up page asks a user with a passkey to set up a second factor")
	}
	resp = b.ceremony(`click "Use your passkey"`, chromedp.Click(chromedp.CSS(`#passkey-button`)))
	if resp.URL != twoFactorApp || resp.Status != 200 {
		t.Fatalf("after the passkey: got %s with status %d, want the two-factor app's %s", resp.URL, resp.Status, twoFactorApp)
	}
	e := appMethods("ask the two-factor app")
	methods := strings.Fields(e.Methods)
	if e.RemoteUser != testUser || !slices.Contains(methods, "hwk") || !slices.Contains(methods, "user") || !slices.Contains(methods, "pwd") {
		t.Errorf("after the passkey step-up the two-factor app saw %q with Remote-Auth-Methods %q, want %q with pwd, hwk and user", e.RemoteUser, e.Methods, testUser)
	}
}

// setStoredMethods rewrites the amr of the session named by the cookie
// token (nil: none, as a record from before two-step login reads, that is
// ["pwd"]), keeping its deadline and TTL.
func setStoredMethods(t *testing.T, rdb *redis.Client, token string, methods []string) {
	t.Helper()
	ctx := context.Background()
	key := "scs:session:" + testkit.TokenHash(token)
	raw, err := rdb.Get(ctx, key).Bytes()
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("session %s: %v", key, err)
	}
	values, _ := doc["values"].(map[string]any)
	if methods == nil {
		delete(values, "amr")
	} else {
		values["amr"] = methods
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.SetArgs(ctx, key, b, redis.SetArgs{KeepTTL: true, Mode: "XX"}).Err(); err != nil {
		t.Fatalf("SET %s: %v", key, err)
	}
}
