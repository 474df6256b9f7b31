package store_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"loginsvc/internal/store"
)

// sealedA and sealedB stand for auth.Sealer output; the store treats them
// as opaque text.
const (
	sealedA = "v1.AAAAAAAA.c2VhbGVkIEE"
	sealedB = "v1.BBBBBBBB.c2VhbGVkIEI"
)

func TestTOTPFactorLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, rdb, raw := openRedis(t)
	f := rdb.Factors

	if _, ok, err := f.TOTP(ctx, "alice"); ok || err != nil {
		t.Fatalf("TOTP before SetTOTP: got %v, %v; want none", ok, err)
	}
	if ok, err := f.UseTOTPStep(ctx, "alice", 100); ok || err != nil {
		t.Errorf("UseTOTPStep without a factor: got %v, %v; want false", ok, err)
	}
	if keyExists(t, raw, store.UserTOTPKey("alice")) {
		t.Errorf("UseTOTPStep without a factor created %s", store.UserTOTPKey("alice"))
	}

	added := time.Date(2026, 3, 1, 12, 0, 15, 0, time.UTC)
	const confirmed = 59_000_000
	if err := f.SetTOTP(ctx, "alice", sealedA, added, confirmed); err != nil {
		t.Fatalf("SetTOTP: %v", err)
	}
	want := store.TOTP{Sealed: sealedA, AddedAt: added, LastStep: confirmed}
	if got, ok, err := f.TOTP(ctx, "alice"); !ok || err != nil || got != want {
		t.Fatalf("TOTP: got %+v, %v, %v; want %+v", got, ok, err, want)
	}

	// The code that confirmed the enrolment, an older one, and each code
	// once: a step is accepted only above the last accepted one.
	uses := []struct {
		name string
		step int64
		want bool
	}{
		{"the confirming step", confirmed, false},
		{"an older step", confirmed - 1, false},
		{"the next step", confirmed + 1, true},
		{"the same step again (replay)", confirmed + 1, false},
		{"a step further on", confirmed + 3, true},
		{"a step skipped over", confirmed + 2, false},
	}
	for _, u := range uses {
		if ok, err := f.UseTOTPStep(ctx, "alice", u.step); ok != u.want || err != nil {
			t.Errorf("UseTOTPStep(%s, %d): got %v, %v; want %v", u.name, u.step, ok, err, u.want)
		}
	}
	if got, _, _ := f.TOTP(ctx, "alice"); got.LastStep != confirmed+3 {
		t.Errorf("LastStep: got %d, want %d", got.LastStep, confirmed+3)
	}

	// Reseal: only over the secret the caller opened.
	if err := f.ResealTOTP(ctx, "alice", sealedB, "v1.CCCCCCCC.x"); err != nil {
		t.Fatalf("ResealTOTP over a changed secret: %v", err)
	}
	if got, _, _ := f.TOTP(ctx, "alice"); got.Sealed != sealedA {
		t.Errorf("after ResealTOTP over a changed secret: got %q, want %q kept", got.Sealed, sealedA)
	}
	if err := f.ResealTOTP(ctx, "alice", sealedA, sealedB); err != nil {
		t.Fatalf("ResealTOTP: %v", err)
	}
	if got, _, _ := f.TOTP(ctx, "alice"); got.Sealed != sealedB || got.LastStep != confirmed+3 || !got.AddedAt.Equal(added) {
		t.Errorf("after ResealTOTP: got %+v, want secret %q and the rest kept", got, sealedB)
	}
	if err := f.ResealTOTP(ctx, "nobody", "", sealedB); err != nil || keyExists(t, raw, store.UserTOTPKey("nobody")) {
		t.Errorf("ResealTOTP of no factor: %v, or it created one", err)
	}

	// A new enrolment replaces the whole record, its step included.
	if err := f.SetTOTP(ctx, "alice", sealedA, added.Add(time.Hour), 10); err != nil {
		t.Fatalf("SetTOTP again: %v", err)
	}
	if got, _, _ := f.TOTP(ctx, "alice"); got.Sealed != sealedA || got.LastStep != 10 {
		t.Errorf("after a second SetTOTP: got %+v, want secret %q, step 10", got, sealedA)
	}

	if ok, err := f.DeleteTOTP(ctx, "alice"); !ok || err != nil {
		t.Errorf("DeleteTOTP: got %v, %v; want true", ok, err)
	}
	if ok, err := f.DeleteTOTP(ctx, "alice"); ok || err != nil {
		t.Errorf("DeleteTOTP again: got %v, %v; want false", ok, err)
	}
	if ok, err := f.UseTOTPStep(ctx, "alice", confirmed+10); ok || err != nil {
		t.Errorf("UseTOTPStep after DeleteTOTP: got %v, %v; want false", ok, err)
	}
}

// Two replicas (two clients) given the same code at the same moment: one
// login is accepted, the others are replays.
func TestUseTOTPStepAcceptsOneOfConcurrentUses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, a, _ := openRedis(t)
	b := open(t, srv.URL())
	if err := a.Factors.SetTOTP(ctx, "alice", sealedA, time.Now(), 100); err != nil {
		t.Fatalf("SetTOTP: %v", err)
	}
	for _, step := range []int64{101, 102} {
		wins := race(t, 20, func(i int) (bool, error) {
			replica := []*store.Redis{a, b}[i%2]
			return replica.Factors.UseTOTPStep(ctx, "alice", step)
		})
		if wins != 1 {
			t.Errorf("step %d used by 20 concurrent logins on two replicas: %d accepted, want 1", step, wins)
		}
	}
}

// race runs op n times at once and returns how many reported true.
func race(t *testing.T, n int, op func(i int) (bool, error)) int {
	t.Helper()
	var wins atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			ok, err := op(i)
			if err != nil {
				errs <- err
			}
			if ok {
				wins.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent use: %v", err)
	}
	return int(wins.Load())
}

func TestPendingTOTPEnrolmentExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, rdb, raw := openRedis(t)
	f := rdb.Factors

	if _, ok, err := f.PendingTOTP(ctx, "alice"); ok || err != nil {
		t.Fatalf("PendingTOTP before any: got %v, %v; want none", ok, err)
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		if err := f.SetPendingTOTP(ctx, "alice", sealedA, ttl); err == nil {
			t.Errorf("SetPendingTOTP with ttl %v: got nil, want an error (it would never expire)", ttl)
		}
	}
	if err := f.SetPendingTOTP(ctx, "alice", sealedA, 10*time.Minute); err != nil {
		t.Fatalf("SetPendingTOTP: %v", err)
	}
	assertTTL(t, raw, store.UserTOTPPendingKey("alice"), 10*time.Minute)
	if got, ok, err := f.PendingTOTP(ctx, "alice"); got != sealedA || !ok || err != nil {
		t.Errorf("PendingTOTP: got %q, %v, %v; want %q", got, ok, err, sealedA)
	}
	if err := f.SetPendingTOTP(ctx, "alice", sealedB, time.Minute); err != nil {
		t.Fatalf("SetPendingTOTP again: %v", err)
	}
	if got, _, _ := f.PendingTOTP(ctx, "alice"); got != sealedB {
		t.Errorf("PendingTOTP after a new enrolment: got %q, want %q", got, sealedB)
	}
	if err := f.DeletePendingTOTP(ctx, "alice"); err != nil {
		t.Fatalf("DeletePendingTOTP: %v", err)
	}
	if _, ok, err := f.PendingTOTP(ctx, "alice"); ok || err != nil {
		t.Errorf("PendingTOTP after DeletePendingTOTP: got %v, %v; want none", ok, err)
	}
	if err := f.DeletePendingTOTP(ctx, "alice"); err != nil {
		t.Errorf("DeletePendingTOTP of none: %v", err)
	}
}

// assertTTL checks that key expires within ttl, and not at once.
func assertTTL(t *testing.T, c *redis.Client, key string, ttl time.Duration) {
	t.Helper()
	got, err := c.PTTL(context.Background(), key).Result()
	if err != nil || got <= ttl-5*time.Second || got > ttl {
		t.Errorf("PTTL %s: got %v, %v; want about %v", key, got, err, ttl)
	}
}

func TestRecoveryCodesAreUsedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, rdb, _ := openRedis(t)
	f := rdb.Factors

	if _, ok, err := f.Recovery(ctx, "alice"); ok || err != nil {
		t.Fatalf("Recovery before SetRecovery: got %v, %v; want none", ok, err)
	}
	if n, ok, err := f.UseRecoveryCode(ctx, "alice", "h1"); n != 0 || ok || err != nil {
		t.Errorf("UseRecoveryCode without codes: got %d, %v, %v; want 0, false", n, ok, err)
	}
	added := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := f.SetRecovery(ctx, "alice", store.Recovery{Salt: "c2FsdA==", Hashes: []string{"h3", "h1", "h2"}, AddedAt: added}); err != nil {
		t.Fatalf("SetRecovery: %v", err)
	}
	got, ok, err := f.Recovery(ctx, "alice")
	if !ok || err != nil || got.Salt != "c2FsdA==" || !slices.Equal(got.Hashes, []string{"h1", "h2", "h3"}) || !got.AddedAt.Equal(added) {
		t.Fatalf("Recovery: got %+v, %v, %v; want salt c2FsdA==, hashes h1 h2 h3, added %v", got, ok, err, added)
	}

	uses := []struct {
		hash          string
		wantRemaining int
		wantOK        bool
	}{
		{"h9", 3, false},
		{"h1", 2, true},
		{"h1", 2, false},
		{"H2", 2, false}, // hashes are compared exactly
		{"h2", 1, true},
		{"h3", 0, true},
		{"h3", 0, false},
	}
	for _, u := range uses {
		n, ok, err := f.UseRecoveryCode(ctx, "alice", u.hash)
		if n != u.wantRemaining || ok != u.wantOK || err != nil {
			t.Errorf("UseRecoveryCode(%q): got %d, %v, %v; want %d, %v", u.hash, n, ok, err, u.wantRemaining, u.wantOK)
		}
	}
	if got, ok, err := f.Recovery(ctx, "alice"); !ok || err != nil || len(got.Hashes) != 0 || got.Salt == "" {
		t.Errorf("Recovery after every code was used: got %+v, %v, %v; want the salt, no hashes", got, ok, err)
	}

	// Regenerating invalidates the old codes.
	if err := f.SetRecovery(ctx, "alice", store.Recovery{Salt: "c2FsdDI=", Hashes: []string{"n1", "n2"}, AddedAt: added}); err != nil {
		t.Fatalf("SetRecovery: %v", err)
	}
	if err := f.SetRecovery(ctx, "alice", store.Recovery{Salt: "c2FsdDM=", Hashes: []string{"m1"}, AddedAt: added}); err != nil {
		t.Fatalf("SetRecovery: %v", err)
	}
	if n, ok, err := f.UseRecoveryCode(ctx, "alice", "n1"); ok || n != 1 || err != nil {
		t.Errorf("UseRecoveryCode of a replaced code: got %d, %v, %v; want 1, false", n, ok, err)
	}
	if got, _, _ := f.Recovery(ctx, "alice"); got.Salt != "c2FsdDM=" || !slices.Equal(got.Hashes, []string{"m1"}) {
		t.Errorf("Recovery after regeneration: got %+v, want salt c2FsdDM= and m1 only", got)
	}
	if err := f.SetRecovery(ctx, "alice", store.Recovery{Hashes: []string{"x"}}); err == nil {
		t.Errorf("SetRecovery without a salt: got nil, want an error")
	}

	if ok, err := f.DeleteRecovery(ctx, "alice"); !ok || err != nil {
		t.Errorf("DeleteRecovery: got %v, %v; want true", ok, err)
	}
	if ok, err := f.DeleteRecovery(ctx, "alice"); ok || err != nil {
		t.Errorf("DeleteRecovery again: got %v, %v; want false", ok, err)
	}
	if n, ok, err := f.UseRecoveryCode(ctx, "alice", "m1"); ok || n != 0 || err != nil {
		t.Errorf("UseRecoveryCode after DeleteRecovery: got %d, %v, %v; want 0, false", n, ok, err)
	}
}

// The same recovery code typed into two replicas at once logs in once.
func TestUseRecoveryCodeAcceptsOneOfConcurrentUses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, a, _ := openRedis(t)
	b := open(t, srv.URL())
	if err := a.Factors.SetRecovery(ctx, "alice", store.Recovery{Salt: "c2FsdA==", Hashes: []string{"h1", "h2"}, AddedAt: time.Now()}); err != nil {
		t.Fatalf("SetRecovery: %v", err)
	}
	wins := race(t, 20, func(i int) (bool, error) {
		_, ok, err := []*store.Redis{a, b}[i%2].Factors.UseRecoveryCode(ctx, "alice", "h1")
		return ok, err
	})
	if wins != 1 {
		t.Errorf("one code used by 20 concurrent logins on two replicas: %d accepted, want 1", wins)
	}
	if got, _, _ := a.Factors.Recovery(ctx, "alice"); !slices.Equal(got.Hashes, []string{"h2"}) {
		t.Errorf("hashes left: got %q, want h2 only", got.Hashes)
	}
}

func TestPendingLoginIsSingleUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, rdb, raw := openRedis(t)
	f := rdb.Factors
	h := newHash()
	data := []byte{0, 1, 2, 0xff, '{', '}'} // opaque bytes, not text

	if _, ok, err := f.Pending(ctx, h); ok || err != nil {
		t.Fatalf("Pending before PutPending: got %v, %v; want none", ok, err)
	}
	if err := f.PutPending(ctx, h, data, 0); err == nil {
		t.Errorf("PutPending with no ttl: got nil, want an error (it would never expire)")
	}
	if err := f.PutPending(ctx, h, data, 5*time.Minute); err != nil {
		t.Fatalf("PutPending: %v", err)
	}
	assertTTL(t, raw, store.LoginPendingKey(h), 5*time.Minute)
	if got, ok, err := f.Pending(ctx, h); !bytes.Equal(got, data) || !ok || err != nil {
		t.Errorf("Pending: got %v, %v, %v; want %v", got, ok, err, data)
	}
	if got, ok, err := f.TakePending(ctx, h); !bytes.Equal(got, data) || !ok || err != nil {
		t.Errorf("TakePending: got %v, %v, %v; want %v", got, ok, err, data)
	}
	if _, ok, err := f.TakePending(ctx, h); ok || err != nil {
		t.Errorf("TakePending again: got %v, %v; want none (single use)", ok, err)
	}

	if err := f.PutPending(ctx, h, data, time.Minute); err != nil {
		t.Fatalf("PutPending: %v", err)
	}
	if err := f.DeletePending(ctx, h); err != nil {
		t.Fatalf("DeletePending: %v", err)
	}
	if keyExists(t, raw, store.LoginPendingKey(h)) {
		t.Errorf("after DeletePending: %s still exists", store.LoginPendingKey(h))
	}
	if err := f.DeletePending(ctx, h); err != nil {
		t.Errorf("DeletePending of none: %v", err)
	}
}

// A reset or a user's deletion leaves no factor key of the user behind,
// whatever the user had, and touches no one else's.
func TestDeleteAllLeavesNoFactorKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, rdb, raw := openRedis(t)
	f := rdb.Factors
	now := time.Now()
	for _, name := range []string{"alice", "bob"} {
		owner := addUser(t, rdb, name, now.Add(time.Hour))
		if _, err := rdb.Sessions.Create(ctx, newHash(), []byte("doc"), now.Add(time.Hour), owner, 100); err != nil {
			t.Fatalf("Create a session: %v", err)
		}
		if err := f.SetTOTP(ctx, name, sealedA, now, 1); err != nil {
			t.Fatalf("SetTOTP: %v", err)
		}
		if err := f.SetPendingTOTP(ctx, name, sealedB, time.Minute); err != nil {
			t.Fatalf("SetPendingTOTP: %v", err)
		}
		if err := f.SetRecovery(ctx, name, store.Recovery{Salt: "c2FsdA==", Hashes: []string{"h1"}, AddedAt: now}); err != nil {
			t.Fatalf("SetRecovery: %v", err)
		}
	}
	if got := scanKeys(t, raw, "user:{alice}:*"); len(got) != 5 {
		t.Fatalf("alice's keys before DeleteAll: got %q, want the index and 4 factor keys", got)
	}
	if err := f.DeleteAll(ctx, "alice"); err != nil {
		t.Fatalf("DeleteAll: %v", err)
	}
	if got := scanKeys(t, raw, "user:{alice}:*"); !slices.Equal(got, []string{store.UserSessionsKey("alice")}) {
		t.Errorf("alice's keys after DeleteAll: got %q, want only her session index", got)
	}
	if !keyExists(t, raw, store.UserKey("alice")) {
		t.Errorf("DeleteAll removed alice's user record")
	}
	if got := scanKeys(t, raw, "user:{bob}:*"); len(got) != 5 {
		t.Errorf("bob's keys after alice's DeleteAll: got %q, want all 5", got)
	}
	if err := f.DeleteAll(ctx, "nobody"); err != nil {
		t.Errorf("DeleteAll of a user without factors: %v", err)
	}
}

// scanKeys returns the keys matching pattern, sorted, walked with SCAN.
func scanKeys(t *testing.T, c *redis.Client, pattern string) []string {
	t.Helper()
	var keys []string
	iter := c.Scan(context.Background(), 0, pattern, 100).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN %s: %v", pattern, err)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// With Redis gone every operation fails fast with ErrUnavailable, which
// the web layer turns into 503.
func TestFactorsReportRedisUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, rdb, _ := openRedis(t)
	f := rdb.Factors
	srv.Stop(t)
	ops := map[string]func() error{
		"TOTP":              func() error { _, _, err := f.TOTP(ctx, "alice"); return err },
		"SetTOTP":           func() error { return f.SetTOTP(ctx, "alice", sealedA, time.Now(), 1) },
		"ResealTOTP":        func() error { return f.ResealTOTP(ctx, "alice", sealedA, sealedB) },
		"DeleteTOTP":        func() error { _, err := f.DeleteTOTP(ctx, "alice"); return err },
		"UseTOTPStep":       func() error { _, err := f.UseTOTPStep(ctx, "alice", 2); return err },
		"SetPendingTOTP":    func() error { return f.SetPendingTOTP(ctx, "alice", sealedA, time.Minute) },
		"PendingTOTP":       func() error { _, _, err := f.PendingTOTP(ctx, "alice"); return err },
		"DeletePendingTOTP": func() error { return f.DeletePendingTOTP(ctx, "alice") },
		"SetRecovery": func() error {
			return f.SetRecovery(ctx, "alice", store.Recovery{Salt: "c2FsdA==", Hashes: []string{"h1"}})
		},
		"Recovery":        func() error { _, _, err := f.Recovery(ctx, "alice"); return err },
		"UseRecoveryCode": func() error { _, _, err := f.UseRecoveryCode(ctx, "alice", "h1"); return err },
		"DeleteRecovery":  func() error { _, err := f.DeleteRecovery(ctx, "alice"); return err },
		"DeleteAll":       func() error { return f.DeleteAll(ctx, "alice") },
		"PutPending":      func() error { return f.PutPending(ctx, "h", []byte("x"), time.Minute) },
		"Pending":         func() error { _, _, err := f.Pending(ctx, "h"); return err },
		"TakePending":     func() error { _, _, err := f.TakePending(ctx, "h"); return err },
		"DeletePending":   func() error { return f.DeletePending(ctx, "h") },
	}
	for name, op := range ops {
		if err := failsFast(t, name, op); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with Redis stopped: got %v, want ErrUnavailable", name, err)
		}
	}
}
