package store_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"loginsvc/internal/store"
)

func TestCreateStoresTheSessionAndIndexesIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, rdb, raw := openRedis(t)
	st := rdb.Sessions
	now := time.Now()
	owner := addUser(t, rdb, "alice", now.Add(2*time.Hour))

	hash, expiry := newHash(), now.Add(time.Hour)
	if n, err := st.Create(ctx, hash, []byte("doc 1"), expiry, owner, 100); err != nil || n != 0 {
		t.Fatalf("Create: got %d ended, %v; want 0, nil", n, err)
	}
	if got, err := raw.Get(ctx, store.SessionKey(hash)).Result(); err != nil || got != "doc 1" {
		t.Errorf("GET session: got %q, %v; want %q", got, err, "doc 1")
	}
	if got, want := pexpireTime(t, raw, store.SessionKey(hash)), expiry.UnixMilli(); got != want {
		t.Errorf("session key PEXPIRETIME: got %d, want %d (the expiry given)", got, want)
	}
	index := store.UserSessionsKey("alice")
	if got, want := indexMembers(t, raw, "alice"), map[string]int64{hash: owner.Until.UnixMilli()}; !maps.Equal(got, want) {
		t.Errorf("index %s: got %v, want %v (scored by the absolute deadline)", index, got, want)
	}
	if got, want := pexpireTime(t, raw, index), owner.Until.UnixMilli(); got != want {
		t.Errorf("index PEXPIRETIME: got %d, want %d (its only member's deadline)", got, want)
	}

	// The index lives as long as its longest-lived member, whatever the
	// order they join in.
	for _, tt := range []struct {
		name  string
		until time.Time
		want  time.Time
	}{
		{"a shorter session keeps the index's expiry", now.Add(30 * time.Minute), owner.Until},
		{"a longer session extends it", now.Add(5 * time.Hour), now.Add(5 * time.Hour)},
	} {
		o := owner
		o.Until = tt.until
		if _, err := st.Create(ctx, newHash(), []byte("doc"), now.Add(time.Minute), o, 100); err != nil {
			t.Fatalf("%s: Create: %v", tt.name, err)
		}
		if got, want := pexpireTime(t, raw, index), tt.want.UnixMilli(); got != want {
			t.Errorf("%s: index PEXPIRETIME: got %d, want %d", tt.name, got, want)
		}
	}
}

func TestCreateRefusesAUserThatChanged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	until := time.Now().Add(time.Hour)
	tests := []struct {
		name    string
		setup   func(t *testing.T, rdb *store.Redis)
		stamp   string
		wantErr error
	}{
		{"user and stamp current", func(*testing.T, *store.Redis) {}, hashA, nil},
		{"no stamp, user exists", func(*testing.T, *store.Redis) {}, "", nil},
		{"password changed", func(t *testing.T, rdb *store.Redis) {
			if err := rdb.Users.SetPassword(ctx, "alice", hashB); err != nil {
				t.Fatalf("SetPassword: %v", err)
			}
		}, hashA, store.ErrOwnerChanged},
		{"user deleted", func(t *testing.T, rdb *store.Redis) {
			if err := rdb.Users.Delete(ctx, "alice"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}, hashA, store.ErrOwnerChanged},
		{"user deleted, no stamp", func(t *testing.T, rdb *store.Redis) {
			if err := rdb.Users.Delete(ctx, "alice"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}, "", store.ErrOwnerChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, rdb, raw := openRedis(t)
			addUser(t, rdb, "alice", until)
			tt.setup(t, rdb)

			hash := newHash()
			_, err := rdb.Sessions.Create(ctx, hash, []byte("doc"), until, store.Owner{User: "alice", Stamp: tt.stamp, Until: until}, 100)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Create: got %v, want %v", err, tt.wantErr)
			}
			kept := tt.wantErr == nil
			if got := keyExists(t, raw, store.SessionKey(hash)); got != kept {
				t.Errorf("session key exists: got %v, want %v", got, kept)
			}
			if got := keyExists(t, raw, store.UserSessionsKey("alice")); got != kept {
				t.Errorf("index key exists: got %v, want %v", got, kept)
			}
		})
	}
}

func TestCreateNeverOverwritesAnExistingKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, rdb, raw := openRedis(t)
	owner := addUser(t, rdb, "mallory", time.Now().Add(time.Hour))

	hash := newHash()
	key := store.SessionKey(hash)
	if err := raw.Set(ctx, key, "someone else's session", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if _, err := rdb.Sessions.Create(ctx, hash, []byte("mallory's"), time.Now().Add(time.Hour), owner, 100); err == nil {
		t.Errorf("Create onto an existing key: got no error, want one")
	}
	if got, _ := raw.Get(ctx, key).Result(); got != "someone else's session" {
		t.Errorf("existing value: got %q, want it untouched", got)
	}
	if ttl, _ := raw.TTL(ctx, key).Result(); ttl != -1 {
		t.Errorf("existing key's TTL: got %v, want none (-1ns)", ttl)
	}
	if got := indexMembers(t, raw, "mallory"); len(got) != 0 {
		t.Errorf("mallory's index: got %v, want the refused session not in it", got)
	}
}

func TestCreateEndsTheOldestSessionsPastTheCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, rdb, raw := openRedis(t)
	now := time.Now()
	owner := addUser(t, rdb, "alice", now)
	const limit = 3

	// Five sessions, each ending a minute after the one before.
	hashes := make([]string, 5)
	for i := range hashes {
		hashes[i] = newHash()
		o := owner
		o.Until = now.Add(time.Duration(i+1) * time.Minute)
		n, err := rdb.Sessions.Create(ctx, hashes[i], []byte("doc"), o.Until, o, limit)
		want := 0
		if i >= limit {
			want = 1 // the oldest one
		}
		if err != nil || n != want {
			t.Fatalf("Create %d: got %d ended, %v; want %d, nil", i, n, err, want)
		}
	}
	got := slices.Sorted(maps.Keys(indexMembers(t, raw, "alice")))
	if want := slices.Sorted(slices.Values(hashes[2:])); !slices.Equal(got, want) {
		t.Errorf("index after 5 sessions with a cap of 3: got %v, want the 3 newest %v", got, want)
	}
	for i, h := range hashes {
		if live, want := keyExists(t, raw, store.SessionKey(h)), i >= 2; live != want {
			t.Errorf("session %d's key exists: got %v, want %v", i, live, want)
		}
	}

	// A session that ends before all the others (a renewed old one) is
	// never the one the cap ends: it was just handed out.
	early := newHash()
	o := owner
	o.Until = now.Add(30 * time.Second)
	if n, err := rdb.Sessions.Create(ctx, early, []byte("doc"), o.Until, o, limit); err != nil || n != 1 {
		t.Fatalf("Create of an early-ending session at the cap: got %d ended, %v; want 1, nil", n, err)
	}
	got = slices.Sorted(maps.Keys(indexMembers(t, raw, "alice")))
	if want := slices.Sorted(slices.Values([]string{early, hashes[3], hashes[4]})); !slices.Equal(got, want) {
		t.Errorf("index: got %v, want the new session and the 2 newest others %v", got, want)
	}
	if keyExists(t, raw, store.SessionKey(hashes[2])) || !keyExists(t, raw, store.SessionKey(early)) {
		t.Errorf("after the cap: want session 2 ended and the new one kept")
	}
}

func TestUpdateSavesOnlyASessionThatStillExists(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		// meanwhile runs between the read and the update.
		meanwhile func(t *testing.T, rdb *store.Redis, raw *redis.Client, hash string)
		wantErr   error
	}{
		{"still there: saved", func(*testing.T, *store.Redis, *redis.Client, string) {}, nil},
		{"deleted meanwhile: not resurrected", func(t *testing.T, rdb *store.Redis, _ *redis.Client, hash string) {
			if err := rdb.Sessions.Delete(ctx, hash, "alice"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}, store.ErrSessionGone},
		{"expired meanwhile: not resurrected", func(t *testing.T, _ *store.Redis, raw *redis.Client, hash string) {
			if err := raw.PExpire(ctx, store.SessionKey(hash), time.Millisecond).Err(); err != nil {
				t.Fatalf("PEXPIRE: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}, store.ErrSessionGone},
	}
	// update is Update, or UpdateEach with one session: the pipelined
	// form (a notice to every session of a user) keeps the same promise.
	type update func(rdb *store.Redis, hash string, b []byte, expiry time.Time) error
	ways := map[string]update{
		"Update": func(rdb *store.Redis, hash string, b []byte, expiry time.Time) error {
			return rdb.Sessions.Update(ctx, hash, b, expiry)
		},
		"UpdateEach": func(rdb *store.Redis, hash string, b []byte, expiry time.Time) error {
			n, err := rdb.Sessions.UpdateEach(ctx, []store.Stored{{Hash: hash, Data: b, Expires: expiry}})
			if err == nil && n == 0 {
				return store.ErrSessionGone
			}
			return err
		},
	}
	for way, update := range ways {
		for _, tt := range tests {
			t.Run(way+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				_, rdb, raw := openRedis(t)
				owner := addUser(t, rdb, "alice", time.Now().Add(time.Hour))
				hash := newHash()
				if _, err := rdb.Sessions.Create(ctx, hash, []byte("v1"), time.Now().Add(time.Hour), owner, 100); err != nil {
					t.Fatalf("Create: %v", err)
				}
				if _, found, err := rdb.Sessions.Find(ctx, hash); err != nil || !found {
					t.Fatalf("Find: got found=%v, %v; want found", found, err)
				}
				tt.meanwhile(t, rdb, raw, hash)

				expiry := time.Now().Add(10 * time.Minute)
				err := update(rdb, hash, []byte("v2"), expiry)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("%s: got %v, want %v", way, err, tt.wantErr)
				}
				got, getErr := raw.Get(ctx, store.SessionKey(hash)).Result()
				switch {
				case tt.wantErr == nil && got != "v2":
					t.Errorf("stored session: got %q (%v), want %q", got, getErr, "v2")
				case tt.wantErr == nil && pexpireTime(t, raw, store.SessionKey(hash)) != expiry.UnixMilli():
					t.Errorf("PEXPIRETIME after Update: got %d, want %d", pexpireTime(t, raw, store.SessionKey(hash)), expiry.UnixMilli())
				case tt.wantErr != nil && !errors.Is(getErr, redis.Nil):
					t.Errorf("stored session: got %q (%v), want no key", got, getErr)
				}
			})
		}
	}
}

func TestFindUnknownSessionCreatesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, rdb, raw := openRedis(t)
	if err := raw.Set(ctx, "unrelated", "x", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	b, found, err := rdb.Sessions.Find(ctx, newHash())
	if err != nil || found || b != nil {
		t.Errorf("Find(unknown): got %q, found=%v, err=%v; want nil, false, nil", b, found, err)
	}
	if n, err := raw.DBSize(ctx).Result(); err != nil || n != 1 {
		t.Errorf("DBSIZE after Find: got %d (%v), want 1", n, err)
	}
}

func TestDeleteRemovesTheKeyAndItsIndexEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, rdb, raw := openRedis(t)
	owner := addUser(t, rdb, "alice", time.Now().Add(time.Hour))
	a, b := newHash(), newHash()
	for _, h := range []string{a, b} {
		if _, err := rdb.Sessions.Create(ctx, h, []byte("doc"), owner.Until, owner, 100); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}

	// Owner unknown (a session the request did not load): the key goes,
	// the entry waits for the next read of the index to prune it.
	if err := rdb.Sessions.Delete(ctx, a, ""); err != nil {
		t.Fatalf("Delete(a, \"\"): %v", err)
	}
	if keyExists(t, raw, store.SessionKey(a)) {
		t.Errorf("session a's key exists after Delete, want gone")
	}
	if _, ok := indexMembers(t, raw, "alice")[a]; !ok {
		t.Errorf("index lost a without being told its owner; want it kept until pruned")
	}

	if err := rdb.Sessions.Delete(ctx, b, "alice"); err != nil {
		t.Fatalf("Delete(b, alice): %v", err)
	}
	if keyExists(t, raw, store.SessionKey(b)) {
		t.Errorf("session b's key exists after Delete, want gone")
	}
	if got := indexMembers(t, raw, "alice"); len(got) != 1 {
		t.Errorf("index after Delete(b, alice): got %v, want only a's stale entry", got)
	}
	if live, err := rdb.Sessions.OfUser(ctx, "alice"); err != nil || len(live) != 0 {
		t.Errorf("OfUser: got %d sessions, %v; want none", len(live), err)
	}
	if keyExists(t, raw, store.UserSessionsKey("alice")) {
		t.Errorf("index key exists with no session left, want it gone")
	}
}

func TestOfUserReturnsLiveSessionsAndPrunesTheRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, rdb, raw := openRedis(t)
	now := time.Now()
	alice := addUser(t, rdb, "alice", now.Add(time.Hour))
	bob := addUser(t, rdb, "bob", now.Add(time.Hour))

	live, deleted, pastDeadline, bobs := newHash(), newHash(), newHash(), newHash()
	for _, s := range []struct {
		hash  string
		owner store.Owner
	}{{live, alice}, {deleted, alice}, {pastDeadline, alice}, {bobs, bob}} {
		if _, err := rdb.Sessions.Create(ctx, s.hash, []byte("doc of "+s.owner.User), now.Add(10*time.Minute), s.owner, 100); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	// One whose key went without the index being told (idle timeout), one
	// whose absolute deadline passed though its key lingers.
	if err := raw.Del(ctx, store.SessionKey(deleted)).Err(); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if err := raw.ZAdd(ctx, store.UserSessionsKey("alice"), redis.Z{Score: float64(now.Add(-time.Second).UnixMilli()), Member: pastDeadline}).Err(); err != nil {
		t.Fatalf("ZADD: %v", err)
	}

	got, err := rdb.Sessions.OfUser(ctx, "alice")
	if err != nil {
		t.Fatalf("OfUser: %v", err)
	}
	if len(got) != 1 || got[0].Hash != live || string(got[0].Data) != "doc of alice" {
		t.Fatalf("OfUser: got %v, want just the live session %s", got, live)
	}
	if d := got[0].Expires.Sub(now.Add(10 * time.Minute)); d < -time.Second || d > time.Second {
		t.Errorf("Expires: got %v, want about %v (the key's PTTL)", got[0].Expires, now.Add(10*time.Minute))
	}
	if members := indexMembers(t, raw, "alice"); len(members) != 1 {
		t.Errorf("alice's index after OfUser: got %v, want only %s", members, live)
	}
	if members := indexMembers(t, raw, "bob"); len(members) != 1 {
		t.Errorf("bob's index after alice's OfUser: got %v, want his session kept", members)
	}
}

func TestEndOfUserEndsTheChosenSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, rdb, raw := openRedis(t)
	owner := addUser(t, rdb, "alice", time.Now().Add(time.Hour))
	hashes := make([]string, 4)
	for i := range hashes {
		hashes[i] = newHash()
		if _, err := rdb.Sessions.Create(ctx, hashes[i], []byte("doc"), owner.Until, owner, 100); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	// hashes[1] has already gone from Redis: ended again, but not counted.
	if err := raw.Del(ctx, store.SessionKey(hashes[1])).Err(); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	end := map[string]bool{hashes[0]: true, hashes[1]: true, hashes[2]: true}

	n, err := rdb.Sessions.EndOfUser(ctx, "alice", "", func(h string) bool { return end[h] })
	if err != nil || n != 2 {
		t.Fatalf("EndOfUser: got %d, %v; want 2 live sessions ended", n, err)
	}
	if got, want := slices.Collect(maps.Keys(indexMembers(t, raw, "alice"))), []string{hashes[3]}; !slices.Equal(got, want) {
		t.Errorf("index after EndOfUser: got %v, want %v", got, want)
	}
	for i, h := range hashes {
		if live := keyExists(t, raw, store.SessionKey(h)); live != (i == 3) {
			t.Errorf("session %d's key exists: got %v, want %v", i, live, i == 3)
		}
	}

	if n, err := rdb.Sessions.EndOfUser(ctx, "nobody", "", func(string) bool { return true }); err != nil || n != 0 {
		t.Errorf("EndOfUser of a user with no index: got %d, %v; want 0, nil", n, err)
	}
}

// A session ended by someone else (EndOfUser with a reason, the cap)
// leaves its browser a note of why, read once, that lives no longer than
// the session's cookie could; a session that had already gone, or one
// ended without a reason, leaves none.
func TestEndedSessionsLeaveANoteForTheirBrowser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, rdb, raw := openRedis(t)
	until := time.Now().Add(time.Hour)
	owner := addUser(t, rdb, "alice", until)
	hashes := make([]string, 4)
	for i := range hashes {
		hashes[i] = newHash()
		if _, err := rdb.Sessions.Create(ctx, hashes[i], []byte("doc"), owner.Until, owner, 100); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	if err := raw.Del(ctx, store.SessionKey(hashes[1])).Err(); err != nil { // timed out before
		t.Fatalf("DEL: %v", err)
	}
	if n, err := rdb.Sessions.EndOfUser(ctx, "alice", "operator", func(h string) bool { return h != hashes[3] }); err != nil || n != 2 {
		t.Fatalf("EndOfUser: got %d, %v; want 2", n, err)
	}
	if _, err := rdb.Sessions.EndOfUser(ctx, "alice", "", func(h string) bool { return h == hashes[3] }); err != nil {
		t.Fatalf("EndOfUser without a reason: %v", err)
	}
	for i, want := range []string{"operator", "", "operator", ""} {
		if want != "" {
			ttl, err := raw.PTTL(ctx, "session-ended:"+hashes[i]).Result()
			if err != nil || ttl <= 0 || ttl > time.Until(until)+time.Second {
				t.Errorf("session %d's note: got PTTL %v (%v), want at most the session's deadline, %v away", i, ttl, err, time.Until(until))
			}
		}
		if got, err := rdb.Sessions.TakeEnded(ctx, hashes[i]); err != nil || got != want {
			t.Errorf("TakeEnded(session %d): got %q, %v; want %q", i, got, err, want)
		}
		if got, _ := rdb.Sessions.TakeEnded(ctx, hashes[i]); got != "" {
			t.Errorf("TakeEnded(session %d) again: got %q, want it told once", i, got)
		}
	}

	// Over the cap, the oldest session's browser is told why.
	owner = addUser(t, rdb, "bob", until)
	first, second := newHash(), newHash()
	for _, h := range []string{first, second} {
		if _, err := rdb.Sessions.Create(ctx, h, []byte("doc"), owner.Until, owner, 1); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	if got, err := rdb.Sessions.TakeEnded(ctx, first); err != nil || got != store.EndedByCap {
		t.Errorf("TakeEnded(the session the cap ended): got %q, %v; want %q", got, err, store.EndedByCap)
	}
}

func TestEachAndCountWalkEverySessionInBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, rdb, raw := openRedis(t)

	// 1,500 sessions: three SCAN rounds of COUNT 500 at the very least.
	const n = 1500
	want := map[string]string{}
	pipe := raw.Pipeline()
	for i := range n {
		hash, doc := fmt.Sprintf("hash-%04d", i), fmt.Sprintf("doc %d", i)
		want[hash] = doc
		pipe.Set(ctx, store.SessionKey(hash), doc, time.Hour)
	}
	for _, key := range []string{"user:{alice}", "user:{alice}:sessions", "throttle:ip:{203.0.113.7}"} {
		pipe.Set(ctx, key, "not a session", 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("writing sessions: %v", err)
	}
	if err := raw.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatalf("CONFIG RESETSTAT: %v", err)
	}

	got := map[string]string{}
	scansAtFirst := -1
	err := rdb.Sessions.Each(ctx, func(st store.Stored) error {
		if scansAtFirst < 0 {
			scansAtFirst = commandCalls(t, raw, "scan")
		}
		if d := time.Until(st.Expires); d <= 0 || d > time.Hour {
			t.Errorf("Each: %s expires in %v, want within the hour", st.Hash, d)
		}
		got[st.Hash] = string(st.Data)
		return nil
	})
	if err != nil {
		t.Fatalf("Each: %v", err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("Each: got %d sessions, want all %d and nothing else", len(got), len(want))
	}
	scans, keys := commandCalls(t, raw, "scan"), commandCalls(t, raw, "keys")
	t.Logf("Each used %d SCAN calls; the first batch was handed out after %d", scans, scansAtFirst)
	if scans < 3 || keys != 0 {
		t.Errorf("Each: got %d SCAN and %d KEYS calls, want at least 3 SCAN rounds and no KEYS", scans, keys)
	}
	// Streaming, not collecting: the first session reaches fn while most
	// of the keyspace is still unread.
	if scansAtFirst >= scans {
		t.Errorf("Each handed out its first session after %d of %d SCAN calls, want it after the first batch", scansAtFirst, scans)
	}

	stop := errors.New("stop")
	calls := 0
	if err := rdb.Sessions.Each(ctx, func(store.Stored) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Each with fn failing: got %d calls, %v; want 1 call and fn's error", calls, err)
	}

	if err := raw.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatalf("CONFIG RESETSTAT: %v", err)
	}
	if count, err := rdb.Sessions.Count(ctx); err != nil || count != n {
		t.Errorf("Count: got %d, %v; want %d", count, err, n)
	}
	if gets := commandCalls(t, raw, "get"); gets != 0 {
		t.Errorf("Count read %d sessions, want none (SCAN only)", gets)
	}
}

func TestSessionStoreFailsFastWhileRedisIsFrozen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, rdb, _ := openRedis(t)
	st := rdb.Sessions
	owner := addUser(t, rdb, "alice", time.Now().Add(time.Hour))
	hash := newHash()
	if _, err := st.Create(ctx, hash, []byte("doc"), owner.Until, owner, 100); err != nil {
		t.Fatalf("Create before freezing: %v", err)
	}

	ops := []struct {
		name string
		op   func() error
	}{
		{"Ping", func() error { return rdb.Ping(ctx) }},
		{"Find", func() error { _, _, err := st.Find(ctx, hash); return err }},
		{"Update", func() error { return st.Update(ctx, hash, []byte("doc"), owner.Until) }},
		{"Create", func() error { _, err := st.Create(ctx, newHash(), []byte("doc"), owner.Until, owner, 100); return err }},
		{"Delete", func() error { return st.Delete(ctx, newHash(), "alice") }},
		{"OfUser", func() error { _, err := st.OfUser(ctx, "alice"); return err }},
		{"EndOfUser", func() error { _, err := st.EndOfUser(ctx, "alice", "", func(string) bool { return true }); return err }},
		{"Each", func() error { return st.Each(ctx, func(store.Stored) error { return nil }) }},
		{"Count", func() error { _, err := st.Count(ctx); return err }},
		{"TakeEnded", func() error { _, err := st.TakeEnded(ctx, hash); return err }},
	}

	srv.Freeze(t)
	for _, o := range ops {
		if err := failsFast(t, o.name+" on frozen Redis", o.op); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s on frozen Redis: got %v, want %v", o.name, err, store.ErrUnavailable)
		}
	}

	srv.Thaw(t)
	if b, found, err := st.Find(ctx, hash); err != nil || !found || string(b) != "doc" {
		t.Errorf("Find after Thaw: got %q, found=%v, err=%v; want the session", b, found, err)
	}
	if _, err := st.Create(ctx, newHash(), []byte("doc"), owner.Until, owner, 100); err != nil {
		t.Errorf("Create after Thaw: got %v, want no error", err)
	}
}

func TestSessionStoreSurvivesRedisRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, rdb, _ := openRedis(t)
	owner := addUser(t, rdb, "alice", time.Now().Add(time.Hour))
	find := func() error {
		_, _, err := rdb.Sessions.Find(ctx, newHash())
		return err
	}
	createNew := func() error {
		_, err := rdb.Sessions.Create(ctx, newHash(), []byte("doc"), owner.Until, owner, 100)
		return err
	}

	// Idle pooled connections that the restart will leave dead. The
	// server has no AOF: the user must be written again after a restart.
	fillPool(t, store.ClientOf(rdb), 5)
	srv.Restart(t)
	if err := find(); err != nil {
		t.Errorf("first Find after a restart: got %v, want no error", err)
	}
	addUser(t, rdb, "alice", owner.Until)
	if err := createNew(); err != nil {
		t.Errorf("first Create after a restart: got %v, want no error", err)
	}

	fillPool(t, store.ClientOf(rdb), 5)
	srv.Stop(t)
	if err := failsFast(t, "Find on stopped Redis", find); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Find on stopped Redis: got %v, want %v", err, store.ErrUnavailable)
	}
	if err := failsFast(t, "Create on stopped Redis", createNew); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Create on stopped Redis: got %v, want %v", err, store.ErrUnavailable)
	}

	srv.Restart(t)
	if err := find(); err != nil {
		t.Errorf("first Find after Redis came back: got %v, want no error", err)
	}
}

// fillPool leaves n connections idle in client's pool.
func fillPool(t *testing.T, client *redis.Client, n int) {
	t.Helper()
	conns := make([]*redis.Conn, n)
	for i := range conns {
		conns[i] = client.Conn()
		if err := conns[i].Ping(context.Background()).Err(); err != nil {
			t.Fatalf("PING on pooled connection %d: %v", i, err)
		}
	}
	for _, c := range conns {
		_ = c.Close()
	}
	if idle := client.PoolStats().IdleConns; idle < uint32(n) {
		t.Fatalf("idle pooled connections: got %d, want at least %d", idle, n)
	}
}

// Sessions that ended on their idle timeout stay in the index until it is
// read; they must not count against the cap, or a script that logs in
// every few minutes would sign the user's real browser out.
func TestCapCountsOnlyLiveSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, rdb, raw := openRedis(t)
	now := time.Now()
	owner := addUser(t, rdb, "alice", now.Add(time.Hour))
	const limit = 3

	browser := newHash()
	if _, err := rdb.Sessions.Create(ctx, browser, []byte("browser"), now.Add(time.Hour), owner, limit); err != nil {
		t.Fatalf("Create the browser's session: %v", err)
	}
	// Three script logins, each gone idle: key expired, member left.
	for i := range 3 {
		h := newHash()
		if _, err := rdb.Sessions.Create(ctx, h, []byte("script"), now.Add(time.Hour), owner, limit); err != nil {
			t.Fatalf("Create script session %d: %v", i, err)
		}
		if err := raw.Del(ctx, store.SessionKey(h)).Err(); err != nil {
			t.Fatalf("DEL: %v", err)
		}
	}
	fresh := newHash()
	n, err := rdb.Sessions.Create(ctx, fresh, []byte("fresh"), now.Add(time.Hour), owner, limit)
	if err != nil || n != 0 {
		t.Fatalf("Create with 1 live session and 3 idle-expired members at a cap of %d: got %d ended, %v; want 0, nil", limit, n, err)
	}
	if !keyExists(t, raw, store.SessionKey(browser)) {
		t.Errorf("the browser's session was ended by the cap, want it kept: only 2 sessions are live")
	}
	index := indexMembers(t, raw, "alice")
	if _, ok := index[browser]; !ok {
		t.Errorf("index %v: want the browser's session in it", index)
	}
	if _, ok := index[fresh]; !ok {
		t.Errorf("index %v: want the new session in it", index)
	}
	// Dead members are pruned whenever the cap is reached, so they
	// never pile up past it.
	if len(index) > limit {
		t.Errorf("index has %d members, want at most the cap %d", len(index), limit)
	}
}
