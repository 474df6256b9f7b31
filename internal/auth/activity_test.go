package auth

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"loginsvc/internal/activity"
	"loginsvc/internal/redistest"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
	"loginsvc/internal/testkit"
)

// eventCounter is an activity.Observer counting the events written and
// those lost, by kind, as the metrics do.
type eventCounter struct {
	mu       sync.Mutex
	recorded map[string]int
	dropped  map[string]int
	total    atomic.Int64 // recorded + dropped: how many the writer is done with
}

func (c *eventCounter) EventRecorded(kind string) { c.count(&c.recorded, kind) }
func (c *eventCounter) EventDropped(kind string)  { c.count(&c.dropped, kind) }

func (c *eventCounter) count(m *map[string]int, kind string) {
	c.mu.Lock()
	if *m == nil {
		*m = map[string]int{}
	}
	(*m)[kind]++
	c.mu.Unlock()
	c.total.Add(1)
}

// of is how many events of kind were recorded and dropped.
func (c *eventCounter) of(kind string) (recorded, dropped int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recorded[kind], c.dropped[kind]
}

// withActivity is a Service on srv wired as backend.New wires it (which
// this package's tests cannot import): the session manager and the
// Service share one activity.Log, whose events go to events (srv's own
// store when it is one opened on srv) and whose device summaries are the
// session manager's. Without start the log writes each event before
// Record returns, as the command-line tools do; with it, a writer takes
// them off the request, as the server does. events nil: no activity log
// at all (Record is then a no-op), the baseline a benchmark compares with.
type withActivity struct {
	rdb      *store.Redis
	sessions *session.Manager
	svc      *Service
	log      *activity.Log
	seen     *eventCounter
	logs     *testkit.Buffer
}

func wireActivity(tb testing.TB, rdb, events *store.Redis, cfg activity.Config, start bool) *withActivity {
	tb.Helper()
	w := &withActivity{rdb: rdb, seen: &eventCounter{}, logs: &testkit.Buffer{}}
	log := slog.New(slog.NewTextHandler(w.logs, nil))
	var sessions *session.Manager
	if events != nil {
		cfg.Describe = func(ua string) string { return sessions.DescribeUserAgent(ua) }
		cfg.Observe = w.seen
		w.log = activity.New(events.Events, cfg, log)
	}
	sessions = session.New(rdb.Sessions, session.Config{Lifetime: 12 * time.Hour, Activity: w.log}, log)
	svc, err := NewService(rdb, sessions, Config{Activity: w.log})
	if err != nil {
		tb.Fatalf("NewService: %v", err)
	}
	w.sessions, w.svc = sessions, svc
	if start && w.log != nil {
		w.log.Start()
		tb.Cleanup(w.log.Close)
	}
	return w
}

// openStore is store.Open on url with timeouts t, closed when the test
// ends.
func openStore(tb testing.TB, url string, t store.Timeouts) *store.Redis {
	tb.Helper()
	rdb, err := store.Open(url, t)
	if err != nil {
		tb.Fatalf("store.Open(%q): %v", url, err)
	}
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// formLogin is what POST /login/ asks of auth for a user without a
// second factor, from ip: a fresh request's session, then Login, which
// checks the password and starts the session.
func (w *withActivity) formLogin(ctx context.Context, user, password string, ip netip.Addr, deviceCookies ...string) (LoginResult, error) {
	ctx, err := w.sessions.Load(ctx, "")
	if err != nil {
		return LoginResult{}, err
	}
	ctx = activity.WithActor(ctx, activity.Actor{IP: ip, UserAgent: benchUserAgent, Via: "web"})
	return w.svc.Login(ctx, LoginRequest{Username: user, Password: password, IP: ip, UserAgent: benchUserAgent, DeviceCookies: deviceCookies})
}

// testIP is the address of the tests' logins.
var testIP = netip.MustParseAddr("203.0.113.7")

// benchUserAgent is the browser of the tests' logins.
const benchUserAgent = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"

// With the Redis that takes the events not answering (the Cluster node
// of the service-wide stream down, say), a login still completes, without
// waiting for its events: it returns while the writer is still stuck on
// the sign-in's XADD, and only later is that event counted as lost and
// the loss logged; it is not retried.
func TestLoginDoesNotWaitForTheEventWriter(t *testing.T) {
	t.Parallel()
	main, stalled := redistest.Start(t), redistest.Start(t)
	rdb := openStore(t, main.URL(), store.Timeouts{})
	// Deadlines longer than the production 800ms make "the login returned
	// before the writer gave up" certain, not a race the machine's load
	// could lose; the writer still gives up, which is what is counted.
	events := openStore(t, stalled.URL(), store.Timeouts{IO: 3 * time.Second, Op: 3 * time.Second})
	w := wireActivity(t, rdb, events, activity.Config{ServiceWide: activity.DefaultServiceWide}, true)
	const password = "alice-has-a-long-password-1"
	if err := w.svc.users.Create(context.Background(), "alice", mustHash(t, password)); err != nil {
		t.Fatalf("create alice: %v", err)
	}
	stalled.Freeze(t)

	res, err := w.formLogin(context.Background(), "alice", password, testIP)
	if err != nil || res.User != "alice" {
		t.Fatalf("login with the events' Redis frozen: got %+v, %v; want alice logged in", res, err)
	}
	if list, err := w.sessions.List(context.Background(), "alice"); err != nil || len(list) != 1 {
		t.Fatalf("alice's sessions after the login: got %d, %v; want 1", len(list), err)
	}
	if n := w.seen.total.Load(); n != 0 {
		t.Fatalf("when the login returned, the writer was done with %d events, want 0: the login waited for Redis to answer or fail its XADD", n)
	}
	if d := w.log.Dropped(); d != 0 {
		t.Fatalf("when the login returned, %d events were already dropped, want 0 (the writer was still waiting)", d)
	}
	testkit.Eventually(t, "the sign-in counted as lost", 0, func() (bool, string) {
		rec, drop := w.seen.of(activity.SignIn)
		return drop == 1, fmt.Sprintf("sign_in recorded %d, dropped %d", rec, drop)
	})
	if d := w.log.Dropped(); d != 1 {
		t.Errorf("Dropped() after the writer gave up: got %d, want 1", d)
	}
	if logs := w.logs.String(); !strings.Contains(logs, "security events lost") || !strings.Contains(logs, "kind=sign_in") {
		t.Errorf("log after the lost event: got\n%s\nwant a warning naming kind=sign_in", logs)
	}
}

// mustHash is alice's password hashed as AddUser hashes it, without the
// event AddUser records.
func mustHash(tb testing.TB, password string) string {
	tb.Helper()
	h, err := newHasher(1, time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	hash, err := h.hash(context.Background(), password)
	if err != nil {
		tb.Fatal(err)
	}
	return hash
}

// Every account change that no user made for themselves says who did:
// the operator (the command-line tools) or the bootstrap (the server
// creating BOOTSTRAP_USER at start), as a revocation does.
func TestOperatorActionsSayBy(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := openStore(t, srv.URL(), store.Timeouts{})
	w := wireActivity(t, rdb, rdb, activity.Config{ServiceWide: activity.DefaultServiceWide}, false)
	// As cmd/server's main puts it on every command's context.
	cli := activity.WithActor(context.Background(), activity.Actor{Via: "cli"})
	const password = "a-long-enough-password-1"
	login := func(t *testing.T, user string) {
		t.Helper()
		if _, err := w.formLogin(context.Background(), user, password, testIP); err != nil {
			t.Fatalf("login of %s: %v", user, err)
		}
	}
	type want struct{ kind, by string }
	for _, tc := range []struct {
		name   string
		user   string
		setup  func(t *testing.T, user string)
		action func(ctx context.Context, user string) error
		want   []want
	}{
		{"server user add", "add", nil,
			func(ctx context.Context, user string) error { return w.svc.AddUser(ctx, user, password) },
			[]want{{activity.UserCreated, activity.ByOperator}}},
		{"bootstrap user at start", "boot", nil,
			func(_ context.Context, user string) error {
				// The server's start, whose context has no actor.
				_, err := w.svc.EnsureUser(context.Background(), user, password)
				return err
			},
			[]want{{activity.UserCreated, activity.ByBootstrap}}},
		{"server user passwd", "passwd", login,
			func(ctx context.Context, user string) error {
				_, err := w.svc.SetPassword(ctx, user, "another-long-password-2")
				return err
			},
			[]want{{activity.PasswordChanged, activity.ByOperator}, {activity.SessionRevoked, activity.ByPasswordChange}}},
		{"server user unlock", "unlock", nil,
			func(ctx context.Context, user string) error { return w.svc.Unlock(ctx, user) },
			[]want{{activity.LockoutLifted, activity.ByOperator}}},
		{"server user mfa reset", "mfa", login,
			func(ctx context.Context, user string) error {
				_, err := w.svc.ResetFactors(ctx, user)
				return err
			},
			[]want{{activity.FactorsReset, activity.ByOperator}, {activity.SessionRevoked, activity.ByOperator}}},
		{"server sessions revoke --user", "revoke", login,
			func(ctx context.Context, user string) error {
				_, err := w.sessions.RevokeAll(activity.Because(ctx, activity.ByOperator), user, "")
				return err
			},
			[]want{{activity.SessionRevoked, activity.ByOperator}}},
		{"server user delete", "del", login,
			func(ctx context.Context, user string) error {
				_, err := w.svc.DeleteUser(ctx, user)
				return err
			},
			[]want{{activity.UserDeleted, activity.ByOperator}, {activity.SessionRevoked, activity.ByUserDeleted}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want[0].kind != activity.UserCreated {
				if err := w.svc.AddUser(cli, tc.user, password); err != nil {
					t.Fatalf("AddUser(%s): %v", tc.user, err)
				}
			}
			if tc.setup != nil {
				tc.setup(t, tc.user)
			}
			before, err := rdb.Events.Len(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.action(cli, tc.user); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			// The service-wide stream: the only one that keeps a deleted
			// user's events.
			all, err := w.log.Tail(context.Background(), 1000)
			if err != nil {
				t.Fatal(err)
			}
			var got []want
			for _, e := range all[before:] {
				got = append(got, want{e.Kind, e.Fields["by"]})
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("events of %s: got %v, want %v (kind, by)", tc.name, got, tc.want)
			}
		})
	}
}
