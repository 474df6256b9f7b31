package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"loginsvc/internal/auth"
	"loginsvc/internal/backend"
	"loginsvc/internal/redistest"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
	"loginsvc/internal/testkit"
)

// cliCmd runs `server ARGS...` in-process against redisURL with stdin and
// returns what it printed.
func cliCmd(t *testing.T, redisURL, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, env{"REDIS_URL": redisURL}.getenv, strings.NewReader(stdin), &out)
	return out.String(), err
}

// userCmd runs `server user ARGS...`.
func userCmd(t *testing.T, redisURL, stdin string, args ...string) (string, error) {
	t.Helper()
	return cliCmd(t, redisURL, stdin, append([]string{"user"}, args...)...)
}

// mustUserCmd is userCmd for steps that must succeed.
func mustUserCmd(t *testing.T, redisURL, stdin string, args ...string) string {
	t.Helper()
	out, err := userCmd(t, redisURL, stdin, args...)
	if err != nil {
		t.Fatalf("server user %s: %v (output %q)", strings.Join(args, " "), err, out)
	}
	return out
}

// openRedis returns the service's stores on the Redis at url, closed when
// the test ends.
func openRedis(t *testing.T, url string) *store.Redis {
	t.Helper()
	rdb, err := store.Open(url, store.Timeouts{Op: 5 * time.Second})
	if err != nil {
		t.Fatalf("store.Open(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// wired builds the services on rdb as the server does (backend.New),
// with the service's session defaults (24h lifetime, 30m idle timeout)
// and cfg's login limits.
func wired(rdb *store.Redis, cfg auth.Config) (*backend.Backend, error) {
	return backend.New(rdb, backend.Config{
		Sessions: session.Config{Lifetime: 24 * time.Hour, IdleTimeout: 30 * time.Minute},
		Auth:     cfg,
	})
}

// sessionManager is the session manager the server would build on rdb.
func sessionManager(t testing.TB, rdb *store.Redis) *session.Manager {
	t.Helper()
	b, err := wired(rdb, auth.Config{})
	if err != nil {
		t.Fatalf("wire the services: %v", err)
	}
	return b.Sessions
}

// authService checks passwords the way the running service does, with
// cfg's limits.
func authService(t *testing.T, rdb *store.Redis, cfg auth.Config) *auth.Service {
	t.Helper()
	b, err := wired(rdb, cfg)
	if err != nil {
		t.Fatalf("auth service: %v", err)
	}
	return b.Auth
}

// checkPassword checks whether user can log in with password.
func checkPassword(t *testing.T, svc *auth.Service, user, password string, want bool) {
	t.Helper()
	_, err := svc.Authenticate(context.Background(), user, password)
	switch {
	case want && err != nil:
		t.Errorf("authenticate %q with %q: got %v, want success", user, password, err)
	case !want && !errors.Is(err, auth.ErrInvalidCredentials):
		t.Errorf("authenticate %q with %q: got %v, want %v", user, password, err, auth.ErrInvalidCredentials)
	}
}

// testSession is a session started for a test.
type testSession struct {
	Key    string // its Redis key
	Token  string // its cookie value
	Record session.Record
}

// startSession starts a session the way a successful login does, so it is
// in its user's index. The user must exist.
func startSession(t *testing.T, rdb *store.Redis, l session.Login) testSession {
	t.Helper()
	m := sessionManager(t, rdb)
	ctx, err := m.Load(context.Background(), "")
	if err != nil {
		t.Fatalf("load an empty session: %v", err)
	}
	if err := m.Start(ctx, l); err != nil {
		t.Fatalf("start a session for %q: %v", l.User, err)
	}
	rec := httptest.NewRecorder()
	if err := m.Save(ctx, rec); err != nil {
		t.Fatalf("save the session of %q: %v", l.User, err)
	}
	var token string
	for _, c := range rec.Result().Cookies() {
		if c.Name == m.CookieName() {
			token = c.Value
		}
	}
	if token == "" {
		t.Fatalf("session of %q: no %s cookie in %v", l.User, m.CookieName(), rec.Result().Header)
	}
	r, ok := m.Current(ctx)
	if !ok {
		t.Fatalf("session of %q: not logged in after Start", l.User)
	}
	// Current leaves the device to the pages that show it; the listings
	// under test show it, so the record they are checked against has it.
	r.Device = m.Device(r)
	return testSession{Key: testkit.SessionKey(token), Token: token, Record: r}
}

// startAPISession starts an API session, as POST /api/login does.
func startAPISession(t *testing.T, rdb *store.Redis, l session.Login) testSession {
	t.Helper()
	token, r, err := sessionManager(t, rdb).StartAPI(context.Background(), l)
	if err != nil {
		t.Fatalf("start an API session for %q: %v", l.User, err)
	}
	return testSession{Key: testkit.SessionKey(token), Token: token, Record: r}
}

// putSession starts a session for user and returns its key.
func putSession(t *testing.T, rdb *store.Redis, user string) string {
	t.Helper()
	return startSession(t, rdb, session.Login{User: user, IP: "192.0.2.1", UserAgent: "curl/8.5.0"}).Key
}

// checkKeys checks which of keys still exist.
func checkKeys(t *testing.T, rdb *redis.Client, want map[string]bool) {
	t.Helper()
	for key, exists := range want {
		n, err := rdb.Exists(context.Background(), key).Result()
		if err != nil {
			t.Fatalf("EXISTS %s: %v", key, err)
		}
		if got := n == 1; got != exists {
			t.Errorf("key %s: got exists=%v, want %v", key, got, exists)
		}
	}
}

func checkNotUsageError(t *testing.T, err error) {
	t.Helper()
	var ue usageError
	if errors.As(err, &ue) {
		t.Errorf("got usageError %q, want an ordinary error (exit 1)", err)
	}
}

func TestUserAdd(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	const password = "correct horse battery"

	out := mustUserCmd(t, redis.URL(), password+"\n", "add", "alice")
	if want := "added user \"alice\"\n"; out != want {
		t.Errorf("stdout: got %q, want %q", out, want)
	}
	// The confirmation names the user as stored, in NFKC form, which is
	// the name that logs in and that `user list` shows.
	for typed, stored := range map[string]string{"Ｅve": "Eve", "ﬁle": "file"} {
		if out := mustUserCmd(t, redis.URL(), password+"\n", "add", typed); out != "added user \""+stored+"\"\n" {
			t.Errorf("user add %q: stdout got %q, want added user %q", typed, out, stored)
		}
		if out := mustUserCmd(t, redis.URL(), "", "unlock", typed); !strings.Contains(out, `"`+stored+`"`) {
			t.Errorf("user unlock %q: stdout got %q, want it to name %q", typed, out, stored)
		}
	}

	out, err := userCmd(t, redis.URL(), "another password\n", "add", "alice")
	if !errors.Is(err, store.ErrUserExists) {
		t.Errorf("adding alice again: got %v, want %v", err, store.ErrUserExists)
	}
	checkNotUsageError(t, err)
	if out != "" {
		t.Errorf("adding alice again: stdout got %q, want nothing", out)
	}

	svc := authService(t, openRedis(t, redis.URL()), auth.Config{})
	checkPassword(t, svc, "alice", password, true)
	checkPassword(t, svc, "alice", "another password", false)
}

func TestUserList(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	if out := mustUserCmd(t, redis.URL(), "", "list"); out != "" {
		t.Errorf("list with no users: got %q, want nothing", out)
	}
	for _, name := range []string{"carol", "alice", "bob"} {
		mustUserCmd(t, redis.URL(), "password-of-"+name+"\n", "add", name)
	}
	// Sessions, session indexes and throttle counters live beside user
	// records and must not show up as users.
	rdb := openRedis(t, redis.URL())
	putSession(t, rdb, "alice")
	if _, err := authService(t, rdb, auth.Config{}).CheckPassword(context.Background(), "bob", "wrong password", netip.MustParseAddr("192.0.2.1")); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("failed login to count: got %v, want %v", err, auth.ErrInvalidCredentials)
	}
	checkKeys(t, redis.Client(t), map[string]bool{store.UserSessionsKey("alice"): true, store.ThrottleUserKey("bob"): true})
	if out := mustUserCmd(t, redis.URL(), "", "list"); out != "alice\nbob\ncarol\n" {
		t.Errorf("list: got %q, want %q", out, "alice\nbob\ncarol\n")
	}
}

func TestUserPasswd(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	rdb := openRedis(t, redis.URL())
	const oldPassword, newPassword = "old password 1", "new password 2"
	mustUserCmd(t, redis.URL(), oldPassword+"\n", "add", "alice")
	mustUserCmd(t, redis.URL(), "bob's password\n", "add", "bob")
	keys := map[string]bool{
		putSession(t, rdb, "alice"): false,
		putSession(t, rdb, "alice"): false,
		putSession(t, rdb, "bob"):   true,
	}

	out := mustUserCmd(t, redis.URL(), newPassword+"\n", "passwd", "alice")
	if want := "changed password of \"alice\", ended 2 session(s)\n"; out != want {
		t.Errorf("stdout: got %q, want %q", out, want)
	}
	if strings.Contains(out, newPassword) {
		t.Errorf("stdout shows the password: %q", out)
	}
	checkKeys(t, redis.Client(t), keys)
	svc := authService(t, rdb, auth.Config{})
	checkPassword(t, svc, "alice", oldPassword, false)
	checkPassword(t, svc, "alice", newPassword, true)

	_, err := userCmd(t, redis.URL(), newPassword+"\n", "passwd", "nobody")
	if !errors.Is(err, store.ErrUserNotFound) {
		t.Errorf("passwd of a missing user: got %v, want %v", err, store.ErrUserNotFound)
	}
	checkNotUsageError(t, err)
}

// A password change ends sessions made by a real login, on the running
// service, not only hand-written ones: at once with SESSION_CACHE=off,
// within the invalidation delay with the cache on.
func TestUserPasswdLogsOutABrowser(t *testing.T) {
	t.Parallel()
	for _, mode := range cacheModes {
		t.Run("SESSION_CACHE="+mode.value, func(t *testing.T) {
			t.Parallel()
			redis := redistest.Start(t)
			s, browser := startLoggedInCache(t, redis.URL(), mode.value)

			out := mustUserCmd(t, redis.URL(), "a brand new password\n", "passwd", adminUser)
			if want := "changed password of \"admin\", ended 1 session(s)\n"; out != want {
				t.Errorf("stdout: got %q, want %q", out, want)
			}
			loggedOutWithin(t, browser, s, adminUser, "the password change", mode.delay)
			login(t, s.base, adminUser, "a brand new password")
		})
	}
}

func TestUserDelete(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	rdb := openRedis(t, redis.URL())
	const password = "alice's password"
	mustUserCmd(t, redis.URL(), password+"\n", "add", "alice")
	mustUserCmd(t, redis.URL(), "bob's password\n", "add", "bob")
	keys := map[string]bool{
		putSession(t, rdb, "alice"): false,
		putSession(t, rdb, "alice"): false,
		putSession(t, rdb, "bob"):   true,
	}

	out := mustUserCmd(t, redis.URL(), "", "delete", "alice")
	if want := "deleted user \"alice\", ended 2 session(s)\n"; out != want {
		t.Errorf("stdout: got %q, want %q", out, want)
	}
	checkKeys(t, redis.Client(t), keys)
	if out := mustUserCmd(t, redis.URL(), "", "list"); out != "bob\n" {
		t.Errorf("list after delete: got %q, want %q", out, "bob\n")
	}
	checkPassword(t, authService(t, rdb, auth.Config{}), "alice", password, false)

	_, err := userCmd(t, redis.URL(), "", "delete", "alice")
	if !errors.Is(err, store.ErrUserNotFound) {
		t.Errorf("deleting alice again: got %v, want %v", err, store.ErrUserNotFound)
	}
	checkNotUsageError(t, err)
}

func TestUserUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args     []string
		redisURL string
		naming   string
	}{
		{args: []string{"list"}, naming: "REDIS_URL"},
		{args: []string{"add", "alice"}, naming: "REDIS_URL"},
		{args: []string{"list"}, redisURL: "http://x", naming: "REDIS_URL"},
		{args: []string{}, redisURL: "redis://127.0.0.1:1/0", naming: "usage: server user"},
		{args: []string{"add"}, redisURL: "redis://127.0.0.1:1/0", naming: "usage: server user"},
		{args: []string{"add", "alice", "bob"}, redisURL: "redis://127.0.0.1:1/0", naming: "usage: server user"},
		{args: []string{"passwd"}, redisURL: "redis://127.0.0.1:1/0", naming: "usage: server user"},
		{args: []string{"delete", "alice", "bob"}, redisURL: "redis://127.0.0.1:1/0", naming: "usage: server user"},
		{args: []string{"list", "alice"}, redisURL: "redis://127.0.0.1:1/0", naming: "usage: server user"},
		{args: []string{"rename", "alice"}, redisURL: "redis://127.0.0.1:1/0", naming: "usage: server user"},
		{args: []string{"unlock"}, redisURL: "redis://127.0.0.1:1/0", naming: "usage: server user"},
		{args: []string{"unlock", "alice", "bob"}, redisURL: "redis://127.0.0.1:1/0", naming: "usage: server user"},
		{args: []string{"unlock", "alice"}, naming: "REDIS_URL"},
		{args: []string{"mfa"}, redisURL: "redis://127.0.0.1:1/0", naming: "usage: server user"},
		{args: []string{"mfa", "status"}, redisURL: "redis://127.0.0.1:1/0", naming: "user mfa status NAME"},
		{args: []string{"mfa", "status", "alice", "bob"}, redisURL: "redis://127.0.0.1:1/0", naming: "usage: server user"},
		{args: []string{"mfa", "remove", "alice"}, redisURL: "redis://127.0.0.1:1/0", naming: "user mfa reset NAME"},
		{args: []string{"mfa", "status", "alice", "--yes"}, redisURL: "redis://127.0.0.1:1/0", naming: "-yes"},
		{args: []string{"mfa", "reset", "alice", "--json"}, redisURL: "redis://127.0.0.1:1/0", naming: "-json"},
		{args: []string{"mfa", "reset", "--yes"}, redisURL: "redis://127.0.0.1:1/0", naming: "usage: server user"},
		// Checked before Redis is dialled: off a terminal, a reset
		// without --yes is a mistake whether or not Redis is up.
		{args: []string{"mfa", "reset", "alice"}, redisURL: "redis://127.0.0.1:1/0", naming: "--yes"},
		{args: []string{"mfa", "status", "alice"}, naming: "REDIS_URL"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " ")+" REDIS_URL="+tt.redisURL, func(t *testing.T) {
			out, err := userCmd(t, tt.redisURL, "some password\n", tt.args...)
			checkUsageError(t, err, tt.naming)
			if out != "" {
				t.Errorf("stdout: got %q, want nothing", out)
			}
		})
	}
}

func TestUserRejectsBadPasswords(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	mustUserCmd(t, redis.URL(), "alice's password\n", "add", "alice")
	tests := []struct {
		name    string
		args    []string
		stdin   string
		wantErr string
	}{
		{"add with 11 characters", []string{"add", "bob"}, "eleven11111\n", "at least 12 characters"},
		{"passwd with 11 characters", []string{"passwd", "alice"}, "eleven11111\n", "at least 12 characters"},
		{"add with 2000 bytes", []string{"add", "bob"}, strings.Repeat("p", 2000) + "\n", "at most 1024 bytes"},
		{"add with empty stdin", []string{"add", "bob"}, "", "no password on stdin"},
		{"add with an empty line", []string{"add", "bob"}, "\n", "no password on stdin"},
		{"passwd with empty stdin", []string{"passwd", "alice"}, "", "no password on stdin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := userCmd(t, redis.URL(), tt.stdin, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %v, want one mentioning %q", err, tt.wantErr)
			}
			checkNotUsageError(t, err)
			if out != "" {
				t.Errorf("stdout: got %q, want nothing", out)
			}
		})
	}
	if out := mustUserCmd(t, redis.URL(), "", "list"); out != "alice\n" {
		t.Errorf("list after refused passwords: got %q, want only alice", out)
	}
	checkPassword(t, authService(t, openRedis(t, redis.URL()), auth.Config{}), "alice", "alice's password", true)
}

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	healthcheck := func(addr string) error {
		return run(context.Background(), []string{"healthcheck"}, env{"ADDR": addr}.getenv, strings.NewReader(""), &bytes.Buffer{})
	}

	if err := healthcheck(testkit.FreeAddr(t)); err == nil {
		t.Errorf("healthcheck with nothing listening: got nil, want an error")
	}

	redis := redistest.Start(t)
	s := startServer(t, env{"REDIS_URL": redis.URL()})
	s.waitStatus(t, "/readyz", http.StatusOK)
	if err := healthcheck(s.addr); err != nil {
		t.Errorf("healthcheck against a ready server: got %v, want nil", err)
	}
	if err := healthcheck(":" + strings.Split(s.addr, ":")[1]); err != nil {
		t.Errorf("healthcheck with ADDR=:PORT: got %v, want nil", err)
	}

	redis.Stop(t)
	s.waitStatus(t, "/readyz", http.StatusServiceUnavailable)
	err := healthcheck(s.addr)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("healthcheck while Redis is down: got %v, want an error naming 503", err)
	}
	checkNotUsageError(t, err)
}
