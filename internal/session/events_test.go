package session

import (
	"sync"
	"testing"
	"time"
)

// countingEvents counts what a Manager reports, for metrics.
type countingEvents struct {
	mu      sync.Mutex
	started int
	ended   map[string]int
}

func (e *countingEvents) SessionStarted() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.started++
}

func (e *countingEvents) SessionsEnded(reason string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ended == nil {
		e.ended = map[string]int{}
	}
	e.ended[reason] += n
}

func (e *countingEvents) get(reason string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ended[reason]
}

// Every way a session ends is reported once, with its reason: a logout,
// a revoke of one and of all, the per-user cap, and a session read past
// its absolute deadline (SESSION_LIFETIME shortened under it).
func TestEventsReportEachEndWithItsReason(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ev := &countingEvents{}
	m := h.manager(Config{Lifetime: time.Hour, MaxPerUser: 2, Events: ev})
	stamp := h.addUser(t, "alice")

	// The cap ends the session with the earliest deadline, kept to the
	// millisecond: logins a millisecond apart, so "oldest" is one session.
	a, _ := login(t, m, "alice", stamp)
	time.Sleep(2 * time.Millisecond)
	_, recB := login(t, m, "alice", stamp)
	time.Sleep(2 * time.Millisecond)
	c, _ := login(t, m, "alice", stamp) // the cap ends a
	if got := ev.get("cap"); got != 1 {
		t.Errorf("ended by the cap after 3 logins with a cap of 2: got %d, want 1", got)
	}
	if userOf(t, m, a) != "" {
		t.Fatal("the oldest session survived the cap")
	}
	ctx := load(t, m, c)
	if err := m.End(ctx); err != nil {
		t.Fatalf("End: %v", err)
	}
	save(t, m, ctx)
	if got := ev.get("logout"); got != 1 {
		t.Errorf("ended by logout: got %d, want 1", got)
	}
	if err := m.Revoke(load(t, m, ""), "alice", recB.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	login(t, m, "alice", stamp)
	login(t, m, "alice", stamp)
	if n, err := m.RevokeAll(load(t, m, ""), "alice", ""); err != nil || n != 2 {
		t.Fatalf("RevokeAll: got %d, %v; want 2", n, err)
	}
	if got := ev.get("revoke"); got != 3 {
		t.Errorf("ended by revoke (one, then all of two): got %d, want 3", got)
	}

	// A replica with a much shorter lifetime reads a session stored by
	// one with a longer: past its deadline, it ends now.
	f, _ := login(t, m, "alice", stamp)
	time.Sleep(20 * time.Millisecond)
	short := h.manager(Config{Lifetime: 10 * time.Millisecond, Events: ev})
	if userOf(t, short, f) != "" {
		t.Fatal("a session past its absolute deadline was served")
	}
	if got := ev.get("expired"); got != 1 {
		t.Errorf("ended as expired: got %d, want 1", got)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.started != 6 {
		t.Errorf("sessions started: got %d, want 6", ev.started)
	}
}
