package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
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

	"loginsvc/internal/auth"
	"loginsvc/internal/redistest"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
)

// Test fixtures. The password is only ever hashed into a throwaway
// redis-server that the test owns.
const (
	testCookieName = "session_id"
	aliceName      = "alice"
	alicePassword  = "correct-horse-battery-staple-7"
	testUserAgent  = "loginsvc-web-test/1.0"
	// hangBound is how long a single request may take before the test calls
	// it a hang. It is not a performance goal.
	hangBound = 10 * time.Second
)

// appSettings are what a test may change about the wiring; everything else
// is as in cmd/server/serve.go.
type appSettings struct {
	lifetime       time.Duration
	idle           time.Duration
	instanceID     string
	trustedProxies []netip.Prefix
	limits         auth.Limits // zero fields: auth's defaults
	cookieName     string
	cookieSecure   bool
	maxSessions    int // MAX_SESSIONS_PER_USER; 0: the default
}

type appOption func(*appSettings)

// withLifetime sets the absolute session lifetime (SESSION_LIFETIME).
func withLifetime(d time.Duration) appOption { return func(s *appSettings) { s.lifetime = d } }

// withIdleTimeout sets the idle timeout (SESSION_IDLE_TIMEOUT); 0 disables it.
func withIdleTimeout(d time.Duration) appOption { return func(s *appSettings) { s.idle = d } }

// withInstanceID sets the name sent in X-Served-By.
func withInstanceID(id string) appOption { return func(s *appSettings) { s.instanceID = id } }

// testApp is one replica of the service, served by httptest on a real Redis.
type testApp struct {
	app *App
	srv *httptest.Server
	// check is a separate client for assertions on what the service stored.
	check    *redis.Client
	auth     *auth.Service
	logs     *syncBuffer
	settings appSettings
}

// syncBuffer is a log sink the handlers may write to while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
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

	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	rdb, err := store.Open(rs.URL(), store.Timeouts{})
	if err != nil {
		t.Fatalf("store.Open(%q): %v", rs.URL(), err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	sessions := session.New(rdb.Sessions, session.Config{
		Lifetime:     s.lifetime,
		IdleTimeout:  s.idle,
		CookieName:   s.cookieName,
		CookieSecure: s.cookieSecure,
		MaxPerUser:   s.maxSessions,
	}, log)
	authSvc, err := auth.NewService(rdb, sessions, auth.Config{Limits: s.limits})
	if err != nil {
		t.Fatalf("auth.NewService: %v", err)
	}
	app, err := New(Config{
		InstanceID:     s.instanceID,
		CookieSecure:   s.cookieSecure,
		TrustedProxies: s.trustedProxies,
	}, log, sessions, authSvc, rdb)
	if err != nil {
		t.Fatalf("web.New: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
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
		auth:     authSvc,
		logs:     logs,
		settings: s,
	}
}

// url is the absolute URL of path on this replica.
func (ta *testApp) url(path string) string { return ta.srv.URL + path }

// page is one response, read in full.
type page struct {
	status int
	header http.Header
	body   string
	cookie *http.Cookie // the session cookie this response set, if any
}

// browser is a client with a cookie jar that does not follow redirects, so
// every step of a flow is visible.
type browser struct {
	t      *testing.T
	client *http.Client
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatalf("cookiejar.New: %v", err)
	}
	return &browser{t: t, client: newClient(t, jar)}
}

func newClient(t *testing.T, jar http.CookieJar) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Jar:       jar,
		Transport: tr,
		Timeout:   hangBound,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
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

func newRequest(t *testing.T, method, rawURL string, form url.Values) *http.Request {
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

func doRequest(t *testing.T, c *http.Client, req *http.Request) page {
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
	defer resp.Body.Close()
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
func sendWithCookie(t *testing.T, method, rawURL, cookieHeader string) page {
	t.Helper()
	req := newRequest(t, method, rawURL, nil)
	if cookieHeader != "" {
		req.Header.Set("Cookie", cookieHeader)
	}
	return doRequest(t, newClient(t, nil), req)
}

// replay sends token as the session cookie.
func replay(t *testing.T, method, rawURL, token string) page {
	t.Helper()
	return sendWithCookie(t, method, rawURL, testCookieName+"="+token)
}

var h1 = regexp.MustCompile(`<h1>([^<]*)</h1>`)

// greeting is the page's heading: "hello alice" when logged in as alice,
// "hello" when not logged in.
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
func (ta *testApp) login(t *testing.T, b *browser, remember bool) string {
	t.Helper()
	p := b.post(ta.url("/login/"), aliceForm(remember))
	if p.status != http.StatusSeeOther {
		t.Fatalf("POST /login/ as alice: got status %d, want %d; body:\n%s", p.status, http.StatusSeeOther, p.body)
	}
	if p.cookie == nil || p.cookie.Value == "" {
		t.Fatalf("POST /login/ as alice: got no %s cookie, want one; Set-Cookie: %q", testCookieName, p.header.Values("Set-Cookie"))
	}
	return p.cookie.Value
}

// wantGreeting fails unless GET / with token greets with want.
func (ta *testApp) wantGreeting(t *testing.T, token, want string) page {
	t.Helper()
	p := replay(t, http.MethodGet, ta.url("/"), token)
	if p.status != http.StatusOK {
		t.Fatalf("GET / with cookie: got status %d, want 200; body:\n%s", p.status, p.body)
	}
	if got := greeting(p.body); got != want {
		t.Fatalf("GET / with cookie: got greeting %q, want %q", got, want)
	}
	return p
}

// sessionKey is the Redis key of the session whose cookie token is token:
// scs:session: + base64url(sha256(token)).
func sessionKey(token string) string {
	return "scs:session:" + tokenHash(token)
}

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// exists reports whether key is in Redis.
func (ta *testApp) exists(t *testing.T, key string) bool {
	t.Helper()
	n, err := ta.check.Exists(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("EXISTS %s: %v", key, err)
	}
	return n == 1
}

// dbsize is the number of keys in Redis.
func (ta *testApp) dbsize(t *testing.T) int64 {
	t.Helper()
	n, err := ta.check.DBSize(context.Background()).Result()
	if err != nil {
		t.Fatalf("DBSIZE: %v", err)
	}
	return n
}

// sessionKeys lists every session key in Redis.
func (ta *testApp) sessionKeys(t *testing.T) []string {
	t.Helper()
	keys, err := ta.check.Keys(context.Background(), "scs:session:*").Result()
	if err != nil {
		t.Fatalf("KEYS scs:session:*: %v", err)
	}
	return keys
}

// backdateLastSeen rewrites the stored session of token as if its last
// request had been ago, so the next request records a new last-seen time
// (a write even with the idle timeout off).
func (ta *testApp) backdateLastSeen(t *testing.T, token string, ago time.Duration) {
	t.Helper()
	ctx := context.Background()
	key := sessionKey(token)
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
	values["last_seen_at"] = time.Now().Add(-ago).UTC().Format(time.RFC3339Nano)
	b, err = json.Marshal(doc)
	if err != nil {
		t.Fatalf("marshal session: %v", err)
	}
	if err := ta.check.SetArgs(ctx, key, b, redis.SetArgs{KeepTTL: true, Mode: "XX"}).Err(); err != nil {
		t.Fatalf("SET %s: %v", key, err)
	}
}
