package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"

	"loginsvc/internal/session"
	"loginsvc/internal/store"
	"loginsvc/internal/testkit"
)

// login is one login request as the web layer runs it: check the password,
// then start the session in a fresh request and save it. It returns the
// public id of the session it started.
func (f *fixture) login(ctx context.Context, user, password string) (string, error) {
	who, err := f.svc.CheckPassword(ctx, user, password, netip.MustParseAddr("192.0.2.1"))
	if err != nil {
		return "", err
	}
	sctx, err := f.sessions.Load(ctx, "")
	if err != nil {
		return "", err
	}
	startErr := f.sessions.Start(sctx, session.Login{User: who.Name, Stamp: who.Stamp})
	rec, _ := f.sessions.Current(sctx)
	// Save runs whatever Start said, as the middleware's does.
	if err := f.sessions.Save(sctx, httptest.NewRecorder()); err != nil {
		return "", fmt.Errorf("save after Start returned %v: %w", startErr, err)
	}
	return rec.ID, startErr
}

// cheapHash is an argon2id hash of password with the smallest parameters.
// A hash carries its parameters, so checking a login against it costs
// what it was made with: the race tests can run hundreds of logins, also
// under the race detector, through the production code.
func cheapHash(t *testing.T, password string) string {
	t.Helper()
	h, err := argon2id.CreateHash(password, &argon2id.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32})
	if err != nil {
		t.Fatalf("CreateHash: %v", err)
	}
	return h
}

// newRaceFixture is newFixture for logins by the hundred: cheap hashes for
// unknown users, no attempt or failure limits, no hashing-queue bound and
// no session cap to get in the way of counting every session.
func newRaceFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixtureWith(t, session.Config{Lifetime: 12 * time.Hour, MaxPerUser: 1 << 20}, Config{Limits: Limits{PerUser: 1 << 30, PerIP: 1 << 30, AttemptsPerIP: 1 << 30}, HashWait: time.Minute})
	dummy := cheapHash(t, rand.Text())
	f.svc.hasher.dummy = func() (string, error) { return dummy, nil }
	return f
}

// raceLogins runs rounds of logins of alice from 20 goroutines, each
// logging in again and again with the password prepare set for the round
// until alice's record no longer holds it. As soon as the first of them
// has its session, change runs while the others are between reading the
// record and starting their sessions. change returns how many sessions
// it ended and must leave alice with none. bob's session must survive it
// all.
func raceLogins(t *testing.T, f *fixture, prepare func(ctx context.Context, round int) (password string), change func(ctx context.Context, round int) (ended int, err error)) {
	t.Helper()
	const rounds, goroutines = 3, 20
	if err := f.rdb.Users.Create(context.Background(), "bob", cheapHash(t, "bob's password 1")); err != nil {
		t.Fatalf("Users.Create(bob): %v", err)
	}
	bob := f.addSession(t, "bob", "bob's password 1")

	raced := 0
	for round := range rounds {
		ctx, cancel := context.WithTimeout(context.Background(), testkit.WaitTimeout)
		defer cancel()
		password := prepare(ctx, round)
		stamp, err := f.client.HGet(ctx, "user:{alice}", "password").Result()
		if err != nil {
			t.Fatalf("round %d: HGET user:{alice}: %v", round, err)
		}
		// Logging in again is pointless once the record has changed: the
		// password would be refused (and cost a full hash to refuse).
		current := func() bool {
			s, err := f.client.HGet(ctx, "user:{alice}", "password").Result()
			return err == nil && s == stamp
		}

		errs := make([][]error, goroutines)
		started := make(chan struct{})
		var once sync.Once
		var stop atomic.Bool
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for !stop.Load() && ctx.Err() == nil && current() {
					_, err := f.login(ctx, "alice", password)
					errs[g] = append(errs[g], err)
					if err == nil {
						once.Do(func() { close(started) })
					}
				}
			})
		}
		allDone := make(chan struct{})
		go func() { wg.Wait(); close(allDone) }()

		select {
		case <-started:
		case <-allDone:
			t.Fatalf("round %d: every login ended before one started a session: %v", round, errs)
		case <-ctx.Done():
			t.Fatalf("round %d: no login started a session within %v", round, testkit.WaitTimeout)
		}
		start := time.Now()
		ended, err := change(ctx, round)
		took := time.Since(start)
		stop.Store(true)
		if err != nil {
			t.Fatalf("round %d: change: %v", round, err)
		}
		select {
		case <-allDone:
		case <-ctx.Done():
			t.Fatalf("round %d: logins still running after %v", round, testkit.WaitTimeout)
		}

		ok, racedNow, refused := 0, 0, 0
		for g := range errs {
			for i, err := range errs[g] {
				switch {
				case err == nil:
					ok++
				case errors.Is(err, session.ErrLoginRaced):
					racedNow++
				case errors.Is(err, ErrInvalidCredentials):
					refused++
				default:
					t.Errorf("round %d, goroutine %d, login %d: got %v, want success, %v or %v", round, g, i, err, session.ErrLoginRaced, ErrInvalidCredentials)
				}
			}
		}
		t.Logf("round %d: change took %v; %d sessions started before it, %d logins refused as raced, %d at the password check",
			round, took.Round(time.Millisecond), ok, racedNow, refused)
		raced += racedNow
		// Every session that started was in the index when the change read
		// it: the user record is checked in the same script that indexes.
		if ended != ok {
			t.Errorf("round %d: change ended %d sessions, want the %d that started", round, ended, ok)
		}
		if got := f.sessionsInRedis(t); got["alice"] != 0 || got["bob"] != 1 {
			t.Errorf("round %d: session keys per user (SCAN): got %v, want none of alice's and bob's one", round, got)
		}
		if f.exists(t, store.UserSessionsKey("alice"))[0] {
			t.Errorf("round %d: alice's index key exists, want gone", round)
		}
		if got := f.sessionIDs(t, "bob"); !got[bob] || len(got) != 1 {
			t.Errorf("round %d: bob's sessions: got %v, want just %s", round, got, bob)
		}
	}
	// The logins that lost the race are the point of the test; if none
	// did, the change never ran while logins were under way.
	if raced == 0 {
		t.Errorf("no login was refused as raced in %d rounds: the change never overlapped a login", rounds)
	}
}

func TestLoginsRacingADeleteLeaveNoSession(t *testing.T) {
	t.Parallel()
	f := newRaceFixture(t)
	const password = "alice's password 1"
	prepare := func(ctx context.Context, _ int) string {
		// The same name and password again each round, once the last
		// round's logins are over: a login that read the new record
		// would rightly keep its session.
		if err := f.rdb.Users.Create(ctx, "alice", cheapHash(t, password)); err != nil {
			t.Fatalf("Users.Create: %v", err)
		}
		return password
	}
	raceLogins(t, f, prepare, func(ctx context.Context, _ int) (int, error) {
		return f.svc.DeleteUser(ctx, "alice")
	})
}

func TestLoginsRacingAPasswordChangeLeaveNoOldPasswordSession(t *testing.T) {
	t.Parallel()
	f := newRaceFixture(t)
	// The operator's `server user passwd`: another process, with hashing
	// slots of its own. Its new hash has the production cost, so logins go
	// on during it.
	operator, err := NewService(f.rdb, f.sessions, Config{})
	if err != nil {
		t.Fatalf("NewService: %v", err)
	}
	password := func(round int) string { return fmt.Sprintf("alice's password %d", round) }
	if err := f.rdb.Users.Create(context.Background(), "alice", "placeholder"); err != nil {
		t.Fatalf("Users.Create: %v", err)
	}
	prepare := func(ctx context.Context, round int) string {
		// What the last round set, made cheap to check.
		if err := f.rdb.Users.SetPassword(ctx, "alice", cheapHash(t, password(round))); err != nil {
			t.Fatalf("Users.SetPassword: %v", err)
		}
		return password(round)
	}
	raceLogins(t, f, prepare, func(ctx context.Context, round int) (int, error) {
		return operator.SetPassword(ctx, "alice", password(round+1))
	})
}

// A login checked before a delete or password change cannot start its
// session after it.
func TestStartWithAStaleLoginIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(f *fixture) error
	}{
		{"user deleted", func(f *fixture) error { _, err := f.svc.DeleteUser(ctx, "alice"); return err }},
		{"password changed", func(f *fixture) error { _, err := f.svc.SetPassword(ctx, "alice", "alice's password 2"); return err }},
		{"deleted and created again", func(f *fixture) error {
			if _, err := f.svc.DeleteUser(ctx, "alice"); err != nil {
				return err
			}
			return f.svc.AddUser(ctx, "alice", "alice's password 1")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.addUser(t, "alice", "alice's password 1")
			who, err := f.svc.CheckPassword(ctx, "alice", "alice's password 1", netip.MustParseAddr("192.0.2.1"))
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			if err := tt.change(f); err != nil {
				t.Fatalf("change: %v", err)
			}
			sctx, err := f.sessions.Load(ctx, "")
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if err := f.sessions.Start(sctx, session.Login{User: who.Name, Stamp: who.Stamp}); !errors.Is(err, session.ErrLoginRaced) {
				t.Errorf("Start after the change: got %v, want %v", err, session.ErrLoginRaced)
			}
			if err := f.sessions.Save(sctx, httptest.NewRecorder()); err != nil {
				t.Errorf("Save after the refused Start: got %v, want no error", err)
			}
			if got := f.sessionsInRedis(t); len(got) != 0 {
				t.Errorf("session keys (SCAN): got %v, want none", got)
			}
			if f.exists(t, store.UserSessionsKey("alice"))[0] {
				t.Errorf("alice's index key exists, want none")
			}
		})
	}
}
