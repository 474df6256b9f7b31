package activity_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"loginsvc/internal/activity"
	"loginsvc/internal/redistest"
	"loginsvc/internal/store"
	"loginsvc/internal/testkit"
)

// open is store.Open with the production timeouts, closed when the test
// ends.
func open(t testing.TB, url string) *store.Redis {
	t.Helper()
	rdb, err := store.Open(url, store.Timeouts{})
	if err != nil {
		t.Fatalf("store.Open(%q): %v", url, err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// The caps hold under 10,000 events: a user's stream stays near 200
// entries and the service-wide one near its cap. MAXLEN ~ trims only
// whole macro nodes (100 entries by default), so "near" is a bound, not
// an exact length.
func TestCapsHoldUnderManyEvents(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := open(t, srv.URL())
	const serviceWide, perUser = 1000, 200
	// Without Start, Record writes before it returns: no event is dropped
	// for a full queue, so every one of the 10,000 reaches Redis.
	log := activity.New(rdb.Events, activity.Config{ServiceWide: serviceWide}, nil)
	users := []string{"alice", "bob", "carol", "dave"}
	var wg sync.WaitGroup
	for _, user := range users {
		wg.Go(func() {
			for i := range 10_000 / len(users) {
				log.Record(context.Background(), activity.Event{User: user, Kind: activity.SignIn, Fields: map[string]string{"count": fmt.Sprint(i)}})
			}
		})
	}
	wg.Wait()
	if n := log.Dropped(); n != 0 {
		t.Fatalf("dropped %d events writing to a live Redis, want 0", n)
	}
	c := srv.Client(t)
	for _, tc := range []struct {
		key      string
		min, max int64
	}{
		{"events", serviceWide, serviceWide + 200},
		{"user:{alice}:events", perUser, perUser + 100},
		{"user:{dave}:events", perUser, perUser + 100},
	} {
		n, err := c.XLen(context.Background(), tc.key).Result()
		if err != nil {
			t.Fatalf("XLEN %s: %v", tc.key, err)
		}
		if n < tc.min || n > tc.max {
			t.Errorf("XLEN %s after 10,000 events: got %d, want %d to %d", tc.key, n, tc.min, tc.max)
		}
	}
	// The newest are the ones kept.
	recent, err := log.Recent(context.Background(), "alice", time.Unix(0, 0), 1)
	if err != nil || len(recent) != 1 || recent[0].Fields["count"] != "2499" {
		t.Errorf("alice's newest event: got %+v, %v, want count 2499", recent, err)
	}
}

// counter is an Observer counting events recorded and dropped.
type counter struct{ recorded, dropped atomic.Int64 }

func (c *counter) EventRecorded(string) { c.recorded.Add(1) }
func (c *counter) EventDropped(string)  { c.dropped.Add(1) }

// With Redis down or frozen, Record still never waits for it: the queue
// fills, and what does not fit is dropped and counted, at once. Frozen,
// the writer is stuck on its first XADD for the whole test, so every
// event past the queue's room must have been dropped by Record itself: a
// Record that waited for room would hang the test instead.
func TestRecordNeverWaitsForRedis(t *testing.T) {
	t.Parallel()
	const n = 10_000
	for _, tc := range []struct {
		name       string
		breakRedis func(t *testing.T, srv *redistest.Server)
		timeouts   store.Timeouts
		minDropped int64
	}{
		// Refused connections: the writer fails fast, so some events are
		// written off as failures and the rest as a full queue.
		{"down", func(t *testing.T, srv *redistest.Server) { srv.Stop(t) }, store.Timeouts{}, 1},
		// No answer, for longer than the test takes: the queue holds
		// activity's 4096 and the writer one more.
		{"frozen", func(t *testing.T, srv *redistest.Server) { srv.Freeze(t) },
			store.Timeouts{IO: time.Minute, Op: time.Minute}, n - 4096 - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			rdb, err := store.Open(srv.URL(), tc.timeouts)
			if err != nil {
				t.Fatalf("store.Open: %v", err)
			}
			tc.breakRedis(t, srv)
			obs := &counter{}
			log := activity.New(rdb.Events, activity.Config{ServiceWide: 1000, Observe: obs}, nil)
			log.Start()

			for i := range n {
				log.Record(context.Background(), activity.Event{User: "alice", Kind: activity.SignIn, Fields: map[string]string{"count": fmt.Sprint(i)}})
			}
			if d := log.Dropped(); d < tc.minDropped {
				t.Errorf("Dropped() after %d Records with Redis %s: got %d, want at least %d", n, tc.name, d, tc.minDropped)
			}
			if d := obs.dropped.Load(); d < tc.minDropped {
				t.Errorf("observer's dropped count: got %d, want at least %d (the metric)", d, tc.minDropped)
			}
			if r := obs.recorded.Load(); r != 0 {
				t.Errorf("observer's recorded count with Redis %s: got %d, want 0", tc.name, r)
			}
			// Close gives up on what it cannot write after a few seconds;
			// the deadline here is only a guard against a hang.
			done := make(chan struct{})
			go func() { log.Close(); close(done) }()
			select {
			case <-done:
			case <-time.After(testkit.WaitTimeout):
				t.Fatalf("Close with Redis %s: still waiting after %v, want it to give up after a few seconds", tc.name, testkit.WaitTimeout)
			}
			// The writer may still be stuck in its XADD: it ends with the
			// connection, which closes after the server is killed.
			t.Cleanup(func() { _ = rdb.Close() })
		})
	}
}
