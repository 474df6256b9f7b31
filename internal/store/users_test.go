package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"loginsvc/internal/store"
)

func newUsers(t *testing.T) (*store.Users, func(key string) bool) {
	t.Helper()
	_, rdb, raw := openRedis(t)
	return rdb.Users, func(key string) bool { return keyExists(t, raw, key) }
}

func TestUserLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	users, exists := newUsers(t)

	if _, err := users.Get(ctx, "alice"); !errors.Is(err, store.ErrUserNotFound) {
		t.Errorf("Get before Create: got %v, want %v", err, store.ErrUserNotFound)
	}

	before := time.Now().Truncate(time.Second)
	if err := users.Create(ctx, "alice", hashA); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if !exists("user:{alice}") {
		t.Errorf("after Create: key user:{alice} missing")
	}
	u, err := users.Get(ctx, "alice")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if u.Name != "alice" || u.PasswordHash != hashA {
		t.Errorf("Get: got %q with hash %q, want %q with hash %q", u.Name, u.PasswordHash, "alice", hashA)
	}
	if u.CreatedAt.Before(before) || u.CreatedAt.After(time.Now()) {
		t.Errorf("CreatedAt: got %v, want between %v and now", u.CreatedAt, before)
	}

	if err := users.Create(ctx, "alice", hashB); !errors.Is(err, store.ErrUserExists) {
		t.Errorf("second Create: got %v, want %v", err, store.ErrUserExists)
	}
	if u, _ := users.Get(ctx, "alice"); u.PasswordHash != hashA {
		t.Errorf("hash after refused Create: got %q, want %q", u.PasswordHash, hashA)
	}

	if err := users.SetPassword(ctx, "alice", hashB); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	u2, _ := users.Get(ctx, "alice")
	if u2.PasswordHash != hashB {
		t.Errorf("hash after SetPassword: got %q, want %q", u2.PasswordHash, hashB)
	}
	if !u2.CreatedAt.Equal(u.CreatedAt) {
		t.Errorf("CreatedAt after SetPassword: got %v, want %v", u2.CreatedAt, u.CreatedAt)
	}

	if err := users.Delete(ctx, "alice"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if exists("user:{alice}") {
		t.Errorf("after Delete: key user:{alice} still exists")
	}
	if _, err := users.Get(ctx, "alice"); !errors.Is(err, store.ErrUserNotFound) {
		t.Errorf("Get after Delete: got %v, want %v", err, store.ErrUserNotFound)
	}
}

func TestUnknownUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	users, exists := newUsers(t)
	tests := []struct {
		name string
		op   func() error
	}{
		{"Get", func() error { _, err := users.Get(ctx, "ghost"); return err }},
		{"SetPassword", func() error { return users.SetPassword(ctx, "ghost", hashA) }},
		{"SetPasswordIf", func() error { return users.SetPasswordIf(ctx, "ghost", hashA, hashB) }},
		{"Delete", func() error { return users.Delete(ctx, "ghost") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, store.ErrUserNotFound) {
				t.Errorf("got %v, want %v", err, store.ErrUserNotFound)
			}
			if exists("user:{ghost}") {
				t.Errorf("key user:{ghost} exists after %s of an unknown user, want none", tt.name)
			}
		})
	}
}

// A user's own change writes only over the hash its check verified: once
// another write (the operator's reset) has replaced it, the change is
// refused and the other write stands.
func TestSetPasswordIfWritesOnlyOverTheCheckedHash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	users, _ := newUsers(t)
	const hashC = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdEM$aGFzaEM"
	if err := users.Create(ctx, "alice", hashA); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := users.SetPasswordIf(ctx, "alice", hashA, hashB); err != nil {
		t.Fatalf("SetPasswordIf(A to B) with A stored: got %v, want success", err)
	}
	if u, _ := users.Get(ctx, "alice"); u.PasswordHash != hashB {
		t.Errorf("hash after SetPasswordIf: got %q, want %q", u.PasswordHash, hashB)
	}
	// A second change that had also checked A is now stale.
	if err := users.SetPasswordIf(ctx, "alice", hashA, hashC); !errors.Is(err, store.ErrPasswordChanged) {
		t.Errorf("SetPasswordIf(A to C) with B stored: got %v, want %v", err, store.ErrPasswordChanged)
	}
	if u, _ := users.Get(ctx, "alice"); u.PasswordHash != hashB {
		t.Errorf("hash after the stale SetPasswordIf: got %q, want %q kept", u.PasswordHash, hashB)
	}
	// The operator's reset does not ask.
	if err := users.SetPassword(ctx, "alice", hashC); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	if u, _ := users.Get(ctx, "alice"); u.PasswordHash != hashC {
		t.Errorf("hash after SetPassword: got %q, want %q", u.PasswordHash, hashC)
	}
}

func TestListIsSortedAndHoldsOnlyUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, rdb, client := openRedis(t)
	users := rdb.Users

	if names, err := users.List(ctx); err != nil || len(names) != 0 {
		t.Errorf("List with no users: got %q, %v; want none", names, err)
	}

	for _, name := range []string{"carol", "Bob", "alice", "émile", "bob smith"} {
		if err := users.Create(ctx, name, hashA); err != nil {
			t.Fatalf("Create(%q): %v", name, err)
		}
	}
	pipe := client.Pipeline()
	pipe.ZAdd(ctx, store.UserSessionsKey("alice"), redis.Z{Score: 1, Member: "hash-1"})
	pipe.Set(ctx, store.SessionKey("hash-1"), "a session", time.Hour)
	pipe.ZAdd(ctx, "throttle:user:{dave}", redis.Z{Score: 1, Member: "203.0.113.7"})
	pipe.Set(ctx, "user:plain", "not a record", 0)
	pipe.Set(ctx, "users", "not a record", 0)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("writing other keys: %v", err)
	}

	names, err := users.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := []string{"Bob", "alice", "bob smith", "carol", "émile"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("List: got %q, want %q", names, want)
	}
}

func TestListWalksManyUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, rdb, client := openRedis(t)
	users := rdb.Users

	// More users than one SCAN round returns, written directly as records.
	const n = 1100
	pipe := client.Pipeline()
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("user%04d", i)
		pipe.HSet(ctx, "user:{"+want[i]+"}", "password", hashA, "created_at", "2026-01-01T00:00:00Z")
		pipe.Set(ctx, store.SessionKey(want[i]), "x", time.Hour)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("writing users: %v", err)
	}
	names, err := users.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("List: got %d names, want %d (user0000..user%04d)", len(names), n, n-1)
	}
}

func TestConcurrentCreateOfOneNameSucceedsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	users, _ := newUsers(t)

	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = users.Create(ctx, "admin", fmt.Sprintf("hash-%d", i)) })
	}
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("Create %d and %d both succeeded, want exactly one", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrUserExists):
			t.Errorf("Create %d: got %v, want nil or %v", i, err, store.ErrUserExists)
		}
	}
	if winner < 0 {
		t.Fatalf("no Create succeeded, want exactly one")
	}
	u, err := users.Get(ctx, "admin")
	if want := fmt.Sprintf("hash-%d", winner); err != nil || u.PasswordHash != want {
		t.Errorf("stored hash: got %q (%v), want the winner's %q", u.PasswordHash, err, want)
	}
}
