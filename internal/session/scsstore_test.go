package session

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	redigo "github.com/gomodule/redigo/redis"

	"loginsvc/internal/store"
	"loginsvc/internal/testkit"
)

// Sessions keep scs/redisstore's layout and a JSON document, so that a
// tool built on redisstore (or a rollback) reads and updates our sessions
// and we read its updates. A login redisstore itself created is in no
// index, so nothing could revoke it: ours ends it.
func TestSessionsInteroperateWithSCSRedisstore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	stamp := h.addUser(t, "alice")
	ours := h.manager(Config{Lifetime: time.Hour})
	pool := &redigo.Pool{
		MaxIdle: 2,
		Dial:    func() (redigo.Conn, error) { return redigo.Dial("tcp", h.srv.Addr()) },
	}
	t.Cleanup(func() { _ = pool.Close() })
	theirs := scs.New()
	theirs.Store = redisstore.New(pool)
	theirs.Codec = JSONCodec{}
	theirs.HashTokenInStore = true
	theirs.Lifetime = time.Hour

	t.Run("ours writes, redisstore reads", func(t *testing.T) {
		token, _ := login(t, ours, "alice", stamp)

		raw, err := h.raw.Get(ctx, testkit.SessionKey(token)).Bytes()
		if err != nil {
			t.Fatalf("GET %s: %v", testkit.SessionKey(token), err)
		}
		var doc struct {
			Values map[string]any `json:"values"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil || doc.Values["username"] != "alice" {
			t.Errorf("GET %s: got %s (%v), want JSON with values.username alice", testkit.SessionKey(token), raw, err)
		}

		tctx, err := theirs.Load(ctx, token)
		if err != nil {
			t.Fatalf("redisstore Load: %v", err)
		}
		if got := theirs.GetString(tctx, fieldUsername); got != "alice" {
			t.Fatalf("redisstore reads username: got %q, want alice", got)
		}
		theirs.Put(tctx, "theme", "dark")
		if again, _, err := theirs.Commit(tctx); err != nil || again != token {
			t.Fatalf("redisstore Commit: got token %q, %v; want %q", again, err, token)
		}

		octx := load(t, ours, token)
		if got := ours.User(octx); got != "alice" {
			t.Errorf("ours after redisstore's update: user got %q, want alice", got)
		}
		if got := ours.scs.GetString(octx, "theme"); got != "dark" {
			t.Errorf("ours after redisstore's update: theme got %q, want dark", got)
		}
	})

	t.Run("redisstore writes a login without our record: ours ends it", func(t *testing.T) {
		tctx, err := theirs.Load(ctx, "")
		if err != nil {
			t.Fatalf("redisstore Load: %v", err)
		}
		theirs.Put(tctx, fieldUsername, "alice")
		theirs.Put(tctx, fieldLoginAt, time.Now().UTC().Format(time.RFC3339Nano))
		token, _, err := theirs.Commit(tctx)
		if err != nil {
			t.Fatalf("redisstore Commit: %v", err)
		}
		// No index knows it, so nothing could revoke it: not a login.
		if got := userOf(t, ours, token); got != "" {
			t.Errorf("ours reads a session redisstore created: logged in as %q, want not logged in", got)
		}
		if h.exists(t, testkit.SessionKey(token)) {
			t.Errorf("key %s exists, want the unindexed session ended", testkit.SessionKey(token))
		}
	})
}

// A request that loaded a session and saves it after another request ended
// it must not bring it back: that would undo a logout or a revoke.
func TestSaveAfterLoadNeverResurrects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		// meanwhile runs between this request's load and its save.
		meanwhile func(t *testing.T, h *harness, m *Manager, token string)
		wantSaved bool
	}{
		{"session still there: saved", func(*testing.T, *harness, *Manager, string) {}, true},
		{"logged out on another replica: not resurrected", func(t *testing.T, _ *harness, m *Manager, token string) {
			other := load(t, m, token)
			if err := m.End(other); err != nil {
				t.Fatalf("other request's End: %v", err)
			}
			save(t, m, other)
		}, false},
		{"revoked meanwhile: not resurrected", func(t *testing.T, _ *harness, m *Manager, token string) {
			if n, err := m.RevokeAll(ctx, "alice", ""); err != nil || n != 1 {
				t.Fatalf("RevokeAll: got %d, %v; want 1", n, err)
			}
		}, false},
		{"expired meanwhile: not resurrected", func(t *testing.T, h *harness, _ *Manager, token string) {
			if err := h.raw.PExpire(ctx, testkit.SessionKey(token), time.Millisecond).Err(); err != nil {
				t.Fatalf("PEXPIRE: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			m := h.manager(Config{Lifetime: time.Hour})
			token, _ := login(t, m, "alice", h.addUser(t, "alice"))

			request := load(t, m, token)
			if m.User(request) != "alice" {
				t.Fatalf("loaded session: user got %q, want alice", m.User(request))
			}
			tt.meanwhile(t, h, m, token)
			m.scs.Put(request, "theme", "dark")
			c := save(t, m, request)

			b, err := h.raw.Get(ctx, testkit.SessionKey(token)).Bytes()
			saved := err == nil
			if saved != tt.wantSaved {
				t.Fatalf("session key after Save: got present=%v (%v), want present=%v", saved, err, tt.wantSaved)
			}
			if !tt.wantSaved {
				if c != nil && c.Value != "" {
					t.Errorf("cookie after saving an ended session: got %q, want none", c.Value)
				}
				if got := list(t, m, "alice"); len(got) != 0 {
					t.Errorf("alice's sessions: got %v, want none", ids(got))
				}
				if got := h.index(t, "alice"); len(got) != 0 {
					t.Errorf("alice's index after List: got %v, want empty", got)
				}
				return
			}
			_, values, err := m.codec.Decode(b)
			if err != nil || values["theme"] != "dark" {
				t.Errorf("saved session: got %s (%v), want theme dark", b, err)
			}
		})
	}
}

// The adapter tells an update from a new session only by what this
// request loaded: a token it did not load is new, and a new session never
// overwrites a key that exists, nor is stored without a login.
func TestNewSessionNeverOverwritesAnExistingKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	stamp := h.addUser(t, "mallory")
	st := scsStore{sessions: h.rdb.Sessions, max: 100}
	until := time.Now().Add(time.Hour)

	tests := []struct {
		name  string
		owner *store.Owner
	}{
		{"new session of a login", &store.Owner{User: "mallory", Stamp: stamp, Until: until}},
		{"new session without a login", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash := hashOf(newToken())
			key := store.SessionKey(hash)
			if err := h.raw.Set(ctx, key, "someone else's session", 0).Err(); err != nil {
				t.Fatalf("SET: %v", err)
			}
			rctx := context.WithValue(ctx, requestKey{}, &request{owner: tt.owner})
			if err := st.CommitCtx(rctx, hash, []byte(`{"deadline":"2030-01-01T00:00:00Z","values":{}}`), until); err == nil {
				t.Errorf("CommitCtx of a token this request did not load: got no error, want one")
			}
			if got, _ := h.raw.Get(ctx, key).Result(); got != "someone else's session" {
				t.Errorf("existing value: got %q, want it untouched", got)
			}
			if ttl, _ := h.raw.TTL(ctx, key).Result(); ttl != -1 {
				t.Errorf("existing key's TTL: got %v, want none (-1ns)", ttl)
			}
		})
	}
	if got := h.index(t, "mallory"); len(got) != 0 {
		t.Errorf("mallory's index: got %v, want empty", got)
	}
}

func TestSaveOutsideALoadedRequestIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	stamp := h.addUser(t, "alice")
	m := h.manager(Config{})
	st := scsStore{sessions: h.rdb.Sessions, max: 100}
	hash := hashOf(newToken())
	doc := []byte(`{"deadline":"2030-01-01T00:00:00Z","values":{"username":"alice"}}`)

	tests := []struct {
		name string
		op   func() error
	}{
		{"CommitCtx with a plain context", func() error { return st.CommitCtx(ctx, hash, doc, time.Now().Add(time.Hour)) }},
		{"Commit", func() error { return st.Commit(hash, doc, time.Now().Add(time.Hour)) }},
		{"Start", func() error { return m.Start(ctx, Login{User: "alice", Stamp: stamp}) }},
		{"Renew", func() error { return m.Renew(ctx, stamp) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, ErrNoRequest) {
				t.Errorf("got %v, want %v", err, ErrNoRequest)
			}
		})
	}
	if n, err := m.Count(ctx); err != nil || n != 0 {
		t.Errorf("sessions in Redis after refused saves: got %d (%v), want 0", n, err)
	}
}

// A visitor's cookie that names nothing (expired, forged, from another
// deployment) reads as logged out and costs no write.
func TestUnknownTokenCreatesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	h.addUser(t, "alice")
	m := h.manager(Config{IdleTimeout: time.Minute})

	for _, token := range []string{"", newToken()} {
		request := load(t, m, token)
		if got := m.User(request); got != "" {
			t.Errorf("Load(%q): user got %q, want none", token, got)
		}
		if _, ok := m.Current(request); ok {
			t.Errorf("Load(%q): Current reports a session, want none", token)
		}
		if c := save(t, m, request); c != nil {
			t.Errorf("Save after Load(%q): got cookie %v, want none", token, c)
		}
	}
	if n, err := h.raw.DBSize(ctx).Result(); err != nil || n != 1 {
		t.Errorf("DBSIZE: got %d (%v), want 1 (the user record only)", n, err)
	}
}

// A login whose user was deleted or whose password changed after the
// password check is refused by Start; the request's Save afterwards must
// then store nothing and succeed, so the user sees "invalid login" rather
// than a server error, and no cookie names a session.
func TestRacedLoginSavesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(t *testing.T, h *harness)
	}{
		{"password changed", func(t *testing.T, h *harness) {
			if err := h.rdb.Users.SetPassword(ctx, "alice", "$argon2id$another"); err != nil {
				t.Fatalf("SetPassword: %v", err)
			}
		}},
		{"user deleted", func(t *testing.T, h *harness) {
			if err := h.rdb.Users.Delete(ctx, "alice"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			m := h.manager(Config{})
			stamp := h.addUser(t, "alice")
			old, _ := login(t, m, "alice", stamp)
			tt.change(t, h)

			// A second login from the browser that holds old.
			request := load(t, m, old)
			if err := m.Start(request, Login{User: "alice", Stamp: stamp}); !errors.Is(err, ErrLoginRaced) {
				t.Fatalf("Start with a stale stamp: got %v, want %v", err, ErrLoginRaced)
			}
			if got := m.User(request); got != "" {
				t.Errorf("User after a refused Start: got %q, want none", got)
			}
			w := httptest.NewRecorder()
			if err := m.Save(request, w); err != nil {
				t.Fatalf("Save after a refused Start: got %v, want no error", err)
			}
			for _, c := range w.Result().Cookies() {
				if c.Name == m.CookieName() && c.Value != "" {
					t.Errorf("cookie after a refused Start: got %q, want none or a cleared one", c.Value)
				}
			}
			if n, err := m.Count(ctx); err != nil || n != 0 {
				t.Errorf("sessions in Redis: got %d (%v), want 0 (the old one ended by the new login, the new one refused)", n, err)
			}
		})
	}
}

func TestLoadWhileRedisIsDownIsUnavailable(t *testing.T) {
	t.Parallel()
	m := nowhere(t)
	if _, err := m.Load(context.Background(), newToken()); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Load with Redis down: got %v, want %v", err, store.ErrUnavailable)
	}
	// No cookie, no question to Redis.
	if _, err := m.Load(context.Background(), ""); err != nil {
		t.Errorf("Load without a cookie with Redis down: got %v, want no error", err)
	}
}
