package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"loginsvc/internal/redistest"
	"loginsvc/internal/store"
	"loginsvc/internal/testkit"
)

// harness is a redis-server of the test's own with the stores opened on it
// as the service opens them, and managers on those stores.
type harness struct {
	srv *redistest.Server
	rdb *store.Redis
	// raw is a plain client for looking at what the manager wrote.
	raw *redis.Client
	// log collects what every manager of the harness logs.
	log *testkit.Buffer
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	srv := redistest.Start(t)
	rdb, err := store.Open(srv.URL(), store.Timeouts{})
	if err != nil {
		t.Fatalf("store.Open(%q): %v", srv.URL(), err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return &harness{srv: srv, rdb: rdb, raw: srv.Client(t), log: &testkit.Buffer{}}
}

// manager is a Manager configured with cfg on the harness's Redis, as one
// replica of the service would be.
func (h *harness) manager(cfg Config) *Manager {
	return New(h.rdb.Sessions, cfg, slog.New(slog.NewTextHandler(h.log, nil)))
}

// addUser creates a user record and returns its password hash, the stamp a
// login of that user carries.
func (h *harness) addUser(t *testing.T, name string) string {
	t.Helper()
	stamp := "$argon2id$stamp-of-" + name
	if err := h.rdb.Users.Create(context.Background(), name, stamp); err != nil {
		t.Fatalf("Users.Create(%q): %v", name, err)
	}
	return stamp
}

// nowhere is a Manager on a Redis that is not there: every call that
// reaches Redis fails with store.ErrUnavailable.
func nowhere(t *testing.T) *Manager {
	t.Helper()
	url := "redis://" + testkit.FreeAddr(t) + "/0"
	rdb, err := store.Open(url, store.Timeouts{})
	if err != nil {
		t.Fatalf("store.Open(%q): %v", url, err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return New(rdb.Sessions, Config{}, slog.New(slog.DiscardHandler))
}

// load starts a request with the session cookie token ("" for none), as
// the web layer's middleware does.
func load(t *testing.T, m *Manager, token string) context.Context {
	t.Helper()
	ctx, err := m.Load(context.Background(), token)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return ctx
}

// save ends the request: it saves the session and returns the session
// cookie the response sets, or nil when it sets none.
func save(t *testing.T, m *Manager, ctx context.Context) *http.Cookie {
	t.Helper()
	w := httptest.NewRecorder()
	if err := m.Save(ctx, w); err != nil {
		t.Fatalf("Save: %v", err)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == m.CookieName() {
			return c
		}
	}
	return nil
}

// login is one login request of user: a fresh request, Start, Save. It
// returns the cookie token and the session as Current saw it.
func login(t *testing.T, m *Manager, user, stamp string) (string, Record) {
	t.Helper()
	ctx := load(t, m, "")
	if err := m.Start(ctx, Login{User: user, Stamp: stamp, IP: "192.0.2.1", UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"}); err != nil {
		t.Fatalf("Start(%q): %v", user, err)
	}
	rec, ok := m.Current(ctx)
	if !ok {
		t.Fatalf("Current after Start: not logged in")
	}
	c := save(t, m, ctx)
	if c == nil || c.Value == "" {
		t.Fatalf("Save after Start: got cookie %v, want a session cookie", c)
	}
	return c.Value, rec
}

// userOf is who the cookie token is logged in as, in a new request.
func userOf(t *testing.T, m *Manager, token string) string {
	t.Helper()
	return m.User(load(t, m, token))
}

// index returns the members of user's session index with their scores
// (absolute deadlines in Unix ms).
func (h *harness) index(t *testing.T, user string) map[string]int64 {
	t.Helper()
	zs, err := h.raw.ZRangeWithScores(context.Background(), store.UserSessionsKey(user), 0, -1).Result()
	if err != nil {
		t.Fatalf("ZRANGE %s: %v", store.UserSessionsKey(user), err)
	}
	m := map[string]int64{}
	for _, z := range zs {
		m[z.Member.(string)] = int64(z.Score)
	}
	return m
}

// exists reports whether key is in Redis.
func (h *harness) exists(t *testing.T, key string) bool {
	t.Helper()
	return testkit.Exists(t, h.raw, key)
}

// pexpireTime is PEXPIRETIME of key: its expiry in Unix ms, -1 for none,
// -2 for no key.
func (h *harness) pexpireTime(t *testing.T, key string) int64 {
	t.Helper()
	ms, err := h.raw.Do(context.Background(), "PEXPIRETIME", key).Int64()
	if err != nil {
		t.Fatalf("PEXPIRETIME %s: %v", key, err)
	}
	return ms
}

// ids returns the public ids of records, in order.
func ids(records []Record) []string {
	out := make([]string, len(records))
	for i, r := range records {
		out[i] = r.ID
	}
	return out
}

// list is m.List that fails the test on error.
func list(t *testing.T, m *Manager, user string) []Record {
	t.Helper()
	records, err := m.List(context.Background(), user)
	if err != nil {
		t.Fatalf("List(%q): %v", user, err)
	}
	return records
}

// newToken is a fresh token shaped like scs's, naming no session.
func newToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashOf is the stored token of a cookie token.
func hashOf(token string) string { return testkit.TokenHash(token) }

// sleepPast sleeps until t has passed by a margin that covers Redis's
// millisecond clock.
func sleepPast(t time.Time) { time.Sleep(time.Until(t) + 50*time.Millisecond) }
