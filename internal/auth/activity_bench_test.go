package auth

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"testing"

	"loginsvc/internal/activity"
	"loginsvc/internal/redistest"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
	"loginsvc/internal/testkit"
)

// benchUsers is how many users a login benchmark prepares, each signing
// in once, so that no login finds sessions (and notices to leave) that
// earlier ones left; with argon2id at ~50-100 ms a login, the default
// -benchtime needs a few dozen.
const benchUsers = 1000

// benchUser is one user of a login benchmark, the device cookie a
// browser that signed in before would send, and the address the user
// signs in from: each their own, as users are, so that the throttle's
// per-address budget does not end the benchmark.
type benchUser struct {
	name, device string
	ip           netip.Addr
}

// prepareUsers creates benchUsers users of the run numbered run (which
// names them apart from other runs' on a shared redis-server) with the
// password of hash, computed once, and no events recorded.
func prepareUsers(b *testing.B, w *withActivity, hash string, run int) []benchUser {
	b.Helper()
	ctx := context.Background()
	users := make([]benchUser, benchUsers)
	for i := range users {
		name := "r" + strconv.Itoa(run) + "u" + strconv.Itoa(i)
		if err := w.rdb.Users.Create(ctx, name, hash); err != nil {
			b.Fatalf("create %s: %v", name, err)
		}
		device, _, err := w.svc.DeviceCookie(ctx, name)
		if err != nil {
			b.Fatalf("device cookie of %s: %v", name, err)
		}
		users[i] = benchUser{name, device, netip.AddrFrom4([4]byte{10, byte(run), byte(i >> 8), byte(i)})}
	}
	return users
}

// BenchmarkLoginEvents measures a full form login (the password step
// with argon2id, the throttle, the device cookie, the session's start and
// its sign_in event: what POST /login/ asks of auth) with the activity
// log off, on (as the server runs it: a writer takes the events off the
// request), with the service-wide stream off (EVENTS_STREAM=off), with
// the events written before the login returns (no writer: how the
// command-line tools write them, shown for contrast), and with the Redis
// that takes the events frozen. Each login is a distinct user's first
// sign-in from a browser, a "new device" (which looks for the user's other
// sessions to notify), except in known_device.
//
// It reports, besides ns/op and allocs/op (the writer's allocations
// included: they are the process's), the Redis commands the login itself
// issues (request-cmds/op: every command but XADD, which only the writer
// sends) and the XADDs the writer sent per login once its queue drained
// (xadd/op: one for the user's stream, one for the service-wide one).
//
//	go test -run '^$' -bench LoginEvents -benchmem ./internal/auth
func BenchmarkLoginEvents(b *testing.B) {
	store.DiscardClientLogs() // the frozen Redis's timeouts are expected
	srv := redistest.Start(b)
	check := srv.Client(b)
	const password = "a-long-enough-password-1"
	hash := mustHash(b, password)
	run := 0
	for _, bc := range []struct {
		name        string
		activity    bool // an activity log at all
		serviceWide int  // EVENTS_STREAM=on: EVENTS_MAXLEN; 0: off
		start       bool // a writer (the server); none: written inline (the CLI)
		frozen      bool // the writer's Redis is a frozen redis-server
		known       bool // the browser sends the user's device cookie
	}{
		{name: "activity_off"},
		{name: "on", activity: true, serviceWide: activity.DefaultServiceWide, start: true},
		{name: "on_known_device", activity: true, serviceWide: activity.DefaultServiceWide, start: true, known: true},
		{name: "events_stream_off", activity: true, start: true},
		{name: "written_inline", activity: true, serviceWide: activity.DefaultServiceWide},
		{name: "events_redis_frozen", activity: true, serviceWide: activity.DefaultServiceWide, start: true, frozen: true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rdb := openStore(b, srv.URL(), store.Timeouts{})
			var events *store.Redis
			switch {
			case bc.frozen:
				stalled := redistest.Start(b)
				events = openStore(b, stalled.URL(), store.Timeouts{})
				stalled.Freeze(b)
				b.Cleanup(func() { stalled.Thaw(b) })
			case bc.activity:
				events = rdb
			}
			w := wireActivity(b, rdb, events, activity.Config{ServiceWide: bc.serviceWide}, bc.start)
			run++
			users := prepareUsers(b, w, hash, run)
			// The device summary's parser is built at its first use: not
			// a login's cost.
			w.sessions.DescribeUserAgent(benchUserAgent)
			ctx := context.Background()
			before := testkit.CommandCalls(b, check)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == len(users) {
					b.Fatalf("more than %d logins: run with a -benchtime of at most %dx", len(users), len(users))
				}
				u := users[i]
				i++
				var devices []string
				if bc.known {
					devices = []string{u.device}
				}
				if _, err := w.formLogin(ctx, u.name, password, u.ip, devices...); err != nil {
					b.Fatalf("login of %s: %v", u.name, err)
				}
			}
			// Once the writer is done with every sign-in: written, or
			// (frozen) still stuck, which is the point.
			if bc.activity && !bc.frozen {
				testkit.Eventually(b, "the writer done with every sign-in", 0, func() (bool, string) {
					rec, drop := w.seen.of(activity.SignIn)
					return rec+drop == i, fmt.Sprintf("%d of %d written, %d lost", rec, i, drop)
				})
			}
			calls := testkit.CommandCalls(b, check).Since(before)
			b.ReportMetric(float64(calls.Total("xadd"))/float64(i), "request-cmds/op")
			b.ReportMetric(float64(calls["xadd"])/float64(i), "xadd/op")
			if w.log != nil {
				b.ReportMetric(float64(w.log.Dropped())/float64(i), "events-lost/op")
			}
			b.Logf("%s, %d logins: commands on the login's Redis %v", bc.name, i, calls)
		})
	}
}

// BenchmarkRecordSignIn measures what recording a sign-in costs the
// login on its own, without the argon2id that drowns it in
// BenchmarkLoginEvents: auth's noteSignIn (the event built and queued,
// the notice for the user's other sessions when the device is new, the
// notice waiting for the account taken), and activity's Record alone
// (the enqueue). The user has three other live sessions (99 in
// new_device_99_others, at the default cap), which a new-device sign-in
// leaves a notice on (one Redis write each, on the request). The writer runs as in the server; at -benchtime of at most
// 4096x its queue never fills (events-lost/op shows it if it did).
//
//	go test -run '^$' -bench RecordSignIn -benchmem -benchtime 2000x ./internal/auth
func BenchmarkRecordSignIn(b *testing.B) {
	srv := redistest.Start(b)
	check := srv.Client(b)
	const password = "a-long-enough-password-1"
	hash := mustHash(b, password)
	run := 0
	for _, bc := range []struct {
		name     string
		activity bool
		call     func(ctx context.Context, w *withActivity, res LoginResult, sessionID string)
		others   int // the user's other live sessions; 0: three
	}{
		{"record_only", true, func(ctx context.Context, w *withActivity, res LoginResult, sessionID string) {
			w.log.Record(ctx, activity.Event{User: res.User, Kind: activity.SignIn, Session: sessionID,
				Fields: map[string]string{"method": "password", "amr": "pwd", "new_device": "false"}})
		}, 0},
		{"note_sign_in_known_device", true, func(ctx context.Context, w *withActivity, res LoginResult, sessionID string) {
			w.svc.noteSignIn(ctx, activity.SignIn, res, true, sessionID)
		}, 0},
		{"note_sign_in_new_device", true, func(ctx context.Context, w *withActivity, res LoginResult, sessionID string) {
			w.svc.noteSignIn(ctx, activity.SignIn, res, false, sessionID)
		}, 0},
		// At MAX_SESSIONS_PER_USER's default of 100: the worst case.
		{"note_sign_in_new_device_99_others", true, func(ctx context.Context, w *withActivity, res LoginResult, sessionID string) {
			w.svc.noteSignIn(ctx, activity.SignIn, res, false, sessionID)
		}, 99},
		{"note_sign_in_activity_off", false, func(ctx context.Context, w *withActivity, res LoginResult, sessionID string) {
			w.svc.noteSignIn(ctx, activity.SignIn, res, false, sessionID)
		}, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rdb := openStore(b, srv.URL(), store.Timeouts{})
			var events *store.Redis
			if bc.activity {
				events = rdb
			}
			w := wireActivity(b, rdb, events, activity.Config{ServiceWide: activity.DefaultServiceWide}, true)
			run++
			name := "r" + strconv.Itoa(run)
			if err := rdb.Users.Create(context.Background(), name, hash); err != nil {
				b.Fatal(err)
			}
			// The other sessions, then this request's own.
			others := cmp.Or(bc.others, 3)
			var ctx context.Context
			for range others + 1 {
				var err error
				if ctx, err = w.sessions.Load(context.Background(), ""); err != nil {
					b.Fatal(err)
				}
				if err := w.sessions.Start(ctx, session.Login{User: name, Stamp: hash, IP: "203.0.113.7", UserAgent: benchUserAgent}); err != nil {
					b.Fatal(err)
				}
			}
			cur, _ := w.sessions.Current(ctx)
			ctx = activity.WithActor(ctx, activity.Actor{IP: netip.MustParseAddr("203.0.113.7"), UserAgent: benchUserAgent, Via: "web"})
			res := LoginResult{User: name, Methods: []string{session.MethodPassword}}
			w.sessions.DescribeUserAgent(benchUserAgent)
			before := testkit.CommandCalls(b, check)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				bc.call(ctx, w, res, cur.ID)
				n++
			}
			if bc.activity {
				testkit.Eventually(b, "the writer done with every sign-in", 0, func() (bool, string) {
					rec, drop := w.seen.of(activity.SignIn)
					return rec+drop == n, fmt.Sprintf("%d of %d written, %d lost", rec, n, drop)
				})
				b.ReportMetric(float64(w.log.Dropped())/float64(n), "events-lost/op")
			}
			calls := testkit.CommandCalls(b, check).Since(before)
			b.ReportMetric(float64(calls.Total("xadd"))/float64(n), "request-cmds/op")
			b.ReportMetric(float64(calls["xadd"])/float64(n), "xadd/op")
			b.Logf("%s, %d calls: commands %v", bc.name, n, calls)
		})
	}
}
