package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"loginsvc/internal/auth"
	"loginsvc/internal/redistest"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
)

const (
	firefoxUA = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	androidUA = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
)

// sessionsCmd runs `server sessions ARGS...` against redisURL.
func sessionsCmd(t *testing.T, redisURL string, args ...string) (string, error) {
	t.Helper()
	return cliCmd(t, redisURL, "", append([]string{"sessions"}, args...)...)
}

// mustSessionsCmd is sessionsCmd for steps that must succeed.
func mustSessionsCmd(t *testing.T, redisURL string, args ...string) string {
	t.Helper()
	out, err := sessionsCmd(t, redisURL, args...)
	if err != nil {
		t.Fatalf("server sessions %s: %v (output %q)", strings.Join(args, " "), err, out)
	}
	return out
}

// checkExit1 checks that err is what main turns into exit code 1 and one
// line on stderr, naming what.
func checkExit1(t *testing.T, err error, naming string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one naming %s", naming)
	}
	checkNotUsageError(t, err)
	if msg := err.Error(); strings.ContainsAny(msg, "\r\n") || !strings.Contains(msg, naming) {
		t.Errorf("got message %q, want one line naming %s", msg, naming)
	}
}

// checkCmdFails runs `server ARGS...` against redisURL and checks that it
// fails the exit-1 way, with one line naming naming, and prints nothing.
func checkCmdFails(t *testing.T, redisURL, naming string, args ...string) {
	t.Helper()
	out, err := cliCmd(t, redisURL, "", args...)
	checkExit1(t, err, naming)
	if out != "" {
		t.Errorf("server %s: stdout got %q, want nothing", strings.Join(args, " "), out)
	}
}

// addUser creates a user record directly (a hash nobody can log in with),
// so that sessions can be started for it without hashing a password.
func addUser(t *testing.T, rdb *store.Redis, name string) {
	t.Helper()
	if err := rdb.Users.Create(context.Background(), name, "not-a-real-hash"); err != nil {
		t.Fatalf("create user %q: %v", name, err)
	}
}

// seededSessions is three sessions of two users: alice on a laptop, then
// on a phone, and bob with curl.
type seededSessions struct{ laptop, phone, bob testSession }

func seedSessions(t *testing.T, rdb *store.Redis) seededSessions {
	t.Helper()
	addUser(t, rdb, "alice")
	addUser(t, rdb, "bob")
	var s seededSessions
	s.laptop = startSession(t, rdb, session.Login{User: "alice", IP: "203.0.113.7", UserAgent: firefoxUA})
	s.phone = startSession(t, rdb, session.Login{User: "alice", IP: "2001:db8::1", UserAgent: androidUA})
	s.bob = startAPISession(t, rdb, session.Login{User: "bob", IP: "198.51.100.2", UserAgent: "curl/8.5.0"})
	return s
}

// textTable splits a text listing into rows of named cells, cutting every
// line where the header's columns start: it fails unless the columns are
// aligned under the header.
func textTable(t *testing.T, out string) []map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	header := lines[0]
	names := []string{"ID", "USER", "CREATED", "LAST SEEN", "IDLE EXPIRES", "IP", "KIND", "AMR", "DEVICE"}
	starts := make([]int, len(names))
	for i, name := range names {
		starts[i] = strings.Index(header, name)
		if starts[i] < 0 || i > 0 && starts[i] <= starts[i-1] {
			t.Fatalf("header %q: want the columns %v in order", header, names)
		}
	}
	var rows []map[string]string
	for _, line := range lines[1:] {
		row := map[string]string{}
		for i, name := range names {
			end := len(line)
			if i+1 < len(names) {
				end = starts[i+1]
			}
			if len(line) < end || i+1 < len(names) && line[end-1] != ' ' {
				t.Fatalf("row %q: column %s does not end at %d, under the header %q", line, name, end, header)
			}
			row[name] = strings.TrimSpace(line[starts[i]:end])
		}
		rows = append(rows, row)
	}
	return rows
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// checkExpires checks a listed expiry: 30 minutes of idle time from about
// now (the default idle timeout).
func checkExpires(t *testing.T, id string, got time.Time) {
	t.Helper()
	if now := time.Now(); got.Before(now.Add(25*time.Minute)) || got.After(now.Add(31*time.Minute)) {
		t.Errorf("session %s expires: got %v, want about 30 minutes from now (%v)", id, got, now)
	}
}

func TestSessionsListText(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	s := seedSessions(t, openRedis(t, redis.URL()))

	rows := textTable(t, mustSessionsCmd(t, redis.URL(), "list"))
	if len(rows) != 3 {
		t.Fatalf("got %d rows, want 3: %v", len(rows), rows)
	}
	byID := map[string]map[string]string{}
	for _, r := range rows {
		byID[r["ID"]] = r
	}
	for _, want := range []struct {
		s      testSession
		user   string
		ip     string
		kind   string
		device string
	}{
		{s.laptop, "alice", "203.0.113.7", "browser", "Firefox 133 on Linux (Desktop)"},
		{s.phone, "alice", "2001:db8::1", "browser", "Chrome 131 on Android (Mobile)"},
		{s.bob, "bob", "198.51.100.2", "api", "unknown device"},
	} {
		id := want.s.Record.ID
		row, ok := byID[id]
		if !ok {
			t.Errorf("no row for session %s of %s in %v", id, want.user, rows)
			continue
		}
		wantCells := map[string]string{
			"USER": want.user, "IP": want.ip, "KIND": want.kind, "AMR": "pwd", "DEVICE": want.device,
			"CREATED": rfc3339(want.s.Record.CreatedAt), "LAST SEEN": rfc3339(want.s.Record.CreatedAt),
		}
		for col, v := range wantCells {
			if row[col] != v {
				t.Errorf("session %s %s: got %q, want %q", id, col, row[col], v)
			}
		}
		expires, err := time.Parse(time.RFC3339, row["IDLE EXPIRES"])
		if err != nil {
			t.Errorf("session %s IDLE EXPIRES %q: want an RFC 3339 time: %v", id, row["IDLE EXPIRES"], err)
		}
		checkExpires(t, id, expires)
	}
}

// sessionLine is one line of `sessions list --json`.
type sessionLine struct {
	ID         string    `json:"id"`
	User       string    `json:"user"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	// ExpiresAt is the absolute deadline, as in the API and Redis.
	ExpiresAt     time.Time `json:"expires_at"`
	IdleExpiresAt time.Time `json:"idle_expires_at"`
	IP            string    `json:"ip"`
	UserAgent     string    `json:"user_agent"`
	Device        string    `json:"device"`
	Kind          string    `json:"kind"`
	AMR           []string  `json:"amr"`
	AuthTime      time.Time `json:"auth_time"`
}

// jsonLines parses output of --json: one object per line, each with at
// least the documented keys.
func jsonLines(t *testing.T, out string) []sessionLine {
	t.Helper()
	var got []sessionLine
	for line := range strings.Lines(out) {
		var keys map[string]any
		if err := json.Unmarshal([]byte(line), &keys); err != nil {
			t.Fatalf("line %q: not a JSON object: %v", line, err)
		}
		for _, k := range []string{"id", "user", "created_at", "last_seen_at", "expires_at", "idle_expires_at", "ip", "user_agent", "device", "kind", "amr", "auth_time"} {
			if _, ok := keys[k]; !ok {
				t.Errorf("line %q: no key %q", line, k)
			}
		}
		var s sessionLine
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, s)
	}
	return got
}

func TestSessionsListJSON(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	s := seedSessions(t, openRedis(t, redis.URL()))

	lines := jsonLines(t, mustSessionsCmd(t, redis.URL(), "list", "--json"))
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3", len(lines))
	}
	stored := storedExpiresAt(t, redis.Client(t))
	for _, want := range []testSession{s.laptop, s.phone, s.bob} {
		i := slices.IndexFunc(lines, func(l sessionLine) bool { return l.ID == want.Record.ID })
		if i < 0 {
			t.Errorf("no line for session %s in %+v", want.Record.ID, lines)
			continue
		}
		got, rec := lines[i], want.Record
		if wantKind := map[bool]string{false: "browser", true: "api"}[rec.API]; got.Kind != wantKind {
			t.Errorf("session %s: got kind %q, want %q", rec.ID, got.Kind, wantKind)
		}
		if got.User != rec.User || got.IP != rec.IP || got.UserAgent != rec.UserAgent || got.Device != rec.Device.String() {
			t.Errorf("session %s: got user %q ip %q user agent %q device %q, want %q %q %q %q",
				rec.ID, got.User, got.IP, got.UserAgent, got.Device, rec.User, rec.IP, rec.UserAgent, rec.Device.String())
		}
		if !got.CreatedAt.Equal(rec.CreatedAt) || !got.LastSeenAt.Equal(rec.CreatedAt) || !got.ExpiresAt.Equal(rec.EndsAt) {
			t.Errorf("session %s: got created %v last seen %v expires_at %v, want %v, %v, %v (the absolute deadline)",
				rec.ID, got.CreatedAt, got.LastSeenAt, got.ExpiresAt, rec.CreatedAt, rec.CreatedAt, rec.EndsAt)
		}
		checkExpires(t, rec.ID, got.IdleExpiresAt)
		// The Redis record's expires_at is the same absolute deadline.
		if !slices.ContainsFunc(stored, func(at time.Time) bool { return at.Sub(got.ExpiresAt).Abs() < time.Second }) {
			t.Errorf("session %s: expires_at %v, but no Redis record's expires_at is that (%v): one name, one meaning", rec.ID, got.ExpiresAt, stored)
		}
	}
}

// Each session says how its user authenticated: "pwd+otp" after a
// two-step login, and "pwd" for a session written before two-step login
// existed, which has no amr at all.
func TestSessionsShowMethods(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	rdb := openRedis(t, redis.URL())
	addUser(t, rdb, "alice")
	twoStep := startSession(t, rdb, session.Login{User: "alice", IP: "192.0.2.1", UserAgent: firefoxUA, Methods: []string{session.MethodPassword, session.MethodOTP}})
	old := startSession(t, rdb, session.Login{User: "alice", IP: "192.0.2.2", UserAgent: androidUA})
	dropAMR(t, redis.Client(t), old.Key)

	tests := []struct {
		s        testSession
		wantText string
		wantJSON []string
	}{
		{twoStep, "pwd+otp", []string{"pwd", "otp"}},
		{old, "pwd", []string{"pwd"}},
	}
	rows := textTable(t, mustSessionsCmd(t, redis.URL(), "list"))
	lines := jsonLines(t, mustSessionsCmd(t, redis.URL(), "list", "--json"))
	for _, tt := range tests {
		id := tt.s.Record.ID
		if i := slices.IndexFunc(rows, func(r map[string]string) bool { return r["ID"] == id }); i < 0 || rows[i]["AMR"] != tt.wantText {
			t.Errorf("list: session %s AMR: got rows %v, want %q", id, rows, tt.wantText)
		}
		i := slices.IndexFunc(lines, func(l sessionLine) bool { return l.ID == id })
		if i < 0 || !slices.Equal(lines[i].AMR, tt.wantJSON) || !lines[i].AuthTime.Equal(tt.s.Record.CreatedAt) {
			t.Errorf("list --json: session %s: got %+v, want amr %q and auth_time %v", id, lines, tt.wantJSON, tt.s.Record.CreatedAt)
		}
		if out := mustSessionsCmd(t, redis.URL(), "show", id); !strings.Contains(out, "\namr:          "+tt.wantText+"\n") {
			t.Errorf("show %s: got\n%s\nwant a line amr: %s", id, out, tt.wantText)
		}
		shown := jsonLines(t, mustSessionsCmd(t, redis.URL(), "show", "--json", id))
		if len(shown) != 1 || !slices.Equal(shown[0].AMR, tt.wantJSON) {
			t.Errorf("show --json %s: got %+v, want amr %q", id, shown, tt.wantJSON)
		}
	}
}

// dropAMR rewrites the session at key as a session from before two-step
// login was: without amr and auth_time, keeping its expiry.
func dropAMR(t *testing.T, rdb *goredis.Client, key string) {
	t.Helper()
	ctx := context.Background()
	b, err := rdb.Get(ctx, key).Bytes()
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("session %s: %v in %q", key, err, b)
	}
	values, ok := doc["values"].(map[string]any)
	if !ok || values["amr"] == nil {
		t.Fatalf("session %s: want values with an amr, got %q", key, b)
	}
	delete(values, "amr")
	delete(values, "auth_time")
	if b, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := rdb.SetArgs(ctx, key, b, goredis.SetArgs{KeepTTL: true}).Err(); err != nil {
		t.Fatalf("SET %s: %v", key, err)
	}
}

func TestSessionsListOfOneUser(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	rdb := openRedis(t, redis.URL())
	s := seedSessions(t, rdb)
	addUser(t, rdb, "carol")
	newestFirst := []string{s.phone.Record.ID, s.laptop.Record.ID}

	rows := textTable(t, mustSessionsCmd(t, redis.URL(), "list", "--user", "alice"))
	var ids []string
	for _, r := range rows {
		ids = append(ids, r["ID"])
	}
	if !slices.Equal(ids, newestFirst) {
		t.Errorf("list --user alice: got ids %v, want alice's, newest first: %v", ids, newestFirst)
	}

	ids = nil
	for _, l := range jsonLines(t, mustSessionsCmd(t, redis.URL(), "list", "--json", "--user=alice")) {
		ids = append(ids, l.ID)
	}
	if !slices.Equal(ids, newestFirst) {
		t.Errorf("list --json --user=alice: got ids %v, want %v", ids, newestFirst)
	}

	// A user without sessions is an empty answer, not an error.
	if out := mustSessionsCmd(t, redis.URL(), "list", "--user", "carol"); out != "" {
		t.Errorf("list --user carol (no sessions): got %q, want nothing", out)
	}
	for _, name := range []string{"ghost", "a{b"} {
		checkCmdFails(t, redis.URL(), fmt.Sprintf("%q", name), "sessions", "list", "--user", name)
	}
}

func TestSessionsShow(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	rdb := openRedis(t, redis.URL())
	s := seedSessions(t, rdb)
	rec := s.laptop.Record

	out := mustSessionsCmd(t, redis.URL(), "show", rec.ID)
	fields := map[string]string{}
	for line := range strings.Lines(out) {
		name, value, ok := strings.Cut(strings.TrimSuffix(line, "\n"), ":")
		if !ok {
			t.Fatalf("show: line %q is not 'name: value'", line)
		}
		fields[name] = strings.TrimSpace(value)
	}
	for name, want := range map[string]string{
		"id": rec.ID, "user": "alice", "ip": "203.0.113.7", "user agent": firefoxUA,
		"device": "Firefox 133 on Linux (Desktop)", "amr": "pwd",
	} {
		if fields[name] != want {
			t.Errorf("show %s: got %q, want %q\n%s", name, fields[name], want, out)
		}
	}
	for name, at := range map[string]time.Time{"created": rec.CreatedAt, "last seen": rec.CreatedAt, "expires": rec.EndsAt, "auth time": rec.CreatedAt} {
		if want := rfc3339(at) + " ("; !strings.HasPrefix(fields[name], want) {
			t.Errorf("show %s: got %q, want it to start with %q", name, fields[name], want)
		}
	}
	if !strings.Contains(fields["idle expires"], "in 29m") && !strings.Contains(fields["idle expires"], "in 30m") {
		t.Errorf("show idle expires: got %q, want about 30 minutes from now", fields["idle expires"])
	}

	for _, args := range [][]string{{"show", "--json", rec.ID}, {"show", rec.ID, "--json"}} {
		lines := jsonLines(t, mustSessionsCmd(t, redis.URL(), args...))
		if len(lines) != 1 || lines[0].ID != rec.ID || lines[0].UserAgent != firefoxUA {
			t.Errorf("sessions %s: got %+v, want the laptop session", strings.Join(args, " "), lines)
		}
	}

	// An id of the right shape that names nothing, one that starts with
	// '-' (one id in 64 does: it is not a flag), and a malformed one.
	for _, id := range []string{"AAAAAAAAAAAAAAAA", "-AAAAAAAAAAAAAAA", "nope"} {
		checkCmdFails(t, redis.URL(), fmt.Sprintf("session %q", id), "sessions", "show", id)
	}
}

// Text output never passes a terminal escape sequence through from a
// stored user agent; JSON keeps the bytes, escaped.
func TestSessionsShowDisarmsControlCharacters(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	rdb := openRedis(t, redis.URL())
	addUser(t, rdb, "alice")
	const hostile = "evil\x1b]0;owned\x07\x1b[2J agent"
	s := startSession(t, rdb, session.Login{User: "alice", IP: "192.0.2.1", UserAgent: hostile})

	for _, args := range [][]string{{"show", s.Record.ID}, {"list"}} {
		if out := mustSessionsCmd(t, redis.URL(), args...); strings.ContainsAny(out, "\x1b\x07") {
			t.Errorf("sessions %s: got %q, want no escape or bell characters", strings.Join(args, " "), out)
		}
	}
	lines := jsonLines(t, mustSessionsCmd(t, redis.URL(), "show", "--json", s.Record.ID))
	if len(lines) != 1 || lines[0].UserAgent != hostile {
		t.Errorf("show --json: got %+v, want the user agent %q intact", lines, hostile)
	}
}

func TestSessionsRevoke(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	rdb := openRedis(t, redis.URL())
	s := seedSessions(t, rdb)
	id := s.laptop.Record.ID

	out := mustSessionsCmd(t, redis.URL(), "revoke", id)
	if want := fmt.Sprintf("revoked session %s of \"alice\"\n", id); out != want {
		t.Errorf("revoke: got %q, want %q", out, want)
	}
	checkKeys(t, redis.Client(t), map[string]bool{s.laptop.Key: false, s.phone.Key: true, s.bob.Key: true})
	rows := textTable(t, mustSessionsCmd(t, redis.URL(), "list", "--user", "alice"))
	if len(rows) != 1 || rows[0]["ID"] != s.phone.Record.ID {
		t.Errorf("list --user alice after the revoke: got %v, want only the phone %s", rows, s.phone.Record.ID)
	}
	checkCmdFails(t, redis.URL(), fmt.Sprintf("session %q", id), "sessions", "revoke", id)

	out = mustSessionsCmd(t, redis.URL(), "revoke", "--user", "alice")
	if want := "ended 1 session(s) of \"alice\"\n"; out != want {
		t.Errorf("revoke --user alice: got %q, want %q", out, want)
	}
	checkKeys(t, redis.Client(t), map[string]bool{s.phone.Key: false, s.bob.Key: true})
	if out := mustSessionsCmd(t, redis.URL(), "revoke", "--user", "alice"); out != "ended 0 session(s) of \"alice\"\n" {
		t.Errorf("revoke --user alice again: got %q, want ended 0", out)
	}
	checkCmdFails(t, redis.URL(), `"ghost"`, "sessions", "revoke", "--user", "ghost")
	checkKeys(t, redis.Client(t), map[string]bool{s.bob.Key: true})
}

// A session revoked from the command line is logged out on the running
// service: with SESSION_CACHE=off on its very next request, with the
// cache on (the default) within the invalidation delay, milliseconds.
func TestSessionsRevokeLogsOutABrowser(t *testing.T) {
	t.Parallel()
	for _, mode := range cacheModes {
		t.Run("SESSION_CACHE="+mode.value, func(t *testing.T) {
			t.Parallel()
			redis := redistest.Start(t)
			srv, browser := startLoggedInCache(t, redis.URL(), mode.value)
			lines := jsonLines(t, mustSessionsCmd(t, redis.URL(), "list", "--json", "--user", adminUser))
			if len(lines) != 1 {
				t.Fatalf("list --user admin: got %d sessions, want the browser's 1", len(lines))
			}
			mustSessionsCmd(t, redis.URL(), "revoke", lines[0].ID)
			loggedOutWithin(t, browser, srv, adminUser, "the revoke", mode.delay)
		})
	}
}

func TestSessionsCount(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	if out := mustSessionsCmd(t, redis.URL(), "count"); out != "0\n" {
		t.Errorf("count of nothing: got %q, want %q", out, "0\n")
	}
	if out := mustSessionsCmd(t, redis.URL(), "count", "--by-user"); out != "" {
		t.Errorf("count --by-user of nothing: got %q, want nothing", out)
	}
	seedSessions(t, openRedis(t, redis.URL()))
	if out := mustSessionsCmd(t, redis.URL(), "count"); out != "3\n" {
		t.Errorf("count: got %q, want %q", out, "3\n")
	}
	if out, want := mustSessionsCmd(t, redis.URL(), "count", "--by-user"), "alice  2\nbob    1\n"; out != want {
		t.Errorf("count --by-user: got %q, want %q", out, want)
	}
}

func TestUserUnlock(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	const password = "alice's password"
	mustUserCmd(t, redis.URL(), password+"\n", "add", "alice")
	svc := authService(t, openRedis(t, redis.URL()), auth.Config{Limits: auth.Limits{PerUser: 2, PerIP: 100, Window: time.Minute}})
	ip := netip.MustParseAddr("192.0.2.1")
	ctx := context.Background()
	for range 2 {
		if _, err := svc.CheckPassword(ctx, "alice", "wrong password", ip); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("wrong password: got %v, want %v", err, auth.ErrInvalidCredentials)
		}
	}
	var throttled *auth.ThrottledError
	if _, err := svc.CheckPassword(ctx, "alice", password, ip); !errors.As(err, &throttled) {
		t.Fatalf("right password after 2 failures: got %v, want a *auth.ThrottledError", err)
	}

	out := mustUserCmd(t, redis.URL(), "", "unlock", "alice")
	if want := "unlocked \"alice\": its failed logins are forgotten\n"; out != want {
		t.Errorf("unlock: got %q, want %q", out, want)
	}
	if _, err := svc.CheckPassword(ctx, "alice", password, ip); err != nil {
		t.Errorf("right password after the unlock: got %v, want success", err)
	}

	checkCmdFails(t, redis.URL(), `"ghost"`, "user", "unlock", "ghost")
}

func TestSessionsUsageErrors(t *testing.T) {
	t.Parallel()
	const unreachable = "redis://127.0.0.1:1/0" // never dialled: usage is checked first
	tests := []struct {
		args     []string
		redisURL string
		naming   string
	}{
		{args: []string{"list"}, naming: "REDIS_URL"},
		{args: []string{"count"}, redisURL: "http://x", naming: "REDIS_URL"},
		{args: []string{}, redisURL: unreachable, naming: "usage: server sessions"},
		{args: []string{"frobnicate"}, redisURL: unreachable, naming: "usage: server sessions"},
		{args: []string{"list", "extra"}, redisURL: unreachable, naming: "usage: server sessions"},
		{args: []string{"list", "--no-such-flag"}, redisURL: unreachable, naming: "-no-such-flag"},
		{args: []string{"list", "--user"}, redisURL: unreachable, naming: "-user"},
		{args: []string{"show"}, redisURL: unreachable, naming: "usage: server sessions"},
		{args: []string{"show", "AAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBB"}, redisURL: unreachable, naming: "usage: server sessions"},
		{args: []string{"show", "--user", "alice", "AAAAAAAAAAAAAAAA"}, redisURL: unreachable, naming: "-user"},
		{args: []string{"revoke"}, redisURL: unreachable, naming: "usage: server sessions"},
		{args: []string{"revoke", "AAAAAAAAAAAAAAAA", "--user", "alice"}, redisURL: unreachable, naming: "not both"},
		{args: []string{"count", "extra"}, redisURL: unreachable, naming: "usage: server sessions"},
		{args: []string{"count", "--by-user=maybe"}, redisURL: unreachable, naming: "-by-user"},
		{args: []string{"count", "--json"}, redisURL: unreachable, naming: "-json"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " ")+" REDIS_URL="+tt.redisURL, func(t *testing.T) {
			out, err := sessionsCmd(t, tt.redisURL, tt.args...)
			checkUsageError(t, err, tt.naming)
			if out != "" {
				t.Errorf("stdout: got %q, want nothing", out)
			}
		})
	}
}

// A public id may start with "-": it is the id wherever it stands, before
// or after a flag (CI met "show --json -Z7Ea6vMq9EIi7V8" read as a flag).
func TestIDsStartingWithADashAreIDs(t *testing.T) {
	for _, args := range [][]string{
		{"-Z7Ea6vMq9EIi7V8"},
		{"--json", "-Z7Ea6vMq9EIi7V8"},
		{"-Z7Ea6vMq9EIi7V8", "--json"},
	} {
		fs := flag.NewFlagSet("show", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		asJSON := fs.Bool("json", false, "")
		got, err := parseFlags(fs, args, true, "usage")
		if err != nil || !slices.Equal(got, []string{"-Z7Ea6vMq9EIi7V8"}) {
			t.Errorf("parseFlags(%q): got %q, %v; want the id alone", args, got, err)
		}
		if want := slices.Contains(args, "--json"); *asJSON != want {
			t.Errorf("parseFlags(%q): --json %v, want %v", args, *asJSON, want)
		}
	}
}

// storedExpiresAt is the expires_at value of every session record in
// Redis, as an operator reading one with redis-cli sees it.
func storedExpiresAt(t *testing.T, rdb *goredis.Client) []time.Time {
	t.Helper()
	keys, err := rdb.Keys(t.Context(), store.SessionPrefix+"*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	var out []time.Time
	for _, k := range keys {
		raw, err := rdb.Get(t.Context(), k).Result()
		if err != nil {
			continue // not a session record (an index, say)
		}
		var doc struct {
			Values struct {
				ExpiresAt time.Time `json:"expires_at"`
			} `json:"values"`
		}
		if json.Unmarshal([]byte(raw), &doc) == nil && !doc.Values.ExpiresAt.IsZero() {
			out = append(out, doc.Values.ExpiresAt)
		}
	}
	return out
}
