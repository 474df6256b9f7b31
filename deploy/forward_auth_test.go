package deploy

// Forward auth through a real nginx: Debian's nginx with auth_request runs
// deploy/nginx-forward-auth.conf (the README's snippet) in front of two
// replicas of the service and of a small protected app that echoes the
// identity headers it receives.

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"loginsvc/internal/auth"
	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// nginxSnippetPath is the forward-auth snippet the README shows.
const nginxSnippetPath = "nginx-forward-auth.conf"

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
}

// protectedApp is the app behind nginx: it answers every request with
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
			Authorization: r.Header.Get("Authorization"), Methods: r.Header.Get("Remote-Auth-Methods")}
		if strings.Contains(r.Header.Get("Accept"), "text/html") {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = fmt.Fprintf(w, "<!doctype html><title>protected</title><h1>protected app</h1><p id=\"user\">%s</p>", htmlEscape(e.RemoteUser))
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

// forwardAuthSite is nginx in front of the replicas and the app.
type forwardAuthSite struct {
	Redis    *redistest.Server
	Replicas []*replica
	App      *protectedApp
	URL      string // http://127.0.0.1:PORT of nginx
	// TwoFactorURL is http://127.0.0.1:PORT of nginx's second port, the
	// app's host in AUTH_TWO_FACTOR_HOSTS; "" without withTwoFactorApp.
	TwoFactorURL string
	nginx        *testkit.Process
}

// forwardAuthOption changes what startForwardAuthSite starts.
type forwardAuthOption func(*forwardAuthOptions)

type forwardAuthOptions struct {
	twoFactorApp bool
	localhost    bool
}

// withTwoFactorApp makes nginx serve the same server block (the same
// snippet, the same app) on a second port too, and names that port's
// host in the replicas' AUTH_TWO_FACTOR_HOSTS: one app that accepts any
// session and one that accepts two-factor sessions only. Cookies ignore
// the port, so one login reaches both, as it would sibling apps sharing a
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
// nginx running the repository's snippet, all stopped in t.Cleanup.
func startForwardAuthSite(t *testing.T, options ...forwardAuthOption) *forwardAuthSite {
	t.Helper()
	var opts forwardAuthOptions
	for _, o := range options {
		o(&opts)
	}
	nginxBin, err := exec.LookPath("nginx")
	if err != nil {
		t.Fatal("nginx not found: run ./scripts/test.sh, which installs it")
	}
	bin := testkit.ServerBinary(t)
	s := &forwardAuthSite{Redis: redistest.Start(t), App: newProtectedApp(t)}
	logDir := t.TempDir()
	addrs := testkit.FreeAddrs(t, 4)
	listen := "listen " + addrs[2] + ";"
	// name is how the browser and the replicas' configuration name an
	// address of nginx's.
	name := func(addr string) string { return addr }
	if opts.localhost {
		name = func(addr string) string { return "localhost:" + strings.TrimPrefix(addr, "127.0.0.1:") }
	}
	if opts.twoFactorApp {
		listen += "\n        listen " + addrs[3] + ";"
		s.TwoFactorURL = "http://" + name(addrs[3])
	}
	for i := 1; i <= 2; i++ {
		r := newReplica(t, bin, "app-"+strconv.Itoa(i), addrs[i-1], s.Redis.URL(), logDir)
		if opts.twoFactorApp {
			r.env = append(r.env, "AUTH_TWO_FACTOR_HOSTS="+name(addrs[3]))
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

	dir := t.TempDir()
	snippet, err := filepath.Abs(nginxSnippetPath)
	if err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n" // workers would otherwise run as nobody, who cannot read the temp dir
	}
	conf := fmt.Sprintf(`%sworker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 256; }
http {
    access_log %[2]s/access.log;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    upstream loginsvc {
        server %[3]s;
        server %[4]s;
    }
    upstream app {
        server %[5]s;
    }
    server {
        %[6]s
        include %[7]s;
    }
}
`, user, dir, s.Replicas[0].Addr, s.Replicas[1].Addr, strings.TrimPrefix(s.App.srv.URL, "http://"), listen, snippet)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginxBin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", "nginx.conf", "-g", "daemon off;")
	cmd.Env = []string{}
	s.nginx = testkit.NewProcess(t, filepath.Join(logDir, "nginx.log"))
	if err := s.nginx.Start(cmd); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	s.URL = "http://" + name(addrs[2])
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range s.Replicas {
				t.Logf("replica %s:\n%s", r.ID, r.proc.LogTail(harnessTailLines))
			}
			errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx:\n%s\n%s\n--- config ---\n%s", s.nginx.LogTail(harnessTailLines), tail(string(errLog), 4000), conf)
		}
	})
	testkit.Eventually(t, "nginx proxying to the service", harnessReadyTimeout, func() (bool, string) {
		if !s.nginx.Running() {
			errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %v\n%s\n%s", s.nginx.Err(), s.nginx.LogTail(harnessTailLines), errLog)
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

// wantLoginRedirect fails unless resp is nginx's 302 to the login form
// returning to original, and the app was not asked.
func (s *forwardAuthSite) wantLoginRedirect(t *testing.T, what string, resp *http.Response, original string, appHitsBefore int64) {
	t.Helper()
	s.wantRedirect(t, what, resp, s.URL+"/login/?next="+url.QueryEscape(original), appHitsBefore)
}

// wantRedirect fails unless resp is nginx's 302 to want and the app was
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

func TestForwardAuthThroughNginx(t *testing.T) {
	s := startForwardAuthSite(t)
	browser := testkit.Browser(t)
	original := s.URL + "/reports/?year=2026&q=a%20b"
	forged := http.Header{"Remote-User": {"mallory"}, "X-Auth-Request-User": {"mallory"}, "X-Forwarded-Host": {"evil.example"}, "X-Forwarded-Uri": {"//evil.example/"}}

	// Anonymous: to the login form and back. A forged identity does not
	// get through, nor forged X-Forwarded-* change the return target.
	hits := s.App.hits.Load()
	resp, _ := fetchPage(t, browser, http.MethodGet, original, nil, forged)
	s.wantLoginRedirect(t, "anonymous GET with a forged Remote-User", resp, original, hits)
	loginPage := resp.Header.Get("Location")
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
	// every replica (round-robin: consecutive requests alternate).
	var sessionID string
	for i := range 4 {
		resp, body = fetchPage(t, browser, http.MethodGet, original, nil, forged)
		e := wantApp(t, fmt.Sprintf("logged-in GET %d with a forged Remote-User", i), resp, body, testUser)
		if e.URI != "/reports/?year=2026&q=a%20b" || len(e.SessionID) != 16 {
			t.Errorf("the app saw URI %q, session %q; want the original URI and the session id", e.URI, e.SessionID)
		}
		sessionID = e.SessionID
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

	// Bearer token from the API through nginx: the app sees the user.
	resp, body = fetchPage(t, testkit.Client(t, nil), http.MethodPost, s.URL+"/api/login",
		strings.NewReader(fmt.Sprintf(`{"username":%q,"password":%q}`, testUser, testPassword)), http.Header{"Content-Type": {"application/json"}})
	var tok struct {
		Token     string `json:"token"`
		SessionID string `json:"session_id"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &tok) != nil || tok.Token == "" {
		t.Fatalf("POST /api/login via nginx: got %d %s", resp.StatusCode, body)
	}
	withToken := http.Header{"Authorization": {"Bearer " + tok.Token}, "Remote-User": {"mallory"}}
	script := testkit.Client(t, nil)
	for i := range 2 {
		resp, body = fetchPage(t, script, http.MethodGet, s.URL+"/data.json", nil, withToken)
		wantApp(t, fmt.Sprintf("bearer GET %d", i), resp, body, testUser)
	}
	resp, body = fetchPage(t, script, http.MethodGet, s.URL+"/api/whoami", nil, withToken)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"user":"`+testUser+`"`) {
		t.Fatalf("GET /api/whoami via nginx: got %d %s", resp.StatusCode, body)
	}

	// Revoke the token from the sessions page of one replica: rejected at
	// once through nginx, whichever replica answers.
	direct := s.Replicas[0].URL
	resp, _ = fetchPage(t, browser, http.MethodPost, direct+"/sessions/"+tok.SessionID+"/revoke", strings.NewReader(""), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST %s/sessions/%s/revoke: got %d, want 303", direct, tok.SessionID, resp.StatusCode)
	}
	for i := range 2 {
		hits := s.App.hits.Load()
		resp, _ = fetchPage(t, script, http.MethodGet, s.URL+"/data.json", nil, withToken)
		s.wantLoginRedirect(t, fmt.Sprintf("bearer GET %d after the revoke", i), resp, s.URL+"/data.json", hits)
	}
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
	for i := range 4 {
		hits := s.App.hits.Load()
		resp, _ = fetchPage(t, replayer, http.MethodGet, original, nil, nil)
		s.wantLoginRedirect(t, fmt.Sprintf("GET %d with the logged-out cookie", i), resp, original, hits)
	}
	t.Logf("nginx forward auth: session %s served by 2 replicas; logout and revoke took effect on the next request", sessionID)
}

// TestNginxSnippetIsTheREADMEs keeps the README's nginx snippet the one
// the test runs.
func TestNginxSnippetIsTheREADMEs(t *testing.T) {
	snippet, err := os.ReadFile(nginxSnippetPath)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```nginx\n"+string(snippet)+"```\n") {
		t.Errorf("README.md does not show deploy/%s verbatim in an ```nginx block", nginxSnippetPath)
	}
}

// TestForwardAuthStepUpThroughNginx runs the README's nginx snippet in
// front of one app on two ports: s.URL accepts any session, s.TwoFactorURL
// is in AUTH_TWO_FACTOR_HOSTS. A user without a second factor logs in with
// the password. The one-factor app lets the session in and is told "pwd";
// the two-factor app sends the browser to the step-up page, which offers
// to set up two-step verification. The user sets up an authenticator app
// through nginx and returns to the two-factor app, which now lets the very
// session in, told "pwd otp". A Remote-Auth-Methods the client sends never
// reaches an app.
func TestForwardAuthStepUpThroughNginx(t *testing.T) {
	start := time.Now()
	s := startForwardAuthSite(t, withTwoFactorApp())
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
	resp, _ = fetchPage(t, browser, http.MethodGet, twoFactorApp, nil, forged)
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

	// Enrolment, on the two-factor app's host, through nginx: the secret
	// and its QR code, then the first code.
	resp, body = fetchPage(t, browser, http.MethodGet, s.TwoFactorURL+enrol, nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Served-By") == "" || !strings.Contains(body, `id="totp-form"`) {
		t.Fatalf("GET %s%s: got %d (by %q, Location %q), want the service's enrolment page (#totp-form)\n%s",
			s.TwoFactorURL, enrol, resp.StatusCode, resp.Header.Get("X-Served-By"), resp.Header.Get("Location"), firstLine(body))
	}
	secret := strings.ReplaceAll(htmlText(t, body, "totp-secret"), " ", "")
	resp, qr := fetchPage(t, browser, http.MethodGet, s.TwoFactorURL+"/security/totp/qr.png", nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(qr, "\x89PNG") {
		t.Errorf("GET /security/totp/qr.png via nginx: got %d %q, want 200 image/png", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	code, err := auth.TOTPCode(secret, time.Now())
	if err != nil {
		t.Fatalf("TOTP code of the page's secret %q: %v", secret, err)
	}
	form := url.Values{"code": {code}, "next": {htmlAttrOf(body, `name="next"`, "value")}}
	resp, body = fetchPage(t, browser, http.MethodPost, s.TwoFactorURL+"/security/totp/", strings.NewReader(form.Encode()),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="recovery-codes"`) {
		t.Fatalf("POST /security/totp/ via nginx: got %d, want 200 with the recovery codes\n%s", resp.StatusCode, firstLine(body))
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

	t.Logf("nginx step-up: site up in %v, login to enrolment %v, after %v", ready.Sub(start).Round(time.Millisecond),
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
