package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	redigo "github.com/gomodule/redigo/redis"
	"github.com/redis/go-redis/v9"

	"loginsvc/internal/store"
)

// newManager is an scs session manager configured as the service
// configures its own, on st.
func newManager(st scs.Store) *scs.SessionManager {
	sm := scs.New()
	sm.Store = st
	sm.Codec = store.JSONCodec{}
	sm.HashTokenInStore = true
	sm.Lifetime = time.Hour
	return sm
}

// load loads the session of cookie token the way the service's middleware
// does: in a context prepared with TrackLoads. An empty token starts a new
// session.
func load(t *testing.T, sm *scs.SessionManager, token string) context.Context {
	t.Helper()
	ctx, err := sm.Load(store.TrackLoads(context.Background()), token)
	if err != nil {
		t.Fatalf("Load(%q): %v", token, err)
	}
	return ctx
}

// commit saves the session in ctx and returns its cookie token and expiry.
func commit(t *testing.T, sm *scs.SessionManager, ctx context.Context) (string, time.Time) {
	t.Helper()
	token, expiry, err := sm.Commit(ctx)
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return token, expiry
}

func TestSessionsInteroperateWithSCSRedisstore(t *testing.T) {
	t.Parallel()
	srv, client := startRedis(t)
	pool := &redigo.Pool{
		MaxIdle: 2,
		Dial:    func() (redigo.Conn, error) { return redigo.Dial("tcp", srv.Addr()) },
	}
	t.Cleanup(func() { _ = pool.Close() })
	ours := newManager(store.NewSessionStore(client, store.Timeouts{}))
	theirs := newManager(redisstore.New(pool))

	tests := []struct {
		name           string
		writer, reader *scs.SessionManager
	}{
		{"ours writes, redisstore reads", ours, theirs},
		{"redisstore writes, ours reads", theirs, ours},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := load(t, tt.writer, "")
			tt.writer.Put(ctx, store.FieldUsername, "alice")
			token, expiry := commit(t, tt.writer, ctx)

			key := store.SessionPrefix + hashedToken(token)
			before := time.Until(expiry)
			pttl, err := client.PTTL(context.Background(), key).Result()
			after := time.Until(expiry)
			if err != nil {
				t.Fatalf("PTTL %s: %v", key, err)
			}
			// PTTL was taken between before and after; Redis counts whole
			// milliseconds.
			const slack = 10 * time.Millisecond
			if pttl < after-slack || pttl > before+slack {
				t.Errorf("PTTL %s: got %v, want between %v and %v (expiry %v)", key, pttl, after, before, expiry)
			}

			raw, err := client.Get(context.Background(), key).Bytes()
			if err != nil {
				t.Fatalf("GET %s: %v", key, err)
			}
			var doc struct {
				Values map[string]string `json:"values"`
			}
			if err := json.Unmarshal(raw, &doc); err != nil || doc.Values[store.FieldUsername] != "alice" {
				t.Errorf("GET %s: got %s (%v), want JSON with values.username alice", key, raw, err)
			}

			ctx = load(t, tt.reader, token)
			if got := tt.reader.GetString(ctx, store.FieldUsername); got != "alice" {
				t.Fatalf("reader: username got %q, want %q", got, "alice")
			}

			// And back: the reader's update reaches the writer.
			tt.reader.Put(ctx, "theme", "dark")
			if again, _ := commit(t, tt.reader, ctx); again != token {
				t.Fatalf("reader's commit: token got %q, want %q", again, token)
			}
			ctx = load(t, tt.writer, token)
			if got := tt.writer.GetString(ctx, "theme"); got != "dark" {
				t.Errorf("writer after reader's update: theme got %q, want %q", got, "dark")
			}
		})
	}
}

func TestSessionCommitAfterLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		// meanwhile runs between this request's load and its commit.
		meanwhile func(t *testing.T, st *store.SessionStore, client *redis.Client, token string)
		wantErr   error
		wantSaved bool
	}{
		{
			name:      "session still there: saved",
			meanwhile: func(*testing.T, *store.SessionStore, *redis.Client, string) {},
			wantSaved: true,
		},
		{
			name: "logged out on another replica: not resurrected",
			meanwhile: func(t *testing.T, st *store.SessionStore, _ *redis.Client, token string) {
				logout := store.TrackLoads(ctx)
				if _, _, err := st.FindCtx(logout, token); err != nil {
					t.Fatalf("other request's FindCtx: %v", err)
				}
				if err := st.DeleteCtx(logout, token); err != nil {
					t.Fatalf("other request's DeleteCtx: %v", err)
				}
			},
			wantErr: store.ErrSessionGone,
		},
		{
			name: "expired meanwhile: not resurrected",
			meanwhile: func(t *testing.T, _ *store.SessionStore, client *redis.Client, token string) {
				if err := client.PExpire(ctx, store.SessionKey(token), time.Millisecond).Err(); err != nil {
					t.Fatalf("PEXPIRE: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			},
			wantErr: store.ErrSessionGone,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, client := startRedis(t)
			st := store.NewSessionStore(client, store.Timeouts{})
			token := newToken()
			if err := client.Set(ctx, store.SessionKey(token), sessionDoc(t, "alice"), time.Hour).Err(); err != nil {
				t.Fatalf("SET: %v", err)
			}

			request := store.TrackLoads(ctx)
			if _, found, err := st.FindCtx(request, token); err != nil || !found {
				t.Fatalf("FindCtx: got found=%v, err=%v; want found, no error", found, err)
			}
			tt.meanwhile(t, st, client, token)
			updated := sessionDoc(t, "alice-updated")
			err := st.CommitCtx(request, token, updated, time.Now().Add(time.Hour))

			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CommitCtx: got %v, want %v", err, tt.wantErr)
			}
			got, getErr := client.Get(ctx, store.SessionKey(token)).Bytes()
			switch {
			case tt.wantSaved && string(got) != string(updated):
				t.Errorf("stored session: got %q (%v), want %q", got, getErr, updated)
			case !tt.wantSaved && !errors.Is(getErr, redis.Nil):
				t.Errorf("stored session: got %q (%v), want no key", got, getErr)
			}
		})
	}
}

func TestNewSessionCommitNeverOverwrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, client := startRedis(t)
	st := store.NewSessionStore(client, store.Timeouts{})

	token := newToken()
	key := store.SessionKey(token)
	if err := client.Set(ctx, key, "someone else's session", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	// Never loaded in this request, so it is a new session (SET NX).
	err := st.CommitCtx(store.TrackLoads(ctx), token, sessionDoc(t, "mallory"), time.Now().Add(time.Hour))
	if err == nil {
		t.Errorf("CommitCtx of a new session onto an existing key: got no error, want one")
	}
	if got, _ := client.Get(ctx, key).Result(); got != "someone else's session" {
		t.Errorf("existing value: got %q, want it untouched", got)
	}
	if ttl, _ := client.TTL(ctx, key).Result(); ttl != -1 {
		t.Errorf("existing key's TTL: got %v, want none (-1ns)", ttl)
	}

	// A free key is taken.
	fresh := newToken()
	doc := sessionDoc(t, "alice")
	if err := st.CommitCtx(store.TrackLoads(ctx), fresh, doc, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("CommitCtx of a new session: %v", err)
	}
	if got, _ := client.Get(ctx, store.SessionKey(fresh)).Result(); got != string(doc) {
		t.Errorf("new session: got %q, want %q", got, doc)
	}
}

func TestSessionCommitWithoutTrackLoadsIsRefused(t *testing.T) {
	t.Parallel()
	_, client := startRedis(t)
	st := store.NewSessionStore(client, store.Timeouts{})
	tests := []struct {
		name   string
		commit func(token string, b []byte, expiry time.Time) error
	}{
		{"CommitCtx with a plain context", func(token string, b []byte, expiry time.Time) error {
			return st.CommitCtx(context.Background(), token, b, expiry)
		}},
		{"Commit", st.Commit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := newToken()
			err := tt.commit(token, sessionDoc(t, "alice"), time.Now().Add(time.Hour))
			if !errors.Is(err, store.ErrNotTracked) {
				t.Errorf("got %v, want %v", err, store.ErrNotTracked)
			}
			if keyExists(t, client, store.SessionKey(token)) {
				t.Errorf("key %s exists after a refused commit, want none", store.SessionKey(token))
			}
		})
	}
}

func TestFindUnknownTokenCreatesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, client := startRedis(t)
	st := store.NewSessionStore(client, store.Timeouts{})
	if err := client.Set(ctx, "unrelated", "x", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	b, found, err := st.FindCtx(store.TrackLoads(ctx), newToken())
	if err != nil || found || b != nil {
		t.Errorf("FindCtx(unknown): got %q, found=%v, err=%v; want nil, false, nil", b, found, err)
	}
	if n, err := client.DBSize(ctx).Result(); err != nil || n != 1 {
		t.Errorf("DBSIZE after FindCtx: got %d (%v), want 1", n, err)
	}
}

// failsFast runs op and returns its error, failing the test if op is still
// blocked after a hang-detector bound far above the store's deadlines.
func failsFast(t *testing.T, name string, op func() error) error {
	t.Helper()
	const hang = 3 * time.Second
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- op() }()
	select {
	case err := <-done:
		t.Logf("%s returned after %v: %v", name, time.Since(start).Round(time.Millisecond), err)
		return err
	case <-time.After(hang):
		t.Fatalf("%s still blocked after %v", name, hang)
		return nil
	}
}

func TestSessionStoreFailsFastWhileRedisIsFrozen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, client := startRedis(t)
	st := store.NewSessionStore(client, store.Timeouts{})
	token := newToken()
	if err := st.CommitCtx(store.TrackLoads(ctx), token, sessionDoc(t, "alice"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("CommitCtx before freezing: %v", err)
	}

	ops := []struct {
		name string
		op   func() error
	}{
		{"FindCtx", func() error {
			_, _, err := st.FindCtx(store.TrackLoads(ctx), token)
			return err
		}},
		{"CommitCtx", func() error {
			return st.CommitCtx(store.TrackLoads(ctx), newToken(), sessionDoc(t, "bob"), time.Now().Add(time.Hour))
		}},
		{"DeleteCtx", func() error { return st.DeleteCtx(store.TrackLoads(ctx), newToken()) }},
	}

	srv.Freeze(t)
	for _, o := range ops {
		if err := failsFast(t, o.name+" on frozen Redis", o.op); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s on frozen Redis: got %v, want %v", o.name, err, store.ErrUnavailable)
		}
	}

	srv.Thaw(t)
	b, found, err := st.FindCtx(store.TrackLoads(ctx), token)
	if err != nil || !found || len(b) == 0 {
		t.Errorf("FindCtx after Thaw: got %d bytes, found=%v, err=%v; want the session", len(b), found, err)
	}
	if err := st.CommitCtx(store.TrackLoads(ctx), newToken(), sessionDoc(t, "carol"), time.Now().Add(time.Hour)); err != nil {
		t.Errorf("CommitCtx after Thaw: got %v, want no error", err)
	}
}

func TestSessionStoreSurvivesRedisRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, client := startRedis(t)
	st := store.NewSessionStore(client, store.Timeouts{})
	find := func() error {
		_, _, err := st.FindCtx(store.TrackLoads(ctx), newToken())
		return err
	}
	commitNew := func() error {
		return st.CommitCtx(store.TrackLoads(ctx), newToken(), sessionDoc(t, "alice"), time.Now().Add(time.Hour))
	}

	// Idle pooled connections that the restart will leave dead.
	fillPool(t, client, 5)
	srv.Restart(t)
	if err := find(); err != nil {
		t.Errorf("first FindCtx after a restart: got %v, want no error", err)
	}
	if err := commitNew(); err != nil {
		t.Errorf("first CommitCtx after a restart: got %v, want no error", err)
	}

	fillPool(t, client, 5)
	srv.Stop(t)
	if err := failsFast(t, "FindCtx on stopped Redis", find); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("FindCtx on stopped Redis: got %v, want %v", err, store.ErrUnavailable)
	}
	if err := failsFast(t, "CommitCtx on stopped Redis", commitNew); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("CommitCtx on stopped Redis: got %v, want %v", err, store.ErrUnavailable)
	}

	srv.Restart(t)
	if err := commitNew(); err != nil {
		t.Errorf("first CommitCtx after Redis came back: got %v, want no error", err)
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

func TestAllAndDeleteWhereWalkEverySession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, client := startRedis(t)
	st := store.NewSessionStore(client, store.Timeouts{})

	// 1200 sessions of three users: more than one SCAN round (COUNT 500).
	const n = 1200
	users := []string{"alice", "bob", "carol"}
	want := map[string]string{}
	pipe := client.Pipeline()
	for i := range n {
		token := fmt.Sprintf("token-%04d", i)
		doc := string(sessionDoc(t, users[i%len(users)]))
		want[token] = doc
		pipe.Set(ctx, store.SessionKey(token), doc, time.Hour)
	}
	pipe.Set(ctx, store.SessionKey("not-json"), "garbage", time.Hour)
	want["not-json"] = "garbage"
	pipe.Set(ctx, "user:{alice}", "not a session", 0)
	pipe.Set(ctx, "throttle:ip:{203.0.113.7}", "not a session", 0)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("writing sessions: %v", err)
	}
	if err := client.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatalf("CONFIG RESETSTAT: %v", err)
	}

	all, err := st.AllCtx(ctx)
	if err != nil {
		t.Fatalf("AllCtx: %v", err)
	}
	if len(all) != len(want) {
		t.Errorf("AllCtx: got %d sessions, want %d", len(all), len(want))
	}
	for token, doc := range want {
		if got, ok := all[token]; !ok || string(got) != doc {
			t.Errorf("AllCtx[%q]: got %q (present=%v), want %q", token, got, ok, doc)
		}
	}
	scans, keys := commandCalls(t, client, "scan"), commandCalls(t, client, "keys")
	t.Logf("AllCtx used %d SCAN calls", scans)
	if scans < 2 || keys != 0 {
		t.Errorf("AllCtx: got %d SCAN and %d KEYS calls, want several SCAN rounds and no KEYS", scans, keys)
	}

	deleted, err := st.DeleteWhere(ctx, store.JSONCodec{}, func(v map[string]any) bool {
		return v[store.FieldUsername] == "bob"
	})
	if err != nil {
		t.Fatalf("DeleteWhere: %v", err)
	}
	if deleted != n/3 {
		t.Errorf("DeleteWhere: got %d deleted, want %d", deleted, n/3)
	}
	left, err := st.AllCtx(ctx)
	if err != nil {
		t.Fatalf("AllCtx after DeleteWhere: %v", err)
	}
	for token, doc := range want {
		_, kept := left[token]
		isBob := containsUser(doc, "bob")
		if kept == isBob {
			t.Errorf("session %q after deleting bob's: got kept=%v, want kept=%v", token, kept, !isBob)
		}
	}
	for _, key := range []string{"user:{alice}", "throttle:ip:{203.0.113.7}"} {
		if !keyExists(t, client, key) {
			t.Errorf("DeleteWhere deleted %s, want it kept", key)
		}
	}
}

// containsUser reports whether a stored session document is username's.
func containsUser(doc, username string) bool {
	_, values, err := store.JSONCodec{}.Decode([]byte(doc))
	return err == nil && values[store.FieldUsername] == username
}

// commandCalls returns how often Redis ran command since the last
// CONFIG RESETSTAT.
func commandCalls(t *testing.T, client *redis.Client, command string) int {
	t.Helper()
	info, err := client.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	m := regexp.MustCompile(`(?m)^cmdstat_` + command + `:calls=(\d+)`).FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
