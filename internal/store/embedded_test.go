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

func TestEmbeddedServerAnswersOurClient(t *testing.T) {
	t.Parallel()
	e := startEmbedded(t)
	if want := "redis://" + e.Addr() + "/0"; e.URL() != want {
		t.Errorf("URL: got %q, want %q", e.URL(), want)
	}
	client := newClient(t, e.URL())
	ctx := context.Background()

	if err := store.Ping(ctx, client, store.Timeouts{}); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	users := store.NewUsers(client, store.Timeouts{})
	if err := users.Create(ctx, "alice", hashA); err != nil {
		t.Fatalf("Create (a Lua script): %v", err)
	}
	if err := users.Create(ctx, "alice", hashB); !errors.Is(err, store.ErrUserExists) {
		t.Errorf("second Create: got %v, want %v", err, store.ErrUserExists)
	}
	if names, err := users.List(ctx); err != nil || len(names) != 1 || names[0] != "alice" {
		t.Errorf("List: got %q, %v; want [alice]", names, err)
	}

	st := store.NewSessionStore(client, store.Timeouts{})
	token := newToken()
	doc := sessionDoc(t, "alice")
	if err := st.CommitCtx(store.TrackLoads(ctx), token, doc, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("CommitCtx: %v", err)
	}
	request := store.TrackLoads(ctx)
	if b, found, err := st.FindCtx(request, token); err != nil || !found || string(b) != string(doc) {
		t.Fatalf("FindCtx: got %q, found=%v, err=%v; want %q", b, found, err, doc)
	}
	if err := st.DeleteCtx(store.TrackLoads(ctx), token); err != nil {
		t.Fatalf("DeleteCtx: %v", err)
	}
	if err := st.CommitCtx(request, token, doc, time.Now().Add(time.Hour)); !errors.Is(err, store.ErrSessionGone) {
		t.Errorf("CommitCtx after another request's DeleteCtx: got %v, want %v", err, store.ErrSessionGone)
	}
}

func TestEmbeddedSessionExpiresWithTheWallClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := newClient(t, startEmbedded(t).URL())
	st := store.NewSessionStore(client, store.Timeouts{})

	token := newToken()
	if err := st.CommitCtx(store.TrackLoads(ctx), token, sessionDoc(t, "alice"), time.Now().Add(1500*time.Millisecond)); err != nil {
		t.Fatalf("CommitCtx: %v", err)
	}
	if _, found, err := st.FindCtx(ctx, token); err != nil || !found {
		t.Fatalf("FindCtx right away: got found=%v, err=%v; want found", found, err)
	}

	time.Sleep(2 * time.Second)
	if _, found, err := st.FindCtx(ctx, token); err != nil || found {
		t.Errorf("FindCtx 2s later: got found=%v, err=%v; want not found", found, err)
	}
}
