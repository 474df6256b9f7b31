package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/activity"
	"loginsvc/internal/backend"
	"loginsvc/internal/redistest"
	"loginsvc/internal/session"
	"loginsvc/internal/testkit"
)

// otherReplica is the services of another process on the same Redis, as
// a second replica wires them, with its event writer running when start.
func otherReplica(t *testing.T, redisURL string, start bool) *backend.Backend {
	t.Helper()
	be, err := backend.Open(backend.Config{
		RedisURL: redisURL,
		Activity: activity.Config{Replica: "replica-2", ServiceWide: activity.DefaultServiceWide},
	})
	if err != nil {
		t.Fatalf("backend.Open: %v", err)
	}
	t.Cleanup(func() { _ = be.Close() })
	if start {
		be.Activity.Start()
	}
	return be
}

// eventsCmd runs `server events ARGS...` against redisURL.
func eventsCmd(t *testing.T, redisURL string, args ...string) (string, error) {
	t.Helper()
	return cliCmd(t, redisURL, "", append([]string{"events"}, args...)...)
}

// eventLine is one line of `events tail --json`, every field it may have.
type eventLine struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	User      string    `json:"user"`
	Kind      string    `json:"kind"`
	Session   string    `json:"session"`
	Device    string    `json:"device"`
	IP        string    `json:"ip"`
	Replica   string    `json:"replica"`
	Method    string    `json:"method"`
	AMR       string    `json:"amr"`
	By        string    `json:"by"`
	Count     *int      `json:"count"`
	Left      *int      `json:"left"`
	NewDevice *bool     `json:"new_device"`
	Via       string    `json:"via"`
}

func eventLines(t *testing.T, out string) []eventLine {
	t.Helper()
	var lines []eventLine
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		var e eventLine
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("line %q: %v, want one JSON event", l, err)
		}
		lines = append(lines, e)
	}
	return lines
}

// seedEvents records n sign-ins, alternately of alice and bob, numbered in
// their count field so their order shows.
func seedEvents(t *testing.T, be *backend.Backend, n int) {
	t.Helper()
	ctx := activity.WithActor(context.Background(), activity.Actor{UserAgent: firefoxUA, Via: "web"})
	for i := range n {
		user := []string{"alice", "bob"}[i%2]
		be.Activity.Record(ctx, activity.Event{User: user, Kind: activity.SessionRevoked, Session: fmt.Sprintf("sess%012d", i),
			Fields: map[string]string{"by": activity.ByUser, "count": fmt.Sprint(i)}})
	}
}

func TestEventsTail(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	rdb := openRedis(t, redis.URL())
	addUser(t, rdb, "alice")
	addUser(t, rdb, "bob")
	addUser(t, rdb, "carol")
	seedEvents(t, otherReplica(t, redis.URL(), false), 25)

	// The default: the last 20 service-wide, oldest first, one a line.
	out, err := eventsCmd(t, redis.URL(), "tail")
	if err != nil {
		t.Fatalf("events tail: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 20 {
		t.Fatalf("events tail: got %d lines, want 20:\n%s", len(lines), out)
	}
	for i, want := range map[int]string{0: "count=5", 19: "count=24"} {
		l := lines[i]
		for _, part := range []string{want, "session_revoked", "sess0000000000", "replica-2", "Firefox 133 on Linux", "by=user", "via=web"} {
			if !strings.Contains(l, part) {
				t.Errorf("events tail line %d: got %q, want it to contain %q", i, l, part)
			}
		}
	}

	tests := []struct {
		args   []string
		user   string // every event's, "" for any
		counts []int
	}{
		{[]string{"tail", "--json", "-n", "3"}, "", []int{22, 23, 24}},
		{[]string{"tail", "--user", "bob", "--json", "-n", "2"}, "bob", []int{21, 23}},
		{[]string{"tail", "--json", "--user", "alice"}, "alice", []int{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24}},
		{[]string{"tail", "--json", "--user", "carol"}, "carol", nil},
	}
	for _, tc := range tests {
		name := strings.Join(tc.args, " ")
		out, err := eventsCmd(t, redis.URL(), tc.args...)
		if err != nil {
			t.Errorf("events %s: %v", name, err)
			continue
		}
		lines := eventLines(t, out)
		var counts []int
		for _, e := range lines {
			if tc.user != "" && e.User != tc.user {
				t.Errorf("events %s: got an event of %q, want only %q's", name, e.User, tc.user)
			}
			if e.ID == "" || e.Time.IsZero() || e.Kind != activity.SessionRevoked || e.By != "user" || e.Replica != "replica-2" ||
				e.Device != "Firefox 133 on Linux (Desktop)" || e.Via != "web" || e.Count == nil || e.Left != nil || e.NewDevice != nil {
				t.Errorf("events %s: got %+v, want every field of the event as recorded", name, e)
				continue
			}
			counts = append(counts, *e.Count)
		}
		if fmt.Sprint(counts) != fmt.Sprint(tc.counts) {
			t.Errorf("events %s: got events %v, want %v (oldest first)", name, counts, tc.counts)
		}
	}

	checkCmdFails(t, redis.URL(), `"dave"`, "events", "tail", "--user", "dave")
	checkCmdFails(t, redis.URL(), `"dave"`, "events", "tail", "--user", "dave", "--follow")
	for _, args := range [][]string{{"tail", "extra"}, {"tail", "-n", "x"}, {"head"}, {}} {
		var ue usageError
		if _, err := eventsCmd(t, redis.URL(), args...); !errors.As(err, &ue) {
			t.Errorf("events %q: got %v, want a usage error (exit 2)", args, err)
		}
	}
}

// --follow sees what another process records, as it is recorded, after
// the tail; with --user, only that user's.
func TestEventsTailFollow(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	rdb := openRedis(t, redis.URL())
	addUser(t, rdb, "alice")
	addUser(t, rdb, "bob")
	other := otherReplica(t, redis.URL(), true)
	seedEvents(t, otherReplica(t, redis.URL(), false), 2)

	follow := func(args ...string) (*testkit.Buffer, func() error) {
		ctx, cancel := context.WithCancel(context.Background())
		out := &testkit.Buffer{}
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, append([]string{"events", "tail", "--follow", "--json"}, args...), env{"REDIS_URL": redis.URL()}.getenv, strings.NewReader(""), out)
		}()
		return out, func() error {
			cancel()
			select {
			case err := <-done:
				return err
			case <-time.After(10 * time.Second):
				return errors.New("still following 10s after the interrupt")
			}
		}
	}
	all, stopAll := follow()
	bobs, stopBobs := follow("--user", "bob")
	testkit.Eventually(t, "the tail before following", 0, func() (bool, string) {
		return len(eventLines(t, all.String())) == 2 && len(eventLines(t, bobs.String())) == 1, all.String() + bobs.String()
	})

	other.Activity.Record(context.Background(), activity.Event{User: "alice", Kind: activity.PasswordChanged})
	other.Activity.Record(context.Background(), activity.Event{User: "bob", Kind: activity.FactorAdded, Fields: map[string]string{"method": "totp"}})
	testkit.Eventually(t, "the followers see the new events", 5*time.Second, func() (bool, string) {
		return len(eventLines(t, all.String())) == 4 && len(eventLines(t, bobs.String())) == 2, all.String() + "\n--user bob:\n" + bobs.String()
	})
	if err := stopAll(); err != nil {
		t.Errorf("events tail --follow after an interrupt: got %v, want nil", err)
	}
	if err := stopBobs(); err != nil {
		t.Errorf("events tail --follow --user bob after an interrupt: got %v, want nil", err)
	}
	got := eventLines(t, all.String())
	if got[2].Kind != activity.PasswordChanged || got[2].User != "alice" || got[3].Kind != activity.FactorAdded || got[3].Method != "totp" {
		t.Errorf("followed: got %+v, want alice's password_changed then bob's factor_added (totp)", got[2:])
	}
	for _, e := range eventLines(t, bobs.String()) {
		if e.User != "bob" {
			t.Errorf("--user bob: got an event of %q", e.User)
		}
	}
}

// What operators do from the command line is in the service-wide stream,
// said to be done by an operator (by=operator; a revocation a change
// causes says which change), from the command line (replica and via cli).
func TestCommandsRecordEvents(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	rdb := openRedis(t, redis.URL())
	login := func(user string) testSession {
		return startSession(t, rdb, session.Login{User: user, IP: "203.0.113.7", UserAgent: firefoxUA})
	}
	seen := 0
	for _, tc := range []struct {
		command string
		run     func(user string)
		want    string // kind/by of each event, in order
	}{
		{"user add", func(user string) { mustUserCmd(t, redis.URL(), "a password of "+user+"\n", "add", user) },
			"[user_created/operator]"},
		{"user passwd", func(user string) {
			login(user)
			mustUserCmd(t, redis.URL(), "a new password of "+user+"\n", "passwd", user)
		}, "[password_changed/operator session_revoked/password_change]"},
		{"user unlock", func(user string) { mustUserCmd(t, redis.URL(), "", "unlock", user) },
			"[lockout_lifted/operator]"},
		{"user mfa reset", func(user string) {
			login(user)
			mustMFACmd(t, redis.URL(), "reset", "--yes", user)
		}, "[factors_reset/operator session_revoked/operator]"},
		{"sessions revoke ID", func(user string) { mustSessionsCmd(t, redis.URL(), "revoke", login(user).Record.ID) },
			"[session_revoked/operator]"},
		{"sessions revoke --user", func(user string) {
			login(user)
			mustSessionsCmd(t, redis.URL(), "revoke", "--user", user)
		}, "[session_revoked/operator]"},
		{"user delete", func(user string) {
			login(user)
			mustUserCmd(t, redis.URL(), "", "delete", user)
		}, "[user_deleted/operator session_revoked/user_deleted]"},
	} {
		user := strings.ToLower(strings.NewReplacer(" ", "", "-", "").Replace(tc.command))
		if tc.command != "user add" {
			mustUserCmd(t, redis.URL(), "a password of "+user+"\n", "add", user)
			seen++
		}
		tc.run(user)
		out, err := eventsCmd(t, redis.URL(), "tail", "--json", "-n", "1000")
		if err != nil {
			t.Fatalf("events tail: %v", err)
		}
		lines := eventLines(t, out)
		var got []string
		for _, e := range lines[seen:] {
			got = append(got, e.Kind+"/"+e.By)
			if e.User != user || e.Replica != "cli" || e.Via != "cli" {
				t.Errorf("%s: %s of %q from replica %q via %q, want of %q from cli via cli", tc.command, e.Kind, e.User, e.Replica, e.Via, user)
			}
		}
		seen = len(lines)
		if fmt.Sprint(got) != tc.want {
			t.Errorf("events of server %s: got %v, want %s", tc.command, got, tc.want)
		}
	}
	var off strings.Builder
	if err := run(context.Background(), []string{"events", "tail"}, env{"REDIS_URL": redis.URL(), "EVENTS_STREAM": "off"}.getenv, strings.NewReader(""), &off); err == nil || !strings.Contains(err.Error(), "EVENTS_STREAM=off") {
		t.Errorf("events tail with EVENTS_STREAM=off: got %v, want an error naming EVENTS_STREAM=off", err)
	}
}
