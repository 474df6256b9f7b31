package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"loginsvc/internal/store"
)

func startEmbedded(t *testing.T) *store.Embedded {
	t.Helper()
	e, err := store.StartEmbedded()
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(e.Close)
	return e
}

// The embedded server must run every command and script the stores use,
// or `server --embedded-redis` breaks where a real Redis would not.
func TestEmbeddedServerAnswersOurStores(t *testing.T) {
	t.Parallel()
	e := startEmbedded(t)
	if want := "redis://" + e.Addr() + "/0"; e.URL() != want {
		t.Errorf("URL: got %q, want %q", e.URL(), want)
	}
	rdb := open(t, e.URL())
	ctx := context.Background()

	if err := rdb.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := rdb.Users.Create(ctx, "alice", hashA); err != nil {
		t.Fatalf("Users.Create (a Lua script): %v", err)
	}
	if err := rdb.Users.Create(ctx, "alice", hashB); !errors.Is(err, store.ErrUserExists) {
		t.Errorf("second Users.Create: got %v, want %v", err, store.ErrUserExists)
	}
	if names, err := rdb.Users.List(ctx); err != nil || len(names) != 1 || names[0] != "alice" {
		t.Errorf("Users.List: got %q, %v; want [alice]", names, err)
	}

	st := rdb.Sessions
	owner := store.Owner{User: "alice", Stamp: hashA, Until: time.Now().Add(time.Hour)}
	hashes := []string{newHash(), newHash(), newHash()}
	for i, h := range hashes {
		n, err := st.Create(ctx, h, []byte("doc"), owner.Until, owner, 2)
		if want := max(0, i-1); err != nil || n != want {
			t.Fatalf("Create %d (the index script, cap 2): got %d ended, %v; want %d, nil", i, n, err, want)
		}
	}
	if _, err := st.Create(ctx, newHash(), []byte("doc"), owner.Until, store.Owner{User: "alice", Stamp: hashB, Until: owner.Until}, 2); !errors.Is(err, store.ErrOwnerChanged) {
		t.Errorf("Create with a stale stamp: got %v, want %v", err, store.ErrOwnerChanged)
	}
	live, err := st.OfUser(ctx, "alice")
	if err != nil || len(live) != 2 {
		t.Fatalf("OfUser: got %d sessions, %v; want 2", len(live), err)
	}
	hash := hashes[2]
	if b, found, err := st.Find(ctx, hash); err != nil || !found || string(b) != "doc" {
		t.Fatalf("Find: got %q, found=%v, err=%v; want %q", b, found, err, "doc")
	}
	if err := st.Delete(ctx, hash, "alice"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := st.Update(ctx, hash, []byte("doc"), owner.Until); !errors.Is(err, store.ErrSessionGone) {
		t.Errorf("Update after Delete: got %v, want %v", err, store.ErrSessionGone)
	}
	if n, err := st.EndOfUser(ctx, "alice", "", func(string) bool { return true }); err != nil || n != 1 {
		t.Errorf("EndOfUser: got %d, %v; want 1", n, err)
	}
	if n, err := st.Count(ctx); err != nil || n != 0 {
		t.Errorf("Count: got %d, %v; want 0", n, err)
	}
}

func TestEmbeddedSessionExpiresWithTheWallClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := open(t, startEmbedded(t).URL())
	until := time.Now().Add(1500 * time.Millisecond)
	owner := addUser(t, rdb, "alice", until)

	hash := newHash()
	if _, err := rdb.Sessions.Create(ctx, hash, []byte("doc"), until, owner, 100); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, found, err := rdb.Sessions.Find(ctx, hash); err != nil || !found {
		t.Fatalf("Find right away: got found=%v, err=%v; want found", found, err)
	}

	time.Sleep(2 * time.Second)
	if _, found, err := rdb.Sessions.Find(ctx, hash); err != nil || found {
		t.Errorf("Find 2s later: got found=%v, err=%v; want not found", found, err)
	}
	if live, err := rdb.Sessions.OfUser(ctx, "alice"); err != nil || len(live) != 0 {
		t.Errorf("OfUser 2s later: got %d sessions, %v; want none", len(live), err)
	}
}
