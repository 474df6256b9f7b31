package deploy

// Forward auth through real reverse proxies: nginx, Traefik and Caddy
// (gateways_test.go), each running its docs/forward-auth.md snippet from deploy/, in
// front of two replicas of the service and of a small protected app that
// echoes the identity headers and cookies it receives.

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"loginsvc/internal/auth"
	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// echoed is what the protected app saw of one request.
type echoed struct {
	Method        string `json:"method"`
	URI           string `json:"uri"`
	RemoteUser    string `json:"remote_user"`
	RequestUser   string `json:"x_auth_request_user"`
	SessionID     string `json:"x_auth_session_id"`
	Authorization string `json:"authorization"`
	// Methods is Remote-Auth-Methods: how the user authenticated.
	Methods string `json:"remote_auth_methods"`
	// Cookie is the Cookie header, which must hold none of the service's.
	Cookie string `json:"cookie"`
}

// protectedApp is the app behind the proxy: it answers every request with
// what it received, as JSON, or as a small page for a browser.
type protectedApp struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func newProtectedApp(t testing.TB) *protectedApp {
	t.Helper()
	p := &protectedApp{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		e := echoed{Method: r.Method, URI: r.RequestURI, RemoteUser: r.Header.Get("Remote-User"),
			RequestUser: r.Header.Get("X-Auth-Request-User"), SessionID: r.Header.Get("X-Auth-Session-Id"),
			Authorization: r.Header.Get("Authorization"), Methods: r.Header.Get("Remote-Auth-Methods"),
			Cookie: strings.Join(r.Header.Values("Cookie"), "; ")}
		if strings.Contains(r.Header.Get("Accept"), "text/html") {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = fmt.Fprintf(w, "<!doctype html><title>protected</title><h1>protected app</h1><p id=\"user\">%s</p><p id=\"cookies\">%s</p>",
				htmlEscape(e.RemoteUser), htmlEscape(strings.Join(cookieNames(e.Cookie), " ")))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(e)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// forwardAuthSite is a reverse proxy in front of the replicas and the app.
type forwardAuthSite struct {
	Redis    *redistest.Server
	Replicas []*replica
	App      *protectedApp
	Gateway  gateway
	URL      string // http://127.0.0.1:PORT of the proxy
	// TwoFactorURL is http://127.0.0.1:PORT of the proxy's second port,
	// the app's host in AUTH_TWO_FACTOR_HOSTS; "" without withTwoFactorApp.
	TwoFactorURL string
	proxy        *testkit.Process
}

// forwardAuthOption changes what startForwardAuthSite starts.
type forwardAuthOption func(*forwardAuthOptions)

type forwardAuthOptions struct {
	twoFactorApp bool
	localhost    bool
}

// withTwoFactorApp makes the proxy serve the same site (the same snippet,
// the same app) on a second port too, and names that port's host in the
// replicas' AUTH_TWO_FACTOR_HOSTS: one app that accepts any session and
// one that accepts two-factor sessions only. Cookies ignore the port, so
// one login reaches both, as it would sibling apps sharing a
// COOKIE_DOMAIN.
func withTwoFactorApp() forwardAuthOption {
	return func(o *forwardAuthOptions) { o.twoFactorApp = true }
}

// withLocalhost names nginx's ports by localhost, not 127.0.0.1, in URL,
// TwoFactorURL and AUTH_TWO_FACTOR_HOSTS: passkeys need a host name (an
// IP address is no WebAuthn relying party), and http://localhost is a
// secure context for the browser.
func withLocalhost() forwardAuthOption {
	return func(o *forwardAuthOptions) { o.localhost = true }
}

// startForwardAuthSite starts a Redis, two replicas, the protected app and
// gw running the repository's snippet, all stopped in t.Cleanup.
func startForwardAuthSite(t *testing.T, gw gateway, options ...forwardAuthOption) *forwardAuthSite {
	t.Helper()
	var opts forwardAuthOptions
	for _, o := range options {
		o(&opts)
	}
	bin := testkit.ServerBinary(t)
	s := &forwardAuthSite{Redis: redistest.Start(t), App: newProtectedApp(t), Gateway: gw}
	logDir := t.TempDir()
	addrs := testkit.FreeAddrs(t, 4)
	listen := []string{addrs[2]}
	// name is how the browser and the replicas' configuration name an
	// address of the gateway's.
	name := func(addr string) string { return addr }
	if opts.localhost {
		name = func(addr string) string { return "localhost:" + strings.TrimPrefix(addr, "127.0.0.1:") }
	}
	if opts.twoFactorApp {
		listen = append(listen, addrs[3])
		s.TwoFactorURL = "http://" + name(addrs[3])
	}
	for i := 1; i <= 2; i++ {
		r := newReplica(t, bin, "app-"+strconv.Itoa(i), addrs[i-1], s.Redis.URL(), logDir)
		if opts.twoFactorApp {
			r.env = append(r.env, "AUTH_TWO_FACTOR_HOSTS="+name(addrs[3]))
		}
		if gw.NamesAppHosts {
			r.env = append(r.env, "AUTH_ALLOWED_HOSTS="+strings.Join(listen, ","))
		}
		s.Replicas = append(s.Replicas, r)
	}
	for _, r := range s.Replicas {
		r.launch(t)
	}
	for _, r := range s.Replicas {
		r.waitReady(t)
	}
	(&cluster{Redis: s.Redis}).waitBootstrapUser(t)

	proc, report := gw.start(t, s, t.TempDir(), listen)
	s.proxy = proc
	s.URL = "http://" + name(addrs[2])
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range s.Replicas {
				t.Logf("replica %s:\n%s", r.ID, r.proc.LogTail(harnessTailLines))
			}
			t.Logf("%s:\n%s", gw.Name, report())
		}
	})
	testkit.Eventually(t, gw.Name+" proxying to the service", harnessReadyTimeout, func() (bool, string) {
		if !s.proxy.Running() {
			t.Fatalf("%s exited: %v\n%s", gw.Name, s.proxy.Err(), report())
		}
		status, by, _, err := tryGet(probeClient, s.URL+"/login/", nil)
		return err == nil && status == http.StatusOK && by != "", fmt.Sprintf("GET /login/: %d by %q, %v", status, by, err)
	})
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// fetchPage does one request with client (redirects not followed).
func fetchPage(t *testing.T, client *http.Client, method, rawURL string, body io.Reader, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, rawURL, err)
	}
	return resp, string(b)
}

// acceptingHTML returns h with the Accept header of a browser loading a
// page: /auth/forward (Traefik's and Caddy's check) answers such a request
// without a session with its 302, any other with 401.
func acceptingHTML(h http.Header) http.Header {
	h = h.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Accept", "text/html,application/xhtml+xml")
	return h
}

// wantApp fails unless resp is the app's answer naming user, and returns
// what the app saw.
func wantApp(t *testing.T, what string, resp *http.Response, body, user string) echoed {
	t.Helper()
	var e echoed
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &e) != nil || e.RemoteUser != user || e.RequestUser != user {
		t.Fatalf("%s: got %d %q, want 200 from the app with Remote-User %q", what, resp.StatusCode, body, user)
	}
	return e
}

// wantLoginRedirect fails unless resp is the proxy's 302 to the login form
// returning to original, and the app was not asked.
func (s *forwardAuthSite) wantLoginRedirect(t *testing.T, what string, resp *http.Response, original string, appHitsBefore int64) {
	t.Helper()
	s.wantRedirect(t, what, resp, s.URL+"/login/?next="+url.QueryEscape(original), appHitsBefore)
}

// wantRedirect fails unless resp is the proxy's 302 to want and the app was
// not asked.
func (s *forwardAuthSite) wantRedirect(t *testing.T, what string, resp *http.Response, want string, appHitsBefore int64) {
	t.Helper()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != want {
		t.Errorf("%s: got %d to %q, want 302 to %q", what, resp.StatusCode, resp.Header.Get("Location"), want)
	}
	if n := s.App.hits.Load(); n != appHitsBefore {
		t.Errorf("%s: the app got %d requests, want none", what, n-appHitsBefore)
	}
}

// TestForwardAuthThroughProxies runs each proxy of docs/forward-auth.md (nginx,
// Traefik, Caddy) with its snippet in front of two replicas and the app:
// an anonymous request goes to the login form and back, the app sees the
// user and never a forged identity header nor one of the service's
// cookies, a bearer token works, and a revoke or a logout on one replica
// is refused on the next check by every replica.
func TestForwardAuthThroughProxies(t *testing.T) {
	for _, gw := range gateways {
		t.Run(gw.Name, func(t *testing.T) { testForwardAuthThrough(t, gw) })
	}
}

func testForwardAuthThrough(t *testing.T, gw gateway) {
	s := startForwardAuthSite(t, gw)
	browser := testkit.Browser(t)
	original := s.URL + "/reports/?year=2026&q=a%20b"
	forged := http.Header{"Remote-User": {"mallory"}, "X-Auth-Request-User": {"mallory"}, "X-Auth-Session-Id": {"forgedforgedforg"},
		"Remote-Auth-Methods": {"pwd otp hwk"}, "X-Forwarded-Host": {"evil.example"}, "X-Forwarded-Uri": {"//evil.example/"}}

	// Anonymous: a browser goes to the login form and back, a script is
	// refused. A forged identity does not get through, nor forged
	// X-Forwarded-* change the return target.
	hits := s.App.hits.Load()
	resp, _ := fetchPage(t, browser, http.MethodGet, original, nil, acceptingHTML(forged))
	s.wantLoginRedirect(t, "anonymous browser GET with a forged identity", resp, original, hits)
	loginPage := resp.Header.Get("Location")
	resp, _ = fetchPage(t, testkit.Client(t, nil), http.MethodGet, original, nil, forged)
	if resp.StatusCode != gw.DeniedScript || s.App.hits.Load() != hits {
		t.Errorf("anonymous script GET with a forged identity: got %d, the app asked %d times; want %d and the app not asked",
			resp.StatusCode, s.App.hits.Load()-hits, gw.DeniedScript)
	}
	resp, body := fetchPage(t, browser, http.MethodGet, loginPage, nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="next"`) || resp.Header.Get("X-Served-By") == "" {
		t.Fatalf("GET %s: got %d (by %q), want the login form carrying next", loginPage, resp.StatusCode, resp.Header.Get("X-Served-By"))
	}
	form := url.Values{"username": {testUser}, "password": {testPassword}, "next": {original}}
	resp, _ = fetchPage(t, browser, http.MethodPost, s.URL+"/login/", strings.NewReader(form.Encode()), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != original {
		t.Fatalf("POST /login/ with next: got %d to %q, want 303 back to %q", resp.StatusCode, resp.Header.Get("Location"), original)
	}

	// Logged in: the app sees who, never what the client claims, on
	// every replica, and none of the service's cookies. The browser sends
	// its session and device cookies (from the jar) and the app's own;
	// the other four of the service's are added as a browser in the
	// middle of a login would hold them.
	withCookies := forged.Clone()
	withCookies.Set("Cookie", "app_pref=blue; lang=zh; flash=x; xsession_id=keep; login_pending=y; passkey_ceremony=z; lang_app=keep")
	before := s.checksAnswered(t)
	var sessionID string
	for i := range 4 {
		resp, body = fetchPage(t, browser, http.MethodGet, original, nil, withCookies)
		e := wantApp(t, fmt.Sprintf("logged-in GET %d with a forged identity", i), resp, body, testUser)
		if e.URI != "/reports/?year=2026&q=a%20b" || len(e.SessionID) != 16 || e.SessionID == forged.Get("X-Auth-Session-Id") || e.Methods != "pwd" {
			t.Errorf("the app saw URI %q, session %q, methods %q; want the original URI, the session's id and %q", e.URI, e.SessionID, e.Methods, "pwd")
		}
		names := cookieNames(e.Cookie)
		if ours := serviceCookiesIn(names); len(ours) > 0 {
			t.Errorf("logged-in GET %d: the app got the service's cookies %q (Cookie: %q), want none", i, ours, e.Cookie)
		}
		if want := []string{"app_pref", "xsession_id", "lang_app"}; gw.KeepsAppCookies && !slices.Equal(names, want) {
			t.Errorf("logged-in GET %d: the app got cookies %q, want its own %q", i, names, want)
		} else if !gw.KeepsAppCookies && e.Cookie != "" {
			t.Errorf("logged-in GET %d: the app got Cookie %q, want none (%s removes the header)", i, e.Cookie, gw.Name)
		}
		sessionID = e.SessionID
	}
	s.wantEveryReplicaChecked(t, "logged-in GETs", before)
	// More of the service's cookies than the nginx snippet's six maps
	// remove: still none reaches the app.
	planted := forged.Clone()
	planted.Set("Cookie", "app_pref=blue; __Host-session_id=a; __Secure-session_id=b; __Host-device=c; lang=zh; flash=x; login_pending=y; __Host-passkey_ceremony=z")
	resp, body = fetchPage(t, browser, http.MethodGet, original, nil, planted)
	if e := wantApp(t, "logged-in GET with 8 of the service's cookies", resp, body, testUser); len(serviceCookiesIn(cookieNames(e.Cookie))) > 0 {
		t.Errorf("logged-in GET with 8 of the service's cookies: the app got Cookie %q, want none of them", e.Cookie)
	}
	resp, body = fetchPage(t, browser, http.MethodPost, s.URL+"/upload", strings.NewReader("data=1"), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	if e := wantApp(t, "logged-in POST", resp, body, testUser); e.Method != http.MethodPost {
		t.Errorf("the app saw method %q, want POST", e.Method)
	}

	// Open-redirect variants of the return target: logged in all the
	// same, and sent to "/" of the site.
	for _, next := range []string{"https://evil.example/", "//evil.example/", "/\\evil.example", "https:/\\evil.example",
		s.URL + "@evil.example/", "http://127.0.0.1.evil.example/", "/%2f%2fevil.example", "javascript:alert(1)", "http://evil.example#" + strings.TrimPrefix(s.URL, "http://")} {
		c := testkit.Browser(t)
		f := url.Values{"username": {testUser}, "password": {testPassword}, "next": {next}}
		resp, _ := fetchPage(t, c, http.MethodPost, s.URL+"/login/", strings.NewReader(f.Encode()), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
			t.Errorf("POST /login/ with next=%q: got %d to %q, want 303 to /", next, resp.StatusCode, resp.Header.Get("Location"))
		}
	}

	// Bearer token from the API through the proxy: the app sees the user.
	resp, body = fetchPage(t, testkit.Client(t, nil), http.MethodPost, s.URL+"/api/login",
		strings.NewReader(fmt.Sprintf(`{"username":%q,"password":%q}`, testUser, testPassword)), http.Header{"Content-Type": {"application/json"}})
	var tok struct {
		Token     string `json:"token"`
		SessionID string `json:"session_id"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &tok) != nil || tok.Token == "" {
		t.Fatalf("POST /api/login via %s: got %d %s", gw.Name, resp.StatusCode, body)
	}
	withToken := http.Header{"Authorization": {"Bearer " + tok.Token}, "Remote-User": {"mallory"}, "Remote-Auth-Methods": {"hwk"}}
	script := testkit.Client(t, nil)
	for i := range 2 {
		resp, body = fetchPage(t, script, http.MethodGet, s.URL+"/data.json", nil, withToken)
		if e := wantApp(t, fmt.Sprintf("bearer GET %d", i), resp, body, testUser); e.SessionID != tok.SessionID || e.Methods != "pwd" {
			t.Errorf("bearer GET %d: the app saw session %q, methods %q; want %q, %q", i, e.SessionID, e.Methods, tok.SessionID, "pwd")
		}
	}
	resp, body = fetchPage(t, script, http.MethodGet, s.URL+"/api/whoami", nil, withToken)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"user":"`+testUser+`"`) {
		t.Fatalf("GET /api/whoami via %s: got %d %s", gw.Name, resp.StatusCode, body)
	}

	// Revoke the token from the sessions page of one replica: refused at
	// once through the proxy, by every replica.
	direct := s.Replicas[0].URL
	resp, _ = fetchPage(t, browser, http.MethodPost, direct+"/sessions/"+tok.SessionID+"/revoke", strings.NewReader(""), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST %s/sessions/%s/revoke: got %d, want 303", direct, tok.SessionID, resp.StatusCode)
	}
	before = s.checksAnswered(t)
	for i := range 4 {
		hits := s.App.hits.Load()
		resp, _ = fetchPage(t, script, http.MethodGet, s.URL+"/data.json", nil, withToken)
		if resp.StatusCode != gw.DeniedScript || s.App.hits.Load() != hits {
			t.Errorf("bearer GET %d after the revoke: got %d, the app asked %d times; want %d and the app not asked",
				i, resp.StatusCode, s.App.hits.Load()-hits, gw.DeniedScript)
		}
	}
	s.wantEveryReplicaChecked(t, "bearer GETs after the revoke", before)
	if resp, _ := fetchPage(t, script, http.MethodGet, s.URL+"/api/whoami", nil, withToken); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/whoami after the revoke: got %d, want 401", resp.StatusCode)
	}

	// Log out on one replica, directly: the next protected requests with
	// the old cookie are anonymous, on every replica.
	cookie := sessionCookieOf(t, browser, s.URL)
	resp, _ = fetchPage(t, browser, http.MethodPost, s.Replicas[1].URL+"/logout/", strings.NewReader(""), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST %s/logout/: got %d, want 303", s.Replicas[1].URL, resp.StatusCode)
	}
	replayer := cookieClient(t, cookie.Value)
	before = s.checksAnswered(t)
	for i := range 4 {
		hits := s.App.hits.Load()
		resp, _ = fetchPage(t, replayer, http.MethodGet, original, nil, acceptingHTML(nil))
		s.wantLoginRedirect(t, fmt.Sprintf("GET %d with the logged-out cookie", i), resp, original, hits)
	}
	s.wantEveryReplicaChecked(t, "GETs with the logged-out cookie", before)
	t.Logf("%s forward auth: session %s served by 2 replicas; logout and revoke took effect on the next check", gw.Name, sessionID)
}

// TestProxySnippetsAreTheREADMEs keeps every proxy snippet that
// docs/forward-auth.md (the README's page on protecting other apps) shows
// the file the tests run.
func TestProxySnippetsAreTheREADMEs(t *testing.T) {
	readme, err := os.ReadFile("../docs/forward-auth.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, gw := range gateways {
		for _, sn := range gw.Snippets {
			snippet, err := os.ReadFile(sn.Path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(readme), "```"+sn.Fence+"\n"+string(snippet)+"```\n") {
				t.Errorf("docs/forward-auth.md does not show deploy/%s verbatim in a ```%s block", sn.Path, sn.Fence)
			}
		}
	}
}

// TestForwardAuthStepUpThroughProxies runs each proxy's docs/forward-auth.md snippet in
// front of one app on two ports: s.URL accepts any session,
// s.TwoFactorURL is in AUTH_TWO_FACTOR_HOSTS. A user without a second
// factor logs in with the password. The one-factor app lets the session
// in and is told "pwd"; the two-factor app sends the browser to the
// step-up page, which offers to set up two-step verification. The user
// sets up an authenticator app through the proxy (the snippet routes
// /security/ to the service) and returns to the two-factor app, which now
// lets the very session in, told "pwd otp". A Remote-Auth-Methods the
// client sends never reaches an app.
func TestForwardAuthStepUpThroughProxies(t *testing.T) {
	for _, gw := range gateways {
		t.Run(gw.Name, func(t *testing.T) { testForwardAuthStepUpThrough(t, gw) })
	}
}

func testForwardAuthStepUpThrough(t *testing.T, gw gateway) {
	start := time.Now()
	s := startForwardAuthSite(t, gw, withTwoFactorApp())
	ready := time.Now()
	browser := testkit.Browser(t)
	forged := http.Header{"Remote-User": {"mallory"}, "Remote-Auth-Methods": {"pwd otp hwk"}}
	oneFactorApp := s.URL + "/reports/?year=2026"
	twoFactorApp := s.TwoFactorURL + "/admin/users?page=2"

	// One factor: the password alone.
	postLogin(t, browser, s.URL, testUser, testPassword, nil)
	resp, body := fetchPage(t, browser, http.MethodGet, oneFactorApp, nil, forged)
	if e := wantApp(t, "one-factor app, password only", resp, body, testUser); e.Methods != "pwd" {
		t.Errorf("one-factor app, password only: the app saw Remote-Auth-Methods %q, want %q", e.Methods, "pwd")
	}

	// The two-factor app: to the step-up page on its own host, which
	// returns to it, and which offers enrolment to a user without a second
	// factor.
	hits := s.App.hits.Load()
	resp, _ = fetchPage(t, browser, http.MethodGet, twoFactorApp, nil, acceptingHTML(forged))
	stepUp := s.TwoFactorURL + "/login/step-up/?next=" + url.QueryEscape(twoFactorApp)
	s.wantRedirect(t, "two-factor app, password only", resp, stepUp, hits)
	resp, body = fetchPage(t, browser, http.MethodGet, stepUp, nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Served-By") == "" || !strings.Contains(body, `id="enrol-needed"`) {
		t.Fatalf("GET %s: got %d (by %q), want the step-up page offering enrolment (#enrol-needed)\n%s",
			stepUp, resp.StatusCode, resp.Header.Get("X-Served-By"), firstLine(body))
	}
	if strings.Contains(body, `id="code-form"`) {
		t.Errorf("step-up page of a user without a second factor asks for a code")
	}
	enrol := htmlAttr(t, body, "enrol-link", "href")
	if u, err := url.Parse(enrol); err != nil || u.Path != "/security/totp/" || u.Query().Get("next") != twoFactorApp {
		t.Errorf("step-up page: #enrol-link goes to %q, want /security/totp/ returning to %q", enrol, twoFactorApp)
	}

	// Enrolment, on the two-factor app's host, through the proxy: the secret
	// and its QR code, then the first code.
	resp, body = fetchPage(t, browser, http.MethodGet, s.TwoFactorURL+enrol, nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Served-By") == "" || !strings.Contains(body, `id="totp-form"`) {
		t.Fatalf("GET %s%s: got %d (by %q, Location %q), want the service's enrolment page (#totp-form)\n%s",
			s.TwoFactorURL, enrol, resp.StatusCode, resp.Header.Get("X-Served-By"), resp.Header.Get("Location"), firstLine(body))
	}
	secret := strings.ReplaceAll(htmlText(t, body, "totp-secret"), " ", "")
	resp, qr := fetchPage(t, browser, http.MethodGet, s.TwoFactorURL+"/security/totp/qr.png", nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(qr, "\x89PNG") {
		t.Errorf("GET /security/totp/qr.png via %s: got %d %q, want 200 image/png", gw.Name, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	code, err := auth.TOTPCode(secret, time.Now())
	if err != nil {
		t.Fatalf("TOTP code of the page's secret %q: %v", secret, err)
	}
	form := url.Values{"code": {code}, "next": {htmlAttrOf(body, `name="next"`, "value")}}
	resp, body = fetchPage(t, browser, http.MethodPost, s.TwoFactorURL+"/security/totp/", strings.NewReader(form.Encode()),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="recovery-codes"`) {
		t.Fatalf("POST /security/totp/ via %s: got %d, want 200 with the recovery codes\n%s", gw.Name, resp.StatusCode, firstLine(body))
	}
	if n := strings.Count(body, "<li><code>"); n != 10 {
		t.Errorf("after enrolment the page shows %d recovery codes, want 10", n)
	}
	if next := htmlAttr(t, body, "codes-continue", "href"); next != twoFactorApp {
		t.Errorf("after enrolment #codes-continue goes to %q, want back to the app %q", next, twoFactorApp)
	}
	enrolled := time.Now()

	// Back to the two-factor app: the session now stands on two factors,
	// on both apps.
	for _, app := range []string{twoFactorApp, oneFactorApp} {
		resp, body = fetchPage(t, browser, http.MethodGet, app, nil, forged)
		if e := wantApp(t, "after enrolment, "+app, resp, body, testUser); e.Methods != "pwd otp" {
			t.Errorf("after enrolment, %s: the app saw Remote-Auth-Methods %q, want %q", app, e.Methods, "pwd otp")
		}
	}
	// The step-up page has nothing left to ask: straight back.
	resp, _ = fetchPage(t, browser, http.MethodGet, stepUp, nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != twoFactorApp {
		t.Errorf("step-up page with two factors: got %d to %q, want 303 to %q", resp.StatusCode, resp.Header.Get("Location"), twoFactorApp)
	}

	t.Logf("%s step-up: site up in %v, login to enrolment %v, after %v", gw.Name, ready.Sub(start).Round(time.Millisecond),
		enrolled.Sub(ready).Round(time.Millisecond), time.Since(enrolled).Round(time.Millisecond))
}

// htmlAttr returns the attribute name of the element with id in body, an
// HTML page the service rendered, unescaped; it fails the test without one.
func htmlAttr(t *testing.T, body, id, name string) string {
	t.Helper()
	v := htmlAttrOf(body, `id="`+id+`"`, name)
	if v == "" {
		t.Fatalf("the page has no #%s with %s\n%s", id, name, firstLine(body))
	}
	return v
}

// htmlAttrOf returns the attribute name of the first tag that contains
// marker (such as `id="x"`), unescaped, or "".
func htmlAttrOf(body, marker, name string) string {
	i := strings.Index(body, marker)
	if i < 0 {
		return ""
	}
	from := strings.LastIndex(body[:i], "<")
	to := strings.Index(body[i:], ">")
	if from < 0 || to < 0 {
		return ""
	}
	m := regexp.MustCompile(`\s` + regexp.QuoteMeta(name) + `="([^"]*)"`).FindStringSubmatch(body[from : i+to])
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// htmlText returns the text of the element with id in body, unescaped;
// it fails the test without one. The element must hold text only.
func htmlText(t *testing.T, body, id string) string {
	t.Helper()
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the page has no #%s\n%s", id, firstLine(body))
	}
	return html.UnescapeString(m[1])
}
