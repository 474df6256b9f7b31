package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"loginsvc/internal/session"
	"loginsvc/internal/store"
)

// A name that looks like an existing user's (same UTS #39 skeleton) is
// refused at creation, naming the user it looks like; deleting that user
// frees the look.
func TestLookAlikeNamesAreRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const password = "a long enough password"
	f.addUser(t, "admin", password)
	f.addUser(t, "paypal", password)

	for _, tc := range []struct {
		name, looksLike string
	}{
		{"\u0430dmin", "admin"},   // Cyrillic а
		{"adrnin", "admin"},       // r n for m
		{"paypa1", "paypal"},      // digit one for l
		{"\u0440aypal", "paypal"}, // Cyrillic р
		{"Admin", ""},             // case is kept: another user, as before
		{"alice", ""},
	} {
		err := f.svc.AddUser(ctx, tc.name, password)
		var look *store.LookAlikeError
		switch {
		case tc.looksLike == "" && err != nil:
			t.Errorf("AddUser(%q): %v, want it created", tc.name, err)
		case tc.looksLike != "" && (!errors.As(err, &look) || look.Existing != tc.looksLike):
			t.Errorf("AddUser(%q): got %v, want a LookAlikeError naming %q", tc.name, err, tc.looksLike)
		}
	}
	if err := f.svc.AddUser(ctx, "admin", password); !errors.Is(err, store.ErrUserExists) {
		t.Errorf("AddUser(admin) again: got %v, want ErrUserExists", err)
	}

	if _, err := f.svc.DeleteUser(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	if n := f.client.Exists(ctx, store.UserSkeletonKey(Skeleton("admin"))).Val(); n != 0 {
		t.Errorf("skeleton claim of a deleted user: still there")
	}
	if err := f.svc.AddUser(ctx, "\u0430dmin", password); err != nil {
		t.Errorf("AddUser(аdmin) once admin is deleted: %v", err)
	}
}

// A claim left behind by a delete that stopped part-way (record gone,
// claim kept) does not block the name for ever.
func TestStaleSkeletonClaimIsTakenOver(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.client.Set(ctx, store.UserSkeletonKey(Skeleton("admin")), "admin", 0)
	if err := f.svc.AddUser(ctx, "\u0430dmin", "a long enough password"); err != nil {
		t.Fatalf("AddUser over a stale claim: %v", err)
	}
}

// Look-alike names created at the same moment: exactly one wins.
func TestConcurrentLookAlikesCreateOne(t *testing.T) {
	f := newFixtureWith(t, session.Config{Lifetime: 12 * time.Hour}, Config{HashConcurrency: 4, HashWait: time.Minute})
	ctx := context.Background()
	names := []string{"admin", "\u0430dmin", "adrnin", "\u0430drnin"}
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() { errs[i] = f.svc.AddUser(ctx, n, "a long enough password") })
	}
	wg.Wait()
	created := 0
	for i, err := range errs {
		var look *store.LookAlikeError
		switch {
		case err == nil:
			created++
		case !errors.As(err, &look):
			t.Errorf("AddUser(%q): %v, want nil or a LookAlikeError", names[i], err)
		}
	}
	users, err := f.svc.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if created != 1 || len(users) != 1 {
		t.Fatalf("got %d created, users %q; want exactly one", created, users)
	}
}

// Users created before claims were stored (Users.Create, as an older
// version did) are claimed by ClaimSkeletons, which serve runs at start:
// then their look-alikes are refused too, and pairs that already exist are
// reported.
func TestClaimSkeletonsProtectsOlderUsers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, name := range []string{"admin", "paypal", "paypa1"} {
		if err := f.rdb.Users.Create(ctx, name, "placeholder-hash"); err != nil {
			t.Fatal(err)
		}
	}
	alike, err := f.svc.ClaimSkeletons(ctx)
	if err != nil {
		t.Fatalf("ClaimSkeletons: %v", err)
	}
	if len(alike) != 1 || alike[0] != [2]string{"paypal", "paypa1"} {
		t.Errorf("look-alike pairs: got %q, want [[paypal paypa1]]", alike)
	}
	var look *store.LookAlikeError
	if err := f.svc.AddUser(ctx, "\u0430dmin", "a long enough password"); !errors.As(err, &look) || look.Existing != "admin" {
		t.Errorf("AddUser(аdmin) after ClaimSkeletons: got %v, want a LookAlikeError naming admin", err)
	}
}
