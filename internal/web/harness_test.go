package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/redis/go-redis/v9"

	"loginsvc/internal/activity"
	"loginsvc/internal/auth"
	"loginsvc/internal/backend"
	"loginsvc/internal/logging"
	"loginsvc/internal/redistest"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
	"loginsvc/internal/testkit"
)

// Test fixtures. The password is only ever hashed into a throwaway
// redis-server that the test owns.
const (
	testCookieName = "session_id"
	aliceName      = "alice"
	alicePassword  = "correct-horse-battery-staple-7"
	testUserAgent  = "loginsvc-web-test/1.0"
)

// appSettings are what a test may change about the wiring; everything else
// is as in cmd/server/serve.go. newTestApp's defaults: lifetime 1h, idle
// timeout 30m, cookie "session_id" not Secure, no trusted proxies, auth's
// default limits, the default MAX_SESSIONS_PER_USER.
type appSettings struct {
	lifetime       time.Duration
	idle           time.Duration
	instanceID     string
	trustedProxies []netip.Prefix
	limits         auth.Limits // zero fields: auth's defaults
	cookieName     string
	cookieSecure   bool
	maxSessions    int           // MAX_SESSIONS_PER_USER; 0: the default
	hashSlots      int           // auth's HashConcurrency; 0: the default
	hashWait       time.Duration // auth's HashWait; 0: the default
	allowedHosts   []string      // AUTH_ALLOWED_HOSTS
	loginURL       string        // AUTH_LOGIN_URL; "": the default
	sessionCache   bool
	observer       Observer       // metrics of requests and logins; nil: none
	events         session.Events // metrics of sessions; nil: none
	// requireTwoFactor is REQUIRE_TWO_FACTOR.
	requireTwoFactor bool
	reauthMaxAge     time.Duration // REAUTH_MAX_AGE; 0: the default
	twoFactorHosts   []string      // AUTH_TWO_FACTOR_HOSTS
	// deviceKeys are DEVICE_COOKIE_KEY, the current key first; nil:
	// testDeviceKey alone.
	deviceKeys [][]byte
}

type appOption func(*appSettings)

// withLifetime sets the absolute session lifetime (SESSION_LIFETIME).
func withLifetime(d time.Duration) appOption { return func(s *appSettings) { s.lifetime = d } }

// withIdleTimeout sets the idle timeout (SESSION_IDLE_TIMEOUT); 0 disables it.
func withIdleTimeout(d time.Duration) appOption { return func(s *appSettings) { s.idle = d } }

// withInstanceID sets the name sent in X-Served-By.
func withInstanceID(id string) appOption { return func(s *appSettings) { s.instanceID = id } }

// withLimits sets the login throttle (LOGIN_MAX_FAILURES and friends).
func withLimits(l auth.Limits) appOption { return func(s *appSettings) { s.limits = l } }

// withCookie sets the session cookie's name and COOKIE_SECURE.
func withCookie(name string, secure bool) appOption {
	return func(s *appSettings) { s.cookieName, s.cookieSecure = name, secure }
}

// withTrustedProxies sets TRUSTED_PROXIES.
func withTrustedProxies(p ...netip.Prefix) appOption {
	return func(s *appSettings) { s.trustedProxies = p }
}

// withHashing sets how many argon2id runs may go at once and how long a
// login waits for one (auth.Config's HashConcurrency and HashWait).
func withHashing(slots int, wait time.Duration) appOption {
	return func(s *appSettings) { s.hashSlots, s.hashWait = slots, wait }
}

// withForwardAuth sets AUTH_ALLOWED_HOSTS and AUTH_LOGIN_URL ("": the
// default).
func withForwardAuth(loginURL string, hosts ...string) appOption {
	return func(s *appSettings) { s.loginURL, s.allowedHosts = loginURL, hosts }
}

// withMaxSessions sets MAX_SESSIONS_PER_USER.
func withMaxSessions(n int) appOption { return func(s *appSettings) { s.maxSessions = n } }

// withSessionCache turns the session cache on (SESSION_CACHE=on, as in
// production) and waits until it serves.
func withSessionCache() appOption { return func(s *appSettings) { s.sessionCache = true } }

// withObserver sets the Observer of requests and logins, and the Events
// of sessions, as serve.go sets both to its metrics.
func withObserver(o Observer, e session.Events) appOption {
	return func(s *appSettings) { s.observer, s.events = o, e }
}

// withRequireTwoFactor sets REQUIRE_TWO_FACTOR=true.
func withRequireTwoFactor() appOption { return func(s *appSettings) { s.requireTwoFactor = true } }

// withReauthMaxAge sets REAUTH_MAX_AGE.
func withReauthMaxAge(d time.Duration) appOption { return func(s *appSettings) { s.reauthMaxAge = d } }

// withTwoFactorHosts sets AUTH_TWO_FACTOR_HOSTS.
func withTwoFactorHosts(hosts ...string) appOption {
	return func(s *appSettings) { s.twoFactorHosts = hosts }
}

// withDeviceKeys sets DEVICE_COOKIE_KEY to keys, the current one first
// and then the ones it replaced (a rotation's NEW,OLD), instead of
// testDeviceKey alone.
func withDeviceKeys(keys ...[]byte) appOption { return func(s *appSettings) { s.deviceKeys = keys } }

// testDeviceKey is DEVICE_COOKIE_KEY of every test replica: replicas of
// one test accept each other's device cookies and open each other's
// sealed secrets, as production replicas sharing the variable do.
var testDeviceKey = []byte("loginsvc-web-test-device-key-32bytes!")

// testApp is one replica of the service, served by httptest on a real Redis.
type testApp struct {
	app *App
	srv *httptest.Server
	// check is a separate client for assertions on what the service stored.
	check *redis.Client
	// client has no cookie jar: send sends every request exactly as written.
	client   *http.Client
	auth     *auth.Service
	logs     *testkit.Buffer
	settings appSettings
	rdb      *store.Redis
	be       *backend.Backend
}

// aliceHash is alice's password hashed as auth.AddUser would hash it.
var aliceHash = sync.OnceValues(func() (string, error) {
	return argon2id.CreateHash(alicePassword, auth.HashParams())
})

// newTestApp wires the service exactly as cmd/server/serve.go does, on the
// given redis-server, serves App.Handler with httptest, and
// makes sure the user alice exists with alicePassword. Several replicas may
// share one redis-server.
func newTestApp(t testing.TB, rs *redistest.Server, opts ...appOption) *testApp {
	t.Helper()
	s := appSettings{lifetime: time.Hour, idle: 30 * time.Minute, instanceID: "test-" + t.Name(), cookieName: testCookieName}
	for _, opt := range opts {
		opt(&s)
	}

	deviceKey, oldDeviceKeys := testDeviceKey, [][]byte(nil)
	if len(s.deviceKeys) > 0 {
		deviceKey, oldDeviceKeys = s.deviceKeys[0], s.deviceKeys[1:]
	}

	logs := &testkit.Buffer{}
	// The server's own logger, so the request log's fast path is the one
	// under test.
	log, err := logging.New(logs, logging.FormatText, slog.LevelDebug)
	if err != nil {
		t.Fatal(err)
	}

	be, err := backend.Open(backend.Config{
		RedisURL: rs.URL(),
		Sessions: session.Config{
			Lifetime:         s.lifetime,
			IdleTimeout:      s.idle,
			CookieName:       s.cookieName,
			CookieSecure:     s.cookieSecure,
			MaxPerUser:       s.maxSessions,
			Events:           s.events,
			RequireTwoFactor: s.requireTwoFactor,
		},
		Auth: auth.Config{
			Limits: s.limits, HashConcurrency: s.hashSlots, HashWait: s.hashWait,
			DeviceKey: deviceKey, OldDeviceKeys: oldDeviceKeys,
		},
		// As serve.go with the default EVENTS_MAXLEN, but without
		// Activity.Start: events are written before the request that
		// records them returns, so a test reads them at once.
		Activity: activity.Config{Replica: s.instanceID, ServiceWide: activity.DefaultServiceWide},
		Log:      log,
	})
	if err != nil {
		t.Fatalf("backend.Open(%q): %v", rs.URL(), err)
	}
	t.Cleanup(func() { _ = be.Close() })
	rdb, sessions, authSvc := be.Redis, be.Sessions, be.Auth
	if s.sessionCache {
		if err := rdb.StartSessionCache(log); err != nil {
			t.Fatalf("StartSessionCache: %v", err)
		}
		testkit.Eventually(t, "session cache live", 0, func() (bool, string) {
			st := rdb.CacheStats()
			return st.State == "live", "state " + st.State
		})
	}
	app, err := New(Config{
		InstanceID:     s.instanceID,
		CookieSecure:   s.cookieSecure,
		TrustedProxies: s.trustedProxies,
		AllowedHosts:   s.allowedHosts,
		LoginURL:       s.loginURL,
		Observer:       s.observer,
		ReauthMaxAge:   s.reauthMaxAge,
		TwoFactorHosts: s.twoFactorHosts,
	}, log, sessions, authSvc, rdb)
	if err != nil {
		t.Fatalf("web.New: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), testkit.WaitTimeout)
	defer cancel()
	hash, err := aliceHash()
	if err != nil {
		t.Fatalf("hash alice's password: %v", err)
	}
	// Create, not auth.EnsureUser, only to hash alice's password once per
	// package instead of once per replica; the record is the same.
	err = rdb.Users.Create(ctx, aliceName, hash)
	if err != nil && !errors.Is(err, store.ErrUserExists) {
		t.Fatalf("create user %q: %v", aliceName, err)
	}

	srv := httptest.NewServer(app.Handler())
	t.Cleanup(srv.Close)

	return &testApp{
		app:      app,
		srv:      srv,
		check:    rs.Client(t),
		client:   testkit.Client(t, nil),
		auth:     authSvc,
		logs:     logs,
		settings: s,
		rdb:      rdb,
		be:       be,
	}
}

// url is the absolute URL of path on this replica.
func (ta *testApp) url(path string) string { return ta.srv.URL + path }

// host is this replica's host:port, the Host its requests carry.
func (ta *testApp) host() string { return strings.TrimPrefix(ta.srv.URL, "http://") }

// page is one response, read in full.
type page struct {
	status int
	header http.Header
	body   string
	cookie *http.Cookie // the session cookie this response set, if any
}

// browser is testkit.Browser (a cookie jar, redirects not followed, so
// every step of a flow is visible) with the test it reports to, so that
// each step is one call that reads the whole page.
type browser struct {
	t      testing.TB
	client *http.Client
}

func newBrowser(t testing.TB) *browser {
	t.Helper()
	return &browser{t: t, client: testkit.Browser(t)}
}

func (b *browser) get(rawURL string) page {
	b.t.Helper()
	return b.do(newRequest(b.t, http.MethodGet, rawURL, nil))
}

func (b *browser) post(rawURL string, form url.Values) page {
	b.t.Helper()
	return b.do(newRequest(b.t, http.MethodPost, rawURL, form))
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	return doRequest(b.t, b.client, req)
}

// setToken plants a session cookie for u's host in the browser's jar, as an
// attacker who can write cookies for the site would.
func (b *browser) setToken(rawURL, token string) {
	b.t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		b.t.Fatalf("url.Parse(%q): %v", rawURL, err)
	}
	b.client.Jar.SetCookies(u, []*http.Cookie{{Name: testCookieName, Value: token, Path: "/"}})
}

// setCookie plants a cookie for ta's host in b's jar, as the service
// would have set it.
func (b *browser) setCookie(ta *testApp, name, value string) {
	b.t.Helper()
	b.client.Jar.SetCookies(mustURL(b.t, ta.url("/")), []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// getIn is b.get with an Accept-Language header ("" for none).
func (b *browser) getIn(rawURL, acceptLanguage string) page {
	b.t.Helper()
	req := newRequest(b.t, http.MethodGet, rawURL, nil)
	if acceptLanguage != "" {
		req.Header.Set("Accept-Language", acceptLanguage)
	}
	return b.do(req)
}

func mustURL(t testing.TB, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("url.Parse(%q): %v", raw, err)
	}
	return u
}

// tokenInJar is the session cookie the browser would send to rawURL.
func (b *browser) tokenInJar(rawURL string) string {
	b.t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		b.t.Fatalf("url.Parse(%q): %v", rawURL, err)
	}
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == testCookieName {
			return c.Value
		}
	}
	return ""
}

func newRequest(t testing.TB, method, rawURL string, form url.Values) *http.Request {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		t.Fatalf("http.NewRequest(%s %s): %v", method, rawURL, err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", testUserAgent)
	return req
}

func doRequest(t testing.TB, c *http.Client, req *http.Request) page {
	t.Helper()
	p, err := fetch(c, req)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fetch is doRequest for goroutines other than the test's own.
func fetch(c *http.Client, req *http.Request) (page, error) {
	resp, err := c.Do(req)
	if err != nil {
		return page{}, fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return page{}, fmt.Errorf("%s %s: read body: %w", req.Method, req.URL, err)
	}
	p := page{status: resp.StatusCode, header: resp.Header, body: string(body)}
	for _, c := range resp.Cookies() {
		if c.Name == testCookieName {
			p.cookie = c
		}
	}
	return p, nil
}

// sendWithCookie sends a request carrying exactly the given Cookie header
// (empty: none) from a client without a jar, to replay a cookie verbatim.
func sendWithCookie(t testing.TB, method, rawURL, cookieHeader string) page {
	t.Helper()
	req := newRequest(t, method, rawURL, nil)
	if cookieHeader != "" {
		req.Header.Set("Cookie", cookieHeader)
	}
	return doRequest(t, testkit.Client(t, nil), req)
}

// replay sends token as the session cookie.
func replay(t testing.TB, method, rawURL, token string) page {
	t.Helper()
	return sendWithCookie(t, method, rawURL, testCookieName+"="+token)
}

// redirectCase is a request from a visitor without cookies and the
// redirect it must get.
type redirectCase struct {
	method, path string
	status       int
	location     string
}

// checkRedirects sends every case to ta and fails unless each gets its
// status and Location; why says what the redirects are for.
func (ta *testApp) checkRedirects(t testing.TB, why string, cases []redirectCase) {
	t.Helper()
	for _, tc := range cases {
		p := sendWithCookie(t, tc.method, ta.url(tc.path), "")
		if got := p.header.Get("Location"); p.status != tc.status || got != tc.location {
			t.Errorf("%s %s (%s): got %d to %q, want %d to %q", tc.method, tc.path, why, p.status, got, tc.status, tc.location)
		}
	}
}

// rawRequest is one request exactly as a client, or an attacker, writes
// it: a path on the app, these headers and this body, and no cookie jar.
type rawRequest struct {
	method string
	path   string
	header map[string]string
	body   string
}

// getRaw is a GET of path with no headers of its own.
func getRaw(path string) rawRequest { return rawRequest{method: http.MethodGet, path: path} }

// formPost is a POST of form to path with the form content type.
func formPost(path string, form url.Values) rawRequest {
	return rawRequest{
		method: http.MethodPost,
		path:   path,
		header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		body:   form.Encode(),
	}
}

// with returns r with header k set to v.
func (r rawRequest) with(k, v string) rawRequest {
	h := make(map[string]string, len(r.header)+1)
	for hk, hv := range r.header {
		h[hk] = hv
	}
	h[k] = v
	r.header = h
	return r
}

// send sends r to ta from its jar-less client.
func (ta *testApp) send(t testing.TB, r rawRequest) page {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, ta.url(r.path), body)
	if err != nil {
		t.Fatalf("http.NewRequest(%s %s): %v", r.method, r.path, err)
	}
	req.Header.Set("User-Agent", testUserAgent)
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	return doRequest(t, ta.client, req)
}

// cookieSet is the cookie name that p set, or nil.
func cookieSet(p page, name string) *http.Cookie {
	resp := http.Response{Header: p.header}
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// sessionCookie is the session cookie p set (under ta's cookie name), or nil.
func (ta *testApp) sessionCookie(p page) *http.Cookie { return cookieSet(p, ta.settings.cookieName) }

// randomToken is a well-formed session token that names no session.
func randomToken(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("rand.Read: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

var h1 = regexp.MustCompile(`<h1>([^<]*)</h1>`)

// greeting is the page's heading: "Hello, alice" when logged in as alice,
// "Hello" when not logged in.
func greeting(body string) string {
	m := h1.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

// aliceForm is the form a browser posts to log in as alice.
func aliceForm(remember bool) url.Values {
	f := url.Values{"username": {aliceName}, "password": {alicePassword}}
	if remember {
		f.Set("remember", "1")
	}
	return f
}

// login logs b in as alice on ta and returns the session token it got.
func (ta *testApp) login(t testing.TB, b *browser, remember bool) string {
	t.Helper()
	return ta.loginWith(t, b, aliceForm(remember), "")
}

// loginAs logs b in as name on ta, sending userAgent (testUserAgent when
// ""), and returns the session token it got.
func (ta *testApp) loginAs(t testing.TB, b *browser, name, password, userAgent string) string {
	t.Helper()
	return ta.loginWith(t, b, url.Values{"username": {name}, "password": {password}}, userAgent)
}

// loginWith posts the login form from b, sending userAgent (testUserAgent
// when ""), and returns the session token it got.
func (ta *testApp) loginWith(t testing.TB, b *browser, form url.Values, userAgent string) string {
	t.Helper()
	req := newRequest(t, http.MethodPost, ta.url("/login/"), form)
	if userAgent != "" {
		req.Header.Set("User-Agent", userAgent)
	}
	p := b.do(req)
	c := ta.sessionCookie(p)
	if p.status != http.StatusSeeOther || c == nil || c.Value == "" {
		t.Fatalf("POST /login/ as %s: got status %d, Set-Cookie %q; want 303 with a %s cookie; body:\n%s", form.Get("username"), p.status, p.header.Values("Set-Cookie"), ta.settings.cookieName, p.body)
	}
	return c.Value
}

// wantGreeting fails unless GET / with token greets with want.
func (ta *testApp) wantGreeting(t testing.TB, token, want string) page {
	t.Helper()
	p := sendWithCookie(t, http.MethodGet, ta.url("/"), ta.settings.cookieName+"="+token)
	if p.status != http.StatusOK {
		t.Fatalf("GET / with cookie: got status %d, want 200; body:\n%s", p.status, p.body)
	}
	if got := greeting(p.body); got != want {
		t.Fatalf("GET / with cookie: got greeting %q, want %q", got, want)
	}
	return p
}

// exists reports whether key is in Redis.
func (ta *testApp) exists(t testing.TB, key string) bool {
	t.Helper()
	return testkit.Exists(t, ta.check, key)
}

// waitForKeyToExpire waits until Redis has dropped token's session by
// itself.
func (ta *testApp) waitForKeyToExpire(t testing.TB, token string) {
	t.Helper()
	key := testkit.SessionKey(token)
	testkit.Eventually(t, "session key "+key+" expired", 0, func() (bool, string) {
		return !ta.exists(t, key), "it still exists"
	})
}

// keys is the set of every key in Redis, for tests that assert a request
// created none. A set, not DBSIZE: a key may expire between two looks (the
// per-user index shares its last session's deadline), which is not a new key.
func (ta *testApp) keys(t testing.TB) map[string]bool {
	t.Helper()
	all, err := ta.check.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatalf("KEYS *: %v", err)
	}
	set := make(map[string]bool, len(all))
	for _, k := range all {
		set[k] = true
	}
	return set
}

// wantNoNewKey fails the test if Redis holds a key that was not in before.
func (ta *testApp) wantNoNewKey(t testing.TB, before map[string]bool) {
	t.Helper()
	for k := range ta.keys(t) {
		if !before[k] {
			t.Fatalf("got new key %s after the request, want none", k)
		}
	}
}

// sessionKeys lists every session key in Redis.
func (ta *testApp) sessionKeys(t testing.TB) []string {
	t.Helper()
	keys, err := ta.check.Keys(context.Background(), store.SessionPrefix+"*").Result()
	if err != nil {
		t.Fatalf("KEYS %s*: %v", store.SessionPrefix, err)
	}
	return keys
}

// backdateLastSeen rewrites the stored session of token as if its last
// request had been ago, so the next request records a new last-seen time
// (a write even with the idle timeout off).
func (ta *testApp) backdateLastSeen(t testing.TB, token string, ago time.Duration) {
	t.Helper()
	ta.rewriteValues(t, token, func(values map[string]any) {
		values["last_seen_at"] = time.Now().Add(-ago).UTC().Format(time.RFC3339Nano)
	})
}

// rewriteValues rewrites the values of the stored session of token with
// rewrite, keeping its TTL.
func (ta *testApp) rewriteValues(t testing.TB, token string, rewrite func(values map[string]any)) {
	t.Helper()
	ctx := context.Background()
	key := testkit.SessionKey(token)
	b, err := ta.check.Get(ctx, key).Bytes()
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("stored session is not JSON: %v", err)
	}
	values, _ := doc["values"].(map[string]any)
	if values == nil {
		t.Fatalf("stored session %s has no values", b)
	}
	rewrite(values)
	b, err = json.Marshal(doc)
	if err != nil {
		t.Fatalf("marshal session: %v", err)
	}
	if err := ta.check.SetArgs(ctx, key, b, redis.SetArgs{KeepTTL: true, Mode: "XX"}).Err(); err != nil {
		t.Fatalf("SET %s: %v", key, err)
	}
}

// setStoredAMR rewrites how the stored session of token says its user
// authenticated; nil removes the field, as in a record written before
// two-step login (which reads as the password alone).
func (ta *testApp) setStoredAMR(t testing.TB, token string, amr []string) {
	t.Helper()
	ta.rewriteValues(t, token, func(values map[string]any) {
		if amr == nil {
			delete(values, "amr")
			return
		}
		values["amr"] = amr
	})
}

// lastSeen is the last seen time stored in token's session.
func (ta *testApp) lastSeen(t testing.TB, token string) time.Time {
	t.Helper()
	key := testkit.SessionKey(token)
	b, err := ta.check.Get(context.Background(), key).Bytes()
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	var doc struct {
		Values struct {
			LastSeenAt time.Time `json:"last_seen_at"`
		} `json:"values"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("stored session %s: %v", b, err)
	}
	return doc.Values.LastSeenAt
}

// goErrorText is what would show that a Go error, panic or stack reached
// the browser. Compared in lower case.
var goErrorText = []string{
	"goroutine", "panic", "runtime error", "runtime/", ".go:", "net/http", "http: ",
	"redis", "dial tcp", "connection refused", "eof", "invalid url escape",
	"request body too large", "mime:", "<nil>", "%!", "deadline exceeded",
}

// checkNoGoErrorText fails unless body is free of goErrorText.
func checkNoGoErrorText(t testing.TB, what, body string) {
	t.Helper()
	lower := strings.ToLower(body)
	for _, s := range goErrorText {
		if strings.Contains(lower, s) {
			t.Errorf("%s: got body containing %q, want no Go error text:\n%s", what, s, body)
		}
	}
}
