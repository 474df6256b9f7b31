package auth

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/redis/go-redis/v9"

	"loginsvc/internal/redistest"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
	"loginsvc/internal/testkit"
)

// fixture is a Service on a redis-server of the test's own, wired as the
// service wires it.
type fixture struct {
	srv      *redistest.Server
	rdb      *store.Redis
	client   *redis.Client
	sessions *session.Manager
	svc      *Service
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, session.Config{Lifetime: 12 * time.Hour}, Config{})
}

// newFixtureWith is newFixture with the session manager and the Service
// configured by sc and cfg.
func newFixtureWith(t *testing.T, sc session.Config, cfg Config) *fixture {
	t.Helper()
	srv := redistest.Start(t)
	rdb, err := store.Open(srv.URL(), store.Timeouts{})
	if err != nil {
		t.Fatalf("store.Open(%q): %v", srv.URL(), err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	f := &fixture{
		srv:      srv,
		rdb:      rdb,
		client:   srv.Client(t),
		sessions: session.New(rdb.Sessions, sc, slog.New(slog.DiscardHandler)),
	}
	f.svc, err = NewService(rdb, f.sessions, cfg)
	if err != nil {
		t.Fatalf("NewService: %v", err)
	}
	return f
}

func (f *fixture) addUser(t *testing.T, name, password string) {
	t.Helper()
	if err := f.svc.AddUser(context.Background(), name, password); err != nil {
		t.Fatalf("AddUser(%q): %v", name, err)
	}
}

// addSession logs username in with password the way the web layer does and
// returns the public id of the session it started.
func (f *fixture) addSession(t *testing.T, username, password string) string {
	t.Helper()
	ctx := context.Background()
	who, err := f.svc.CheckPassword(ctx, username, password, netip.MustParseAddr("192.0.2.1"))
	if err != nil {
		t.Fatalf("Login(%q): %v", username, err)
	}
	ctx, err = f.sessions.Load(ctx, "")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := f.sessions.Start(ctx, session.Login{User: who.Name, Stamp: who.Stamp}); err != nil {
		t.Fatalf("Start(%q): %v", username, err)
	}
	cur, _ := f.sessions.Current(ctx)
	return cur.ID
}

// sessionIDs is the set of public ids of user's live sessions.
func (f *fixture) sessionIDs(t *testing.T, user string) map[string]bool {
	t.Helper()
	list, err := f.sessions.List(context.Background(), user)
	if err != nil {
		t.Fatalf("List(%q): %v", user, err)
	}
	ids := map[string]bool{}
	for _, r := range list {
		ids[r.ID] = true
	}
	return ids
}

// exists reports which of keys are still in Redis.
func (f *fixture) exists(t *testing.T, keys ...string) []bool {
	t.Helper()
	got := make([]bool, len(keys))
	for i, key := range keys {
		got[i] = testkit.Exists(t, f.client, key)
	}
	return got
}

// sessionsInRedis counts the session keys in Redis per user, walking them
// with SCAN and reading each document, whatever the index says.
func (f *fixture) sessionsInRedis(t *testing.T) map[string]int {
	t.Helper()
	ctx := context.Background()
	users := map[string]int{}
	iter := f.client.Scan(ctx, 0, store.SessionKey("*"), 500).Iterator()
	for iter.Next(ctx) {
		b, err := f.client.Get(ctx, iter.Val()).Bytes()
		if err != nil {
			continue // expired meanwhile
		}
		var doc struct {
			Values map[string]any `json:"values"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("GET %s: %v (%s)", iter.Val(), err, b)
		}
		name, _ := doc.Values["username"].(string)
		users[name]++
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN: %v", err)
	}
	return users
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// 70 characters with inner, leading and trailing spaces and non-ASCII.
	const password = "  Ünïcødé pässwörd — with spaces, 🔑 and quite a few more characters  "
	maxLen := strings.Repeat("p", MaxPasswordBytes)
	f.addUser(t, "alice", password)
	f.addUser(t, "Jose\u0301", password) // decomposed é, stored composed
	f.addUser(t, "bob", maxLen)

	tests := []struct {
		name, user, password string
		want                 string // "" means ErrInvalidCredentials
	}{
		{"right password", "alice", password, "alice"},
		{"fullwidth name", "ａｌｉｃｅ", password, "alice"},
		{"composed name", "Jos\u00e9", password, "Jos\u00e9"},
		{"decomposed name", "Jose\u0301", password, "Jos\u00e9"},
		{"exactly MaxPasswordBytes", "bob", maxLen, "bob"},

		{"wrong password", "alice", "  Ünïcødé pässwörd — with spaces, 🔑 and quite a few more character  ", ""},
		{"unknown user", "mallory", password, ""},
		{"name of another case", "Alice", password, ""},
		{"invalid name", "al{ice}", password, ""},
		{"empty name", "", password, ""},
		{"password trimmed", "alice", strings.TrimSpace(password), ""},
		{"trailing space dropped", "alice", strings.TrimSuffix(password, " "), ""},
		{"password upper-cased", "alice", strings.ToUpper(password), ""},
		{"password decomposed", "alice", strings.Replace(password, "Ü", "U\u0308", 1), ""},
		{"empty password", "alice", "", ""},
		{"one byte over MaxPasswordBytes", "bob", maxLen + "p", ""},
		{"megabyte password", "bob", strings.Repeat("p", 1<<20), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			who, err := f.svc.Authenticate(context.Background(), tt.user, tt.password)
			got := who.Name
			switch {
			case tt.want != "" && (err != nil || got != tt.want):
				t.Errorf("Authenticate(%q): got %q, %v; want %q, nil", tt.user, got, err, tt.want)
			// The sentinel itself, not wrapped: no detail tells failures apart.
			case tt.want == "" && (err != ErrInvalidCredentials || got != ""):
				t.Errorf("Authenticate(%q): got %q, %v; want \"\", exactly %v", tt.user, got, err, ErrInvalidCredentials)
			}
		})
	}
}

func TestAddUserChecksItsInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name, user, password string
		wantErr              error
	}{
		{"11 characters", "u1", "abcdefghijk", ErrWeakPassword},
		{"11 characters in 22 bytes", "u2", "ééééééééééé", ErrWeakPassword},
		{"empty", "u3", "", ErrWeakPassword},
		{"over MaxPasswordBytes", "u4", strings.Repeat("x", MaxPasswordBytes+1), ErrWeakPassword},
		{"invalid name", "u{5}", "long enough", ErrInvalidUsername},
		{"a name that reads as a list", "mallory, u8", "long enough", ErrInvalidNewUsername},
		{"a name that reads as an option", "-u9", "long enough", ErrInvalidNewUsername},
		{"12 characters", "u6", "abcdefghijkl", nil},
		{"exactly MaxPasswordBytes", "u7", strings.Repeat("x", MaxPasswordBytes), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := f.svc.AddUser(context.Background(), tt.user, tt.password)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("AddUser: got %v, want %v", err, tt.wantErr)
			}
			created := f.exists(t, "user:{"+tt.user+"}")[0]
			if created != (tt.wantErr == nil) {
				t.Errorf("user record exists: got %v, want %v", created, tt.wantErr == nil)
			}
		})
	}

	f.addUser(t, "alice", "first password")
	if err := f.svc.AddUser(context.Background(), "alice", "second password"); !errors.Is(err, store.ErrUserExists) {
		t.Errorf("AddUser of an existing name: got %v, want %v", err, store.ErrUserExists)
	}
}

// A user created before new names were restricted keeps a name outside
// the new set: it logs in, and EnsureUser (the bootstrap user at start)
// finds it rather than failing the start.
func TestExistingUsersOutsideTheNewSetStillLogIn(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	const name, password = "bob smith, ops", "bob's long password"
	hash, err := argon2id.CreateHash(password, HashParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.users.Create(ctx, name, hash); err != nil {
		t.Fatalf("Users.Create(%q): %v", name, err)
	}
	if who, err := f.svc.Authenticate(ctx, name, password); err != nil || who.Name != name {
		t.Errorf("Authenticate(%q): got (%q, %v), want a login", name, who.Name, err)
	}
	if created, err := f.svc.EnsureUser(ctx, name, "another long password"); err != nil || created {
		t.Errorf("EnsureUser(%q) of the existing user: got (%v, %v), want (false, nil)", name, created, err)
	}
	if _, err := f.svc.EnsureUser(ctx, "new, user", "another long password"); !errors.Is(err, ErrInvalidNewUsername) {
		t.Errorf("EnsureUser of a new name outside the set: got %v, want ErrInvalidNewUsername", err)
	}
}

func TestStoredHashIsArgon2idNotThePassword(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const password = "correct horse battery staple"
	f.addUser(t, "alice", password)
	f.addUser(t, "bob", password)

	hashes := map[string]string{}
	for _, name := range []string{"alice", "bob"} {
		hash, err := f.client.HGet(context.Background(), "user:{"+name+"}", "password").Result()
		if err != nil {
			t.Fatalf("HGET user:{%s} password: %v", name, err)
		}
		hashes[name] = hash
		if !strings.HasPrefix(hash, "$argon2id$v=19$") {
			t.Errorf("%s's stored hash %q: want PHC form starting $argon2id$v=19$", name, hash)
		}
		if strings.Contains(hash, password) {
			t.Errorf("%s's stored hash %q contains the plain password", name, hash)
		}
		p, salt, key, err := argon2id.DecodeHash(hash)
		if err != nil {
			t.Fatalf("DecodeHash(%q): %v", hash, err)
		}
		if p.Memory < 19456 || p.Iterations < 2 || p.Parallelism < 1 {
			t.Errorf("%s's hash parameters: got m=%d,t=%d,p=%d; want m>=19456,t>=2,p>=1", name, p.Memory, p.Iterations, p.Parallelism)
		}
		if len(salt) < 16 || len(key) < 32 {
			t.Errorf("%s's hash: got %d-byte salt, %d-byte key; want at least 16 and 32", name, len(salt), len(key))
		}
	}
	if hashes["alice"] == hashes["bob"] {
		t.Errorf("two users with one password have the same hash %q, want different salts", hashes["alice"])
	}
}

func TestEnsureUserNeverReplacesAPassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)

	created, err := f.svc.EnsureUser(ctx, "admin", "first password")
	if err != nil || !created {
		t.Fatalf("first EnsureUser: got created=%v, %v; want true, nil", created, err)
	}
	created, err = f.svc.EnsureUser(ctx, "admin", "second password")
	if err != nil || created {
		t.Fatalf("second EnsureUser: got created=%v, %v; want false, nil", created, err)
	}
	if _, err := f.svc.Authenticate(ctx, "admin", "first password"); err != nil {
		t.Errorf("first password after second EnsureUser: got %v, want it to work", err)
	}
	if _, err := f.svc.Authenticate(ctx, "admin", "second password"); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("second password: got %v, want %v", err, ErrInvalidCredentials)
	}
	if _, err := f.svc.EnsureUser(ctx, "admin", "short"); !errors.Is(err, ErrWeakPassword) {
		t.Errorf("EnsureUser with a weak password: got %v, want %v", err, ErrWeakPassword)
	}
}

func TestConcurrentEnsureUserCreatesOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)

	const n = 10
	passwords := make([]string, n)
	created := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		passwords[i] = "replica password " + rand.Text()
		wg.Go(func() { created[i], errs[i] = f.svc.EnsureUser(ctx, "admin", passwords[i]) })
	}
	wg.Wait()

	winner := -1
	for i := range n {
		switch {
		case errs[i] != nil:
			t.Errorf("EnsureUser %d: %v", i, errs[i])
		case created[i] && winner >= 0:
			t.Errorf("EnsureUser %d and %d both created the user, want exactly one", winner, i)
		case created[i]:
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("no EnsureUser created the user, want exactly one")
	}
	if _, err := f.svc.Authenticate(ctx, "admin", passwords[winner]); err != nil {
		t.Errorf("the creator's password: got %v, want it to work", err)
	}
}

func TestDeleteUserEndsOnlyThatUsersSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.addUser(t, "alice", "alice's password")
	f.addUser(t, "bob", "bob's password")
	// A user whose name merely starts with alice's.
	f.addUser(t, "alice2", "alice2's password")
	f.addSession(t, "alice", "alice's password")
	f.addSession(t, "alice", "alice's password")
	bob := f.addSession(t, "bob", "bob's password")
	alicia := f.addSession(t, "alice2", "alice2's password")

	n, err := f.svc.DeleteUser(ctx, "alice")
	if err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if n != 2 {
		t.Errorf("DeleteUser: got %d sessions ended, want 2", n)
	}
	if got := f.sessionIDs(t, "alice"); len(got) != 0 {
		t.Errorf("alice's sessions after DeleteUser: got %v, want none", got)
	}
	if got, want := f.sessionsInRedis(t), map[string]int{"bob": 1, "alice2": 1}; !maps.Equal(got, want) {
		t.Errorf("session keys per user after DeleteUser (SCAN): got %v, want %v", got, want)
	}
	if got := f.sessionIDs(t, "bob"); !got[bob] || len(got) != 1 {
		t.Errorf("bob's sessions: got %v, want just %s", got, bob)
	}
	if got := f.sessionIDs(t, "alice2"); !got[alicia] || len(got) != 1 {
		t.Errorf("alice2's sessions: got %v, want just %s", got, alicia)
	}
	got := f.exists(t, "user:{alice}", "user:{alice}:sessions", "user:{bob}")
	if want := []bool{false, false, true}; !slices.Equal(got, want) {
		t.Errorf("user:{alice}, its index, user:{bob} exist: got %v, want %v", got, want)
	}
	if _, err := f.svc.Authenticate(ctx, "alice", "alice's password"); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("Authenticate as deleted user: got %v, want %v", err, ErrInvalidCredentials)
	}
	if _, err := f.svc.DeleteUser(ctx, "alice"); !errors.Is(err, store.ErrUserNotFound) {
		t.Errorf("second DeleteUser: got %v, want %v", err, store.ErrUserNotFound)
	}
}

func TestSetPasswordEndsSessionsAndReplacesThePassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.addUser(t, "alice", "old password")
	f.addUser(t, "bob", "bob's password")
	f.addSession(t, "alice", "old password")
	f.addSession(t, "alice", "old password")
	bob := f.addSession(t, "bob", "bob's password")

	n, err := f.svc.SetPassword(ctx, "alice", "new password")
	if err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	if n != 2 {
		t.Errorf("SetPassword: got %d sessions ended, want 2", n)
	}
	if got := f.sessionIDs(t, "alice"); len(got) != 0 {
		t.Errorf("alice's sessions after SetPassword: got %v, want none", got)
	}
	if got := f.sessionsInRedis(t); got["alice"] != 0 || got["bob"] != 1 {
		t.Errorf("session keys per user after SetPassword (SCAN): got %v, want none of alice's and bob's one", got)
	}
	if f.exists(t, store.UserSessionsKey("alice"))[0] {
		t.Errorf("alice's index key exists after SetPassword, want gone")
	}
	if got := f.sessionIDs(t, "bob"); !got[bob] {
		t.Errorf("bob's sessions: got %v, want %s kept", got, bob)
	}
	if _, err := f.svc.Authenticate(ctx, "alice", "old password"); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("old password: got %v, want %v", err, ErrInvalidCredentials)
	}
	if who, err := f.svc.Authenticate(ctx, "alice", "new password"); err != nil || who.Name != "alice" {
		t.Errorf("new password: got %q, %v; want alice, nil", who.Name, err)
	}

	if _, err := f.svc.SetPassword(ctx, "carol", "new password"); !errors.Is(err, store.ErrUserNotFound) {
		t.Errorf("SetPassword of an unknown user: got %v, want %v", err, store.ErrUserNotFound)
	}
	if f.exists(t, "user:{carol}")[0] {
		t.Errorf("SetPassword of an unknown user created user:{carol}")
	}
	if _, err := f.svc.SetPassword(ctx, "alice", "short"); !errors.Is(err, ErrWeakPassword) {
		t.Errorf("SetPassword to a weak password: got %v, want %v", err, ErrWeakPassword)
	}
}

// A password change whose check of the current password passed before
// another write of the password cannot write after it: the other write
// (the operator's `server user passwd`, or the owner's own change) stands,
// and the stale change is refused. Before changes were compare-and-set, an
// attacker holding the password and a session undid the operator's reset.
func TestChangeCheckedBeforeAnotherWriteIsRefused(t *testing.T) {
	t.Parallel()
	const p1, operators, owners, attackers = "alice's password 1", "operator's reset 2", "owner's change 3", "attacker's change 4"
	ip := netip.MustParseAddr("192.0.2.1")
	tests := []struct {
		name    string
		write   func(ctx context.Context, f *fixture) error
		current string // alice's password after it all
	}{
		{"operator's reset", func(ctx context.Context, f *fixture) error {
			// Another process, as `server user passwd` is.
			operator, err := NewService(f.rdb, f.sessions, Config{})
			if err != nil {
				return err
			}
			_, err = operator.SetPassword(ctx, "alice", operators)
			return err
		}, operators},
		{"owner's change", func(ctx context.Context, f *fixture) error {
			_, err := f.svc.ChangePassword(ctx, Attempt{Username: "alice", Password: p1, IP: ip}, owners)
			return err
		}, owners},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixture(t)
			f.addUser(t, "alice", p1)

			// The attacker's change, interleaved by hand: the check passes,
			// the other write lands, then the attacker's write is tried.
			id, err := f.svc.LoginAttempt(ctx, Attempt{Username: "alice", Password: p1, IP: ip})
			if err != nil {
				t.Fatalf("check of the current password: %v", err)
			}
			if err := tt.write(ctx, f); err != nil {
				t.Fatalf("the other write: %v", err)
			}
			if _, err := f.svc.changeChecked(ctx, id, p1, attackers); !errors.Is(err, ErrPasswordChangedElsewhere) {
				t.Errorf("change checked before the other write: got %v, want %v", err, ErrPasswordChangedElsewhere)
			}

			if who, err := f.svc.Authenticate(ctx, "alice", tt.current); err != nil || who.Name != "alice" {
				t.Errorf("password of the other write: got %q, %v; want alice, nil", who.Name, err)
			}
			for _, old := range []string{p1, attackers} {
				if _, err := f.svc.Authenticate(ctx, "alice", old); !errors.Is(err, ErrInvalidCredentials) {
					t.Errorf("password %q: got %v, want %v", old, err, ErrInvalidCredentials)
				}
			}
		})
	}
}

// A change to the current password is refused, and costs no write.
func TestChangeToTheSamePasswordIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	const p1 = "alice's password 1"
	f.addUser(t, "alice", p1)
	before, err := f.client.HGet(ctx, "user:{alice}", "password").Result()
	if err != nil {
		t.Fatalf("HGET user:{alice}: %v", err)
	}

	_, err = f.svc.ChangePassword(ctx, Attempt{Username: "alice", Password: p1, IP: netip.MustParseAddr("192.0.2.1")}, p1)
	if !errors.Is(err, ErrSamePassword) {
		t.Errorf("ChangePassword to the current password: got %v, want %v", err, ErrSamePassword)
	}
	if after, _ := f.client.HGet(ctx, "user:{alice}", "password").Result(); after != before {
		t.Errorf("stored hash after the refused change: got %q, want %q unchanged", after, before)
	}
	// A wrong current password is still the answer when it is wrong, so
	// the refusal tells nothing about the password to a guesser.
	_, err = f.svc.ChangePassword(ctx, Attempt{Username: "alice", Password: "a wrong guess 1", IP: netip.MustParseAddr("192.0.2.1")}, "a wrong guess 1")
	if !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("ChangePassword from a wrong password to itself: got %v, want %v", err, ErrInvalidCredentials)
	}
}

func TestRedisOutageIsNotInvalidCredentials(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.addUser(t, "alice", "correct horse battery staple")
	f.srv.Stop(t)

	tests := []struct {
		name string
		op   func() error
	}{
		{"Authenticate", func() error {
			_, err := f.svc.Authenticate(ctx, "alice", "correct horse battery staple")
			return err
		}},
		{"Authenticate with a wrong password", func() error {
			_, err := f.svc.Authenticate(ctx, "alice", "wrong password")
			return err
		}},
		{"AddUser", func() error { return f.svc.AddUser(ctx, "bob", "bob's password") }},
		{"DeleteUser", func() error { _, err := f.svc.DeleteUser(ctx, "alice"); return err }},
		{"ListUsers", func() error { _, err := f.svc.ListUsers(ctx); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("with Redis down: got %v, want %v (and not %v)", err, store.ErrUnavailable, ErrInvalidCredentials)
			}
		})
	}
}

// An unknown or malformed name must cost the same argon2id comparison as a
// wrong password, or response times tell which accounts exist. Swapping the
// dummy hash for garbage makes that comparison visible: it fails loudly
// instead of quietly answering "invalid". An early return for unknown users
// would skip it and make this test fail.
func TestUnknownUsersPayForOneHashComparison(t *testing.T) {
	f := newFixture(t)
	f.svc.hasher.dummy = func() (string, error) { return "not an argon2id hash", nil }
	for _, name := range []string{"nobody", "bad{name}", ""} {
		_, err := f.svc.Authenticate(context.Background(), name, "some password")
		if err == nil || errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("Authenticate(%q): got %v, want the dummy comparison's error (proof it ran)", name, err)
		}
	}
}
