package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"loginsvc/internal/auth"
	"loginsvc/internal/redistest"
	"loginsvc/internal/store"
)

// userCmd runs `server user ARGS...` against redisURL with stdin and
// returns what it printed.
func userCmd(t *testing.T, redisURL, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"user"}, args...), env{"REDIS_URL": redisURL}.getenv, strings.NewReader(stdin), &out)
	return out.String(), err
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

// authService checks passwords the way the running service does.
func authService(t *testing.T, rdb redis.UniversalClient) *auth.Service {
	t.Helper()
	tm := store.Timeouts{Op: 5 * time.Second}
	svc, err := auth.NewService(store.NewUsers(rdb, tm), store.NewSessionStore(rdb, tm), store.NewThrottle(rdb, tm), store.JSONCodec{}, auth.Config{})
	if err != nil {
		t.Fatalf("auth service: %v", err)
	}
	return svc
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

// putSession stores a session for user the way the service does and
// returns its key.
func putSession(t *testing.T, rdb *redis.Client, token, user string) string {
	t.Helper()
	b, err := store.JSONCodec{}.Encode(time.Now().Add(time.Hour), map[string]any{store.FieldUsername: user})
	if err != nil {
		t.Fatalf("encode session: %v", err)
	}
	key := store.SessionKey(token)
	if err := rdb.Set(context.Background(), key, b, time.Hour).Err(); err != nil {
		t.Fatalf("store session %s: %v", key, err)
	}
	return key
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

	out, err := userCmd(t, redis.URL(), "another password\n", "add", "alice")
	if !errors.Is(err, store.ErrUserExists) {
		t.Errorf("adding alice again: got %v, want %v", err, store.ErrUserExists)
	}
	checkNotUsageError(t, err)
	if out != "" {
		t.Errorf("adding alice again: stdout got %q, want nothing", out)
	}

	svc := authService(t, redis.Client(t))
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
	// Sessions and throttle counters live beside user records and must not
	// show up as users.
	putSession(t, redis.Client(t), "some-token", "alice")
	if out := mustUserCmd(t, redis.URL(), "", "list"); out != "alice\nbob\ncarol\n" {
		t.Errorf("list: got %q, want %q", out, "alice\nbob\ncarol\n")
	}
}

func TestUserPasswd(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	rdb := redis.Client(t)
	const oldPassword, newPassword = "old password 1", "new password 2"
	mustUserCmd(t, redis.URL(), oldPassword+"\n", "add", "alice")
	keys := map[string]bool{
		putSession(t, rdb, "alice-laptop", "alice"): false,
		putSession(t, rdb, "alice-phone", "alice"):  false,
		putSession(t, rdb, "bob-laptop", "bob"):     true,
	}

	out := mustUserCmd(t, redis.URL(), newPassword+"\n", "passwd", "alice")
	if want := "changed password of \"alice\", ended 2 session(s)\n"; out != want {
		t.Errorf("stdout: got %q, want %q", out, want)
	}
	if strings.Contains(out, newPassword) {
		t.Errorf("stdout shows the password: %q", out)
	}
	checkKeys(t, rdb, keys)
	svc := authService(t, rdb)
	checkPassword(t, svc, "alice", oldPassword, false)
	checkPassword(t, svc, "alice", newPassword, true)

	_, err := userCmd(t, redis.URL(), newPassword+"\n", "passwd", "nobody")
	if !errors.Is(err, store.ErrUserNotFound) {
		t.Errorf("passwd of a missing user: got %v, want %v", err, store.ErrUserNotFound)
	}
	checkNotUsageError(t, err)
}

// A password change ends sessions made by a real login, on the running
// service, not only hand-written ones.
func TestUserPasswdLogsOutABrowser(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	s := startServer(t, bootstrapEnv(redis.URL()))
	s.waitStatus(t, "/readyz", http.StatusOK)
	s.waitLog(t, `msg="bootstrap user created" user=admin`)
	browser := login(t, s.base, adminUser, adminPassword)

	out := mustUserCmd(t, redis.URL(), "a brand new password\n", "passwd", adminUser)
	if want := "changed password of \"admin\", ended 1 session(s)\n"; out != want {
		t.Errorf("stdout: got %q, want %q", out, want)
	}
	if _, body := get(t, browser, s.base+"/"); strings.Contains(body, "hello admin") {
		t.Errorf("GET / after the password change: still logged in\n%s", body)
	}
	login(t, s.base, adminUser, "a brand new password")
}

func TestUserDelete(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	rdb := redis.Client(t)
	const password = "alice's password"
	mustUserCmd(t, redis.URL(), password+"\n", "add", "alice")
	mustUserCmd(t, redis.URL(), "bob's password\n", "add", "bob")
	keys := map[string]bool{
		putSession(t, rdb, "alice-laptop", "alice"): false,
		putSession(t, rdb, "alice-phone", "alice"):  false,
		putSession(t, rdb, "bob-laptop", "bob"):     true,
	}

	out := mustUserCmd(t, redis.URL(), "", "delete", "alice")
	if want := "deleted user \"alice\", ended 2 session(s)\n"; out != want {
		t.Errorf("stdout: got %q, want %q", out, want)
	}
	checkKeys(t, rdb, keys)
	if out := mustUserCmd(t, redis.URL(), "", "list"); out != "bob\n" {
		t.Errorf("list after delete: got %q, want %q", out, "bob\n")
	}
	checkPassword(t, authService(t, rdb), "alice", password, false)

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
	checkPassword(t, authService(t, redis.Client(t)), "alice", "alice's password", true)
}

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	healthcheck := func(addr string) error {
		return run(context.Background(), []string{"healthcheck"}, env{"ADDR": addr}.getenv, strings.NewReader(""), &bytes.Buffer{})
	}

	if err := healthcheck(freeAddr(t)); err == nil {
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
