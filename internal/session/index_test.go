package session

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/store"
	"loginsvc/internal/testkit"
)

func TestLoginJoinsTheUsersIndex(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	stamp := h.addUser(t, "alice")
	short := h.manager(Config{Lifetime: time.Hour})
	long := h.manager(Config{Lifetime: 3 * time.Hour})
	idle := h.manager(Config{Lifetime: time.Hour, IdleTimeout: 10 * time.Minute})
	index := store.UserSessionsKey("alice")

	// Each login: its member is scored by its absolute deadline, which is
	// the record's EndsAt; the index key lives as long as its longest
	// member.
	tests := []struct {
		name string
		m    *Manager
	}{
		{"first login", short},
		{"a longer session extends the index", long},
		{"a shorter one with an idle timeout leaves it", idle},
	}
	var longest int64
	for _, tt := range tests {
		before := h.pexpireTime(t, index)
		token, rec := login(t, tt.m, "alice", stamp)
		hash := hashOf(token)
		score, ok := h.index(t, "alice")[hash]
		if !ok {
			t.Fatalf("%s: session %s not in %s", tt.name, hash, index)
		}
		if want := rec.EndsAt.UnixMilli(); score != want {
			t.Errorf("%s: score got %d, want %d (EndsAt %v)", tt.name, score, want, rec.EndsAt)
		}
		if d := rec.EndsAt.Sub(rec.CreatedAt); d != tt.m.Lifetime() {
			t.Errorf("%s: EndsAt - CreatedAt got %v, want the lifetime %v", tt.name, d, tt.m.Lifetime())
		}
		longest = max(longest, score)
		if got := h.pexpireTime(t, index); got != longest {
			t.Errorf("%s: index PEXPIRETIME got %d (was %d), want %d, its longest member", tt.name, got, before, longest)
		}
		// Without an idle timeout the key lives exactly to the deadline;
		// with one, never past it.
		keyEnd := h.pexpireTime(t, testkit.SessionKey(token))
		switch {
		case tt.m.IdleTimeout() == 0 && keyEnd != score:
			t.Errorf("%s: session key PEXPIRETIME got %d, want exactly the deadline %d", tt.name, keyEnd, score)
		case keyEnd > score:
			t.Errorf("%s: session key PEXPIRETIME got %d, want at most the deadline %d", tt.name, keyEnd, score)
		}
		if got := userOf(t, tt.m, token); got != "alice" {
			t.Errorf("%s: cookie logs in as %q, want alice", tt.name, got)
		}
	}
	if got := len(list(t, short, "alice")); got != 3 {
		t.Errorf("List: got %d sessions, want 3", got)
	}
}

func TestLogoutLeavesNeitherKeyNorIndexEntry(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	stamp := h.addUser(t, "alice")
	m := h.manager(Config{})
	token, _ := login(t, m, "alice", stamp)
	other, otherRec := login(t, m, "alice", stamp)

	request := load(t, m, token)
	if err := m.End(request); err != nil {
		t.Fatalf("End: %v", err)
	}
	if c := save(t, m, request); c == nil || c.Value != "" || c.MaxAge >= 0 {
		t.Errorf("cookie after End: got %v, want it cleared", c)
	}
	if h.exists(t, testkit.SessionKey(token)) {
		t.Errorf("session key exists after End, want gone")
	}
	if got, want := slices.Collect(maps.Keys(h.index(t, "alice"))), []string{hashOf(other)}; !slices.Equal(got, want) {
		t.Errorf("index after End: got %v, want only the other session %v", got, want)
	}
	if got := userOf(t, m, token); got != "" {
		t.Errorf("ended cookie logs in as %q, want nobody", got)
	}

	// The last one: the index key goes with it.
	request = load(t, m, other)
	if err := m.End(request); err != nil {
		t.Fatalf("End: %v", err)
	}
	save(t, m, request)
	if h.exists(t, store.UserSessionsKey("alice")) {
		t.Errorf("index key exists after the last session ended, want gone")
	}
	if got := list(t, m, "alice"); len(got) != 0 {
		t.Errorf("List after both ended: got %v, want none (the other was %s)", ids(got), otherRec.ID)
	}
}

func TestLoginOverASessionReplacesIt(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	stamp := h.addUser(t, "alice")
	m := h.manager(Config{})
	old, _ := login(t, m, "alice", stamp)

	request := load(t, m, old)
	if err := m.Start(request, Login{User: "alice", Stamp: stamp}); err != nil {
		t.Fatalf("Start over a session: %v", err)
	}
	c := save(t, m, request)
	if c == nil || c.Value == "" || c.Value == old {
		t.Fatalf("cookie after the second login: got %v, want a new token", c)
	}
	if h.exists(t, testkit.SessionKey(old)) {
		t.Errorf("old session key exists, want it ended by the new login")
	}
	if got, want := slices.Collect(maps.Keys(h.index(t, "alice"))), []string{hashOf(c.Value)}; !slices.Equal(got, want) {
		t.Errorf("index: got %v, want only the new session %v", got, want)
	}
}

func TestRenewMovesTheSessionToANewToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	stamp := h.addUser(t, "alice")
	m := h.manager(Config{Lifetime: time.Hour})
	old, before := login(t, m, "alice", stamp)
	score := h.index(t, "alice")[hashOf(old)]
	time.Sleep(20 * time.Millisecond) // a renewal must not move the deadline

	// A password change: the new hash is the stamp the session is bound to.
	const newStamp = "$argon2id$new"
	if err := h.rdb.Users.SetPassword(ctx, "alice", newStamp); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	request := load(t, m, old)
	if err := m.Renew(request, newStamp); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	after, ok := m.Current(request)
	c := save(t, m, request)
	if c == nil || c.Value == "" || c.Value == old {
		t.Fatalf("cookie after Renew: got %v, want a new token", c)
	}
	renewed := c.Value

	if h.exists(t, testkit.SessionKey(old)) {
		t.Errorf("old session key exists after Renew, want gone")
	}
	if got, want := h.index(t, "alice"), map[string]int64{hashOf(renewed): score}; !maps.Equal(got, want) {
		t.Errorf("index after Renew: got %v, want %v (new token, same deadline)", got, want)
	}
	if got := h.pexpireTime(t, testkit.SessionKey(renewed)); got != score {
		t.Errorf("renewed key PEXPIRETIME: got %d, want %d, the absolute deadline fixed at login", got, score)
	}
	if !ok || !after.CreatedAt.Equal(before.CreatedAt) || after.EndsAt.UnixMilli() != score || after.ID == before.ID {
		t.Errorf("Current after Renew: got %+v, want the login's record with a new id and EndsAt %d", after, score)
	}
	if got := userOf(t, m, old); got != "" {
		t.Errorf("old cookie after Renew logs in as %q, want nobody", got)
	}
	if got := userOf(t, m, renewed); got != "alice" {
		t.Errorf("new cookie after Renew logs in as %q, want alice", got)
	}

	// Renewing for a stamp that is no longer the user's keeps nothing.
	request = load(t, m, renewed)
	if err := m.Renew(request, stamp); !errors.Is(err, ErrLoginRaced) {
		t.Fatalf("Renew with a stale stamp: got %v, want %v", err, ErrLoginRaced)
	}
	save(t, m, request)
	if n, err := m.Count(ctx); err != nil || n != 0 {
		t.Errorf("sessions after a refused Renew: got %d (%v), want 0", n, err)
	}
}

func TestRevokeEndsExactlyTheNamedSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	alice, bob := h.addUser(t, "alice"), h.addUser(t, "bob")
	m := h.manager(Config{})
	tokens := map[string]string{} // public id -> cookie token
	var a []string                // alice's ids, oldest first
	for range 4 {
		token, rec := login(t, m, "alice", alice)
		tokens[rec.ID] = token
		a = append(a, rec.ID)
	}
	bobToken, bobRec := login(t, m, "bob", bob)

	// alive checks alice's sessions by List, by cookie and by raw key, and
	// that bob's session is untouched.
	alive := func(step string, want ...string) {
		t.Helper()
		got := ids(list(t, m, "alice"))
		slices.Sort(got)
		want = slices.Sorted(slices.Values(want))
		if !slices.Equal(got, want) {
			t.Errorf("%s: alice's sessions got %v, want %v", step, got, want)
		}
		for _, id := range a {
			live := slices.Contains(want, id)
			if got := userOf(t, m, tokens[id]) == "alice"; got != live {
				t.Errorf("%s: session %s usable got %v, want %v", step, id, got, live)
			}
			if got := h.exists(t, testkit.SessionKey(tokens[id])); got != live {
				t.Errorf("%s: session %s key exists got %v, want %v", step, id, got, live)
			}
		}
		if len(h.index(t, "alice")) != len(want) {
			t.Errorf("%s: alice's index got %d members, want %d", step, len(h.index(t, "alice")), len(want))
		}
		if userOf(t, m, bobToken) != "bob" || len(h.index(t, "bob")) != 1 {
			t.Errorf("%s: bob's session %s was touched", step, bobRec.ID)
		}
	}

	if err := m.Revoke(ctx, "alice", a[1]); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	alive("after Revoke", a[0], a[2], a[3])
	if err := m.Revoke(ctx, "alice", a[1]); !errors.Is(err, ErrNotFound) {
		t.Errorf("Revoke of an ended session: got %v, want %v", err, ErrNotFound)
	}

	if n, err := m.RevokeAll(ctx, "alice", a[2]); err != nil || n != 2 {
		t.Fatalf("RevokeAll except one: got %d, %v; want 2", n, err)
	}
	alive("after RevokeAll except one", a[2])

	if n, err := m.RevokeAll(ctx, "alice", ""); err != nil || n != 1 {
		t.Fatalf("RevokeAll: got %d, %v; want 1", n, err)
	}
	alive("after RevokeAll")
	if h.exists(t, store.UserSessionsKey("alice")) {
		t.Errorf("alice's index key exists with no session left, want gone")
	}
	if n, err := m.RevokeAll(ctx, "alice", ""); err != nil || n != 0 {
		t.Errorf("RevokeAll with nothing left: got %d, %v; want 0, nil", n, err)
	}
}

func TestUsersActOnlyOnTheirOwnSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	alice := h.addUser(t, "alice")
	h.addUser(t, "bob")
	m := h.manager(Config{})
	token, rec := login(t, m, "alice", alice)

	if err := m.Revoke(ctx, "bob", rec.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Revoke(bob, alice's id): got %v, want %v", err, ErrNotFound)
	}
	if n, err := m.RevokeAll(ctx, "bob", ""); err != nil || n != 0 {
		t.Errorf("RevokeAll(bob): got %d, %v; want 0, nil", n, err)
	}
	if got := userOf(t, m, token); got != "alice" {
		t.Errorf("alice's cookie after bob's revokes logs in as %q, want alice", got)
	}
	// Neither the cookie token nor the key hash names a session: only
	// the public id does.
	for _, notAnID := range []string{token, hashOf(token), token[:16], hashOf(token)[:16]} {
		if err := m.Revoke(ctx, "alice", notAnID); !errors.Is(err, ErrNotFound) {
			t.Errorf("Revoke(alice, %q): got %v, want %v", notAnID, err, ErrNotFound)
		}
	}
	if got := userOf(t, m, token); got != "alice" {
		t.Errorf("alice's cookie after revokes naming her token logs in as %q, want alice", got)
	}
}

// An id from a URL or the command line that cannot be an id is refused
// before any question to Redis: a manager whose Redis is down answers
// ErrNotFound, not ErrUnavailable.
func TestMalformedIDsAreNotFoundWithoutRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := nowhere(t)
	for _, id := range []string{"", "short", strings.Repeat("a", 17), "aaaaaaaaaaaaaaa/", "../../../../etc/", "aaaaaaaaaaaaaa\u00e9", "aaaaaaaaaaaaaa\x00\n", "aaaaaaaaaaaaaa=="} {
		if err := m.Revoke(ctx, "alice", id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Revoke(%q): got %v, want %v", id, err, ErrNotFound)
		}
		if _, err := m.Find(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Find(%q): got %v, want %v", id, err, ErrNotFound)
		}
	}
	// A well-formed id does reach Redis.
	if err := m.Revoke(ctx, "alice", strings.Repeat("a", 16)); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Revoke of a well-formed id with Redis down: got %v, want %v", err, store.ErrUnavailable)
	}
}

func TestIdleSessionLeavesTheIndex(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	stamp := h.addUser(t, "alice")
	const idle = time.Second
	m := h.manager(Config{Lifetime: time.Hour, IdleTimeout: idle})
	token, rec := login(t, m, "alice", stamp)
	if got := ids(list(t, m, "alice")); !slices.Equal(got, []string{rec.ID}) {
		t.Fatalf("List right after login: got %v, want [%s]", got, rec.ID)
	}

	sleepPast(time.Now().Add(idle))
	if h.exists(t, testkit.SessionKey(token)) {
		t.Fatalf("session key exists after the idle timeout, want Redis to have dropped it")
	}
	if got := len(h.index(t, "alice")); got != 1 {
		t.Fatalf("index before it is read: got %d members, want the stale 1 (pruning is on read)", got)
	}
	if got := list(t, m, "alice"); len(got) != 0 {
		t.Errorf("List after the idle timeout: got %v, want none", ids(got))
	}
	if got := h.index(t, "alice"); len(got) != 0 {
		t.Errorf("index after List: got %v, want pruned", got)
	}
	if got := userOf(t, m, token); got != "" {
		t.Errorf("idle cookie logs in as %q, want nobody", got)
	}
}

func TestExpiredSessionIsPrunedByItsScore(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	stamp := h.addUser(t, "alice")
	short := h.manager(Config{Lifetime: time.Second})
	long := h.manager(Config{Lifetime: time.Hour})
	expiring, _ := login(t, short, "alice", stamp)
	_, kept := login(t, long, "alice", stamp)

	sleepPast(time.Now().Add(time.Second))
	if got := len(h.index(t, "alice")); got != 2 {
		t.Fatalf("index before it is read: got %d members, want 2 (the longer session keeps the key)", got)
	}
	// A login prunes members past their deadline without a read of any
	// session, so the index of a user who never lists stays bounded.
	_, fresh := login(t, long, "alice", stamp)
	if _, ok := h.index(t, "alice")[hashOf(expiring)]; ok {
		t.Errorf("expired session still in the index after the next login, want pruned by its score")
	}
	if got, want := ids(list(t, long, "alice")), []string{fresh.ID, kept.ID}; !slices.Equal(got, want) {
		t.Errorf("List: got %v, want %v, newest first", got, want)
	}
	if got := userOf(t, short, expiring); got != "" {
		t.Errorf("expired cookie logs in as %q, want nobody", got)
	}
}

// A session past a lifetime that was shortened since its login ends when
// its cookie comes back, and leaves its user's index at once.
func TestSessionPastAShortenedLifetimeEndsOnLoad(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	stamp := h.addUser(t, "alice")
	token, _ := login(t, h.manager(Config{Lifetime: time.Hour}), "alice", stamp)
	time.Sleep(20 * time.Millisecond)

	shortened := h.manager(Config{Lifetime: 10 * time.Millisecond})
	request := load(t, shortened, token)
	if got := shortened.User(request); got != "" {
		t.Errorf("user past the shortened lifetime: got %q, want nobody", got)
	}
	if c := save(t, shortened, request); c == nil || c.MaxAge >= 0 {
		t.Errorf("cookie: got %v, want it cleared", c)
	}
	if h.exists(t, testkit.SessionKey(token)) {
		t.Errorf("session key exists, want it ended")
	}
	if got := h.index(t, "alice"); len(got) != 0 {
		t.Errorf("index: got %v, want the ended session gone at once", got)
	}
}

func TestCapEndsTheOldestSessions(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	stamp := h.addUser(t, "alice")
	m := h.manager(Config{MaxPerUser: 3})
	tokens := make([]string, 5)
	records := make([]Record, 5)
	for i := range tokens {
		tokens[i], records[i] = login(t, m, "alice", stamp)
		time.Sleep(2 * time.Millisecond) // distinct deadlines, so "oldest" is well defined
	}

	want := []string{records[4].ID, records[3].ID, records[2].ID}
	if got := ids(list(t, m, "alice")); !slices.Equal(got, want) {
		t.Errorf("List after 5 logins with a cap of 3: got %v, want the 3 newest, newest first %v", got, want)
	}
	if got := len(h.index(t, "alice")); got != 3 {
		t.Errorf("index: got %d members, want 3", got)
	}
	for i, token := range tokens {
		live := i >= 2
		if got := h.exists(t, testkit.SessionKey(token)); got != live {
			t.Errorf("login %d: key exists got %v, want %v", i, got, live)
		}
		if got := userOf(t, m, token) == "alice"; got != live {
			t.Errorf("login %d: cookie works got %v, want %v", i, got, live)
		}
	}
	if got := strings.Count(h.log.String(), "oldest sessions ended"); got != 2 {
		t.Errorf("log lines about the cap: got %d, want 2 (one per login past it)\n%s", got, h.log.String())
	}
}

func TestEachFindAndCountSeeEverySession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	m := h.manager(Config{})

	// 1,500 sessions of three users, more than several SCAN batches, as
	// the codec writes them, and one that does not decode.
	const n = 1500
	users := []string{"alice", "bob", "carol"}
	wantPerUser := map[string]int{}
	hashes := make([]string, n)
	now := time.Now().UTC()
	pipe := h.raw.Pipeline()
	for i := range n {
		user := users[i%len(users)]
		wantPerUser[user]++
		hashes[i] = hashOf(fmt.Sprintf("token-%04d", i))
		b, err := m.codec.Encode(now.Add(time.Hour), map[string]any{
			fieldUsername: user,
			fieldLoginAt:  now.Add(-time.Duration(i) * time.Second).Format(time.RFC3339Nano),
			fieldLoginIP:  "192.0.2.1",
		})
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		pipe.Set(ctx, store.SessionKey(hashes[i]), b, time.Hour)
	}
	pipe.Set(ctx, store.SessionKey("garbage"), "not a session", time.Hour)
	pipe.Set(ctx, "user:{alice}", "not a session", 0)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("writing sessions: %v", err)
	}

	perUser := map[string]int{}
	seen := map[string]bool{}
	err := m.Each(ctx, func(r Record) error {
		perUser[r.User]++
		seen[r.ID] = true
		return nil
	})
	if err != nil {
		t.Fatalf("Each: %v", err)
	}
	if !maps.Equal(perUser, wantPerUser) || len(seen) != n {
		t.Errorf("Each: got %v in %d distinct ids, want %v in %d", perUser, len(seen), wantPerUser, n)
	}
	if got, err := m.Count(ctx); err != nil || got != n+1 {
		t.Errorf("Count: got %d, %v; want %d (every session key, readable or not)", got, err, n+1)
	}

	i := 1234
	rec, err := m.Find(ctx, publicID(hashes[i]))
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	if rec.User != users[i%len(users)] || rec.IP != "192.0.2.1" || rec.ID != publicID(hashes[i]) {
		t.Errorf("Find: got %+v, want session %d of %s", rec, i, users[i%len(users)])
	}
	if _, err := m.Find(ctx, publicID(hashOf("no such token"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("Find of a missing id: got %v, want %v", err, ErrNotFound)
	}
}
