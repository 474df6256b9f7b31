package store_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"loginsvc/internal/redistest"
	"loginsvc/internal/store"
	"loginsvc/internal/testkit"
)

// openCached is open with the session cache started, once its
// invalidation channel is live.
func openCached(t testing.TB, url string) *store.Redis {
	t.Helper()
	rdb := open(t, url)
	logs := &testkit.Buffer{}
	if err := rdb.StartSessionCache(slog.New(slog.NewTextHandler(logs, nil))); err != nil {
		t.Fatalf("StartSessionCache: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("session cache log:\n%s", logs)
		}
	})
	waitState(t, rdb, "live")
	return rdb
}

// waitState waits until the cache of rdb is in state.
func waitState(t testing.TB, rdb *store.Redis, state string) {
	t.Helper()
	testkit.Eventually(t, "session cache "+state, 0, func() (bool, string) {
		st := rdb.CacheStats()
		return st.State == state, fmt.Sprintf("state %q", st.State)
	})
}

// newSession creates a session of user (created if needed) holding doc.
func newSession(t testing.TB, rdb *store.Redis, user, doc string) string {
	t.Helper()
	ctx := context.Background()
	until := time.Now().Add(time.Hour)
	err := rdb.Users.Create(ctx, user, hashA)
	if err != nil && !errors.Is(err, store.ErrUserExists) {
		t.Fatalf("Users.Create(%q): %v", user, err)
	}
	h := newHash()
	if _, err := rdb.Sessions.Create(ctx, h, []byte(doc), until, store.Owner{User: user, Stamp: hashA, Until: until}, 10000); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return h
}

// find is Sessions.Find that fails the test on an error and returns ""
// for no session.
func find(t testing.TB, rdb *store.Redis, hash string) string {
	t.Helper()
	b, ok, err := rdb.Sessions.Find(context.Background(), hash)
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	if !ok {
		return ""
	}
	return string(b)
}

// cached reads hash until a read comes from memory, and fails if none
// does: a test of what the cache serves proves nothing otherwise. (The
// invalidations of the writes that set the test up arrive a moment after
// they return, and each evicts the entry the read before filled.)
func cached(t testing.TB, rdb *store.Redis, hash, want string) {
	t.Helper()
	for range 50 {
		hits := rdb.CacheStats().Hits
		if got := find(t, rdb, hash); got != want {
			t.Fatalf("Find: got %q, want %q", got, want)
		}
		if rdb.CacheStats().Hits > hits {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("50 Finds of one session: none served from the cache (stats %+v)", rdb.CacheStats())
}

// The replica that ends or changes a session never reads the old one
// again, not even once: go-redis's own cache served the old session on
// the very next read in 300 of 300 tries.
func TestCacheNeverServesItsOwnReplicaTheOldSession(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := openCached(t, srv.URL())
	ctx := context.Background()
	until := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name  string
		write func(t *testing.T, hash string)
		want  string // what Find must return right after: "" for gone
	}{
		{"delete (logout, revoke)", func(t *testing.T, h string) {
			if err := rdb.Sessions.Delete(ctx, h, "alice"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}, ""},
		{"end of user (password change, revoke all)", func(t *testing.T, h string) {
			if _, err := rdb.Sessions.EndOfUser(ctx, "alice", "", func(string) bool { return true }); err != nil {
				t.Fatalf("EndOfUser: %v", err)
			}
		}, ""},
		{"update (touch, renew)", func(t *testing.T, h string) {
			if err := rdb.Sessions.Update(ctx, h, []byte("new"), until); err != nil {
				t.Fatalf("Update: %v", err)
			}
		}, "new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 300 {
				h := newSession(t, rdb, "alice", "old")
				cached(t, rdb, h, "old")
				tc.write(t, h)
				if got := find(t, rdb, h); got != tc.want {
					t.Fatalf("try %d: Find right after the write: got %q, want %q", i+1, got, tc.want)
				}
			}
		})
	}
}

// Readers racing the replica's own writes: a Find that starts after an
// Update returned sees that update or a later one, never an older one,
// however the reads in flight interleave with it.
func TestCacheOwnWritesUnderConcurrentReads(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := openCached(t, srv.URL())
	h := newSession(t, rdb, "alice", "0")
	until := time.Now().Add(time.Hour)

	var floor atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				want := floor.Load()
				b, _, err := rdb.Sessions.Find(context.Background(), h)
				if err != nil {
					errs <- err
					return
				}
				if got, _ := strconv.ParseInt(string(b), 10, 64); got < want {
					errs <- fmt.Errorf("Find started after update %d returned: got version %d", want, got)
					return
				}
			}
		})
	}
	for v := int64(1); v <= 500; v++ {
		if err := rdb.Sessions.Update(context.Background(), h, []byte(strconv.FormatInt(v, 10)), until); err != nil {
			t.Fatalf("Update %d: %v", v, err)
		}
		floor.Store(v)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := rdb.CacheStats(); st.Hits == 0 {
		t.Fatalf("no Find was served from the cache (stats %+v): the test raced nothing", st)
	}
}

// Another replica stops serving a session that was ended or changed
// within the invalidation delay.
func TestCacheOtherReplicasHearOfChanges(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, b := openCached(t, srv.URL()), openCached(t, srv.URL())
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		write func(t *testing.T, hash string)
		want  string
	}{
		{"deleted on the other replica", func(t *testing.T, h string) {
			if err := b.Sessions.Delete(ctx, h, "alice"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}, ""},
		{"updated on the other replica", func(t *testing.T, h string) {
			if err := b.Sessions.Update(ctx, h, []byte("new"), time.Now().Add(time.Hour)); err != nil {
				t.Fatalf("Update: %v", err)
			}
		}, "new"},
		{"deleted by redis-cli", func(t *testing.T, h string) {
			if err := srv.Client(t).Del(ctx, store.SessionKey(h)).Err(); err != nil {
				t.Fatalf("DEL: %v", err)
			}
		}, ""},
		{"FLUSHALL", func(t *testing.T, h string) { srv.FlushAll(t) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newSession(t, a, "alice", "old")
			cached(t, a, h, "old")
			tc.write(t, h)
			testkit.Eventually(t, "replica a sees the change", time.Second, func() (bool, string) {
				got := find(t, a, h)
				return got == tc.want, fmt.Sprintf("Find on a: got %q, want %q", got, tc.want)
			})
		})
	}
}

// When the invalidation channel is lost, the cache is flushed at once
// (a change made meanwhile is never hidden by an old entry), reads go to
// Redis, and caching resumes once a new channel is up.
func TestCacheFlushesWhenItsChannelIsKilled(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := openCached(t, srv.URL())
	admin := srv.Client(t)
	ctx := context.Background()
	for _, kill := range []struct {
		name string
		args func() []any
	}{
		// Sentinel sends this (and TYPE normal) to every instance whose
		// role it changes: a failover is a lost channel.
		{"CLIENT KILL TYPE pubsub", func() []any { return []any{"CLIENT", "KILL", "TYPE", "pubsub"} }},
		{"CLIENT KILL ID", func() []any { return []any{"CLIENT", "KILL", "ID", channelID(t, admin)} }},
	} {
		t.Run(kill.name, func(t *testing.T) {
			h := newSession(t, rdb, "alice", "old")
			cached(t, rdb, h, "old")
			flushes := rdb.CacheStats().Flushes
			if err := admin.Do(ctx, kill.args()...).Err(); err != nil {
				t.Fatalf("%s: %v", kill.name, err)
			}
			testkit.Eventually(t, "cache flushed", 2*time.Second, func() (bool, string) {
				st := rdb.CacheStats()
				return st.Flushes > flushes, fmt.Sprintf("stats %+v", st)
			})
			// Written while no channel may have been listening.
			if err := admin.Set(ctx, store.SessionKey(h), "changed", time.Hour).Err(); err != nil {
				t.Fatalf("SET: %v", err)
			}
			if got := find(t, rdb, h); got != "changed" {
				t.Fatalf("Find after the channel was lost and the key changed: got %q, want \"changed\"", got)
			}
			waitState(t, rdb, "live")
			cached(t, rdb, h, "changed")
		})
	}
}

// channelID is the client id of the one invalidation channel on admin's
// Redis.
func channelID(t *testing.T, admin *redis.Client) string {
	t.Helper()
	list, err := admin.Do(context.Background(), "CLIENT", "LIST", "TYPE", "pubsub").Text()
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "id=") {
		t.Fatalf("CLIENT LIST TYPE pubsub: got %q, want one client", list)
	}
	id, _, _ := strings.Cut(strings.TrimPrefix(lines[0], "id="), " ")
	return id
}

// A Redis outage answers ErrUnavailable (503 upstairs), never a session
// from memory: stopped and killed, the channel closes at once; frozen, it
// stops answering health pings and is in doubt within cacheInDoubtAfter.
func TestCacheNeverAnswersForAnUnreachableRedis(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		outage    func(t *testing.T, srv *redistest.Server)
		recover   func(t *testing.T, srv *redistest.Server)
		tolerated time.Duration // how long a frozen Redis may look alive
	}{
		{"stopped", func(t *testing.T, s *redistest.Server) { s.Stop(t) }, func(t *testing.T, s *redistest.Server) { s.Restart(t) }, 0},
		{"crashed", func(t *testing.T, s *redistest.Server) { s.Kill(t) }, func(t *testing.T, s *redistest.Server) { s.Restart(t) }, 0},
		{"frozen", func(t *testing.T, s *redistest.Server) { s.Freeze(t) }, func(t *testing.T, s *redistest.Server) { s.Thaw(t) }, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t, redistest.WithAOF())
			rdb := openCached(t, srv.URL())
			h := newSession(t, rdb, "alice", "doc")
			cached(t, rdb, h, "doc")
			tc.outage(t, srv)
			start := time.Now()
			unavailable := false
			for time.Since(start) < tc.tolerated+3*time.Second {
				_, _, err := rdb.Sessions.Find(context.Background(), h)
				switch {
				case errors.Is(err, store.ErrUnavailable):
					unavailable = true
				case err != nil:
					t.Fatalf("Find during the outage: got %v, want %v", err, store.ErrUnavailable)
				case unavailable:
					t.Fatalf("Find during the outage: a session from memory after an ErrUnavailable")
				case time.Since(start) > tc.tolerated+100*time.Millisecond:
					t.Fatalf("Find %v into the outage: a session from memory, want %v", time.Since(start).Round(time.Millisecond), store.ErrUnavailable)
				}
				if unavailable && time.Since(start) > tc.tolerated+200*time.Millisecond {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if !unavailable {
				t.Fatal("Find never failed during the outage")
			}
			t.Logf("first ErrUnavailable after %v", time.Since(start).Round(time.Millisecond))
			tc.recover(t, srv)
			waitState(t, rdb, "live")
			// A crash may lose the last second of writes (appendfsync
			// everysec): what Redis holds now is what Find must say.
			want, err := srv.Client(t).Get(context.Background(), store.SessionKey(h)).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				t.Fatalf("GET after the recovery: %v", err)
			}
			if got := find(t, rdb, h); got != want {
				t.Fatalf("Find after the recovery: got %q, want %q (what Redis holds)", got, want)
			}
			cached(t, rdb, newSession(t, rdb, "alice", "new"), "new")
		})
	}
}

// No entry is served longer than CacheMaxAge without reading Redis again,
// nor past the key's own expiry.
func TestCacheEntriesAgeOut(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := openCached(t, srv.URL())
	ctx := context.Background()

	h := newSession(t, rdb, "alice", "doc")
	cached(t, rdb, h, "doc")
	time.Sleep(store.CacheMaxAge + 100*time.Millisecond)
	misses := rdb.CacheStats().Misses
	find(t, rdb, h)
	if got := rdb.CacheStats().Misses; got != misses+1 {
		t.Fatalf("Find %v after the read: got %d misses, want %d (the entry must be read again)", store.CacheMaxAge, got, misses+1)
	}

	short := newHash()
	owner := addUser(t, rdb, "bob", time.Now().Add(time.Hour))
	if _, err := rdb.Sessions.Create(ctx, short, []byte("doc"), time.Now().Add(300*time.Millisecond), owner, 10); err != nil {
		t.Fatalf("Create: %v", err)
	}
	cached(t, rdb, short, "doc")
	time.Sleep(400 * time.Millisecond)
	misses = rdb.CacheStats().Misses
	if got := find(t, rdb, short); got != "" {
		t.Fatalf("Find of a session past its key's expiry: got %q, want none", got)
	}
	if rdb.CacheStats().Misses != misses+1 {
		t.Fatalf("Find of a session past its key's expiry: not read from Redis (stats %+v)", rdb.CacheStats())
	}
}

// Without StartSessionCache (the CLI, SESSION_CACHE=off) every Find is
// one GET, as before the cache existed.
func TestWithoutTheCacheEveryFindIsOneGet(t *testing.T) {
	t.Parallel()
	_, rdb, admin := openRedis(t)
	h := newSession(t, rdb, "alice", "doc")
	if err := admin.ConfigResetStat(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		find(t, rdb, h)
	}
	if got := commandCalls(t, admin, "get"); got != 10 {
		t.Fatalf("10 Finds: got %d GETs, want 10", got)
	}
	if st := rdb.CacheStats(); st.State != "off" || st.Hits+st.Misses+st.Bypassed != 0 {
		t.Fatalf("CacheStats without the cache: got %+v, want state off and no counts", st)
	}
}

// The embedded Redis has no CLIENT TRACKING: the cache says so and stays
// out of the way.
func TestCacheIsUnsupportedOnTheEmbeddedRedis(t *testing.T) {
	t.Parallel()
	e := startEmbedded(t)
	rdb := open(t, e.URL())
	if err := rdb.StartSessionCache(slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("StartSessionCache: %v", err)
	}
	waitState(t, rdb, "unsupported")
	h := newSession(t, rdb, "alice", "doc")
	for range 3 {
		if got := find(t, rdb, h); got != "doc" {
			t.Fatalf("Find: got %q, want \"doc\"", got)
		}
	}
	if st := rdb.CacheStats(); st.Hits != 0 {
		t.Fatalf("CacheStats: got %+v, want no hits", st)
	}
}
