package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"loginsvc/internal/redistest"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
)

// mfaCmd runs `server user mfa ARGS...` with nothing on stdin (not a
// terminal).
func mfaCmd(t *testing.T, redisURL string, args ...string) (string, error) {
	t.Helper()
	return userCmd(t, redisURL, "", append([]string{"mfa"}, args...)...)
}

// mustMFACmd is mfaCmd for steps that must succeed.
func mustMFACmd(t *testing.T, redisURL string, args ...string) string {
	t.Helper()
	out, err := mfaCmd(t, redisURL, args...)
	if err != nil {
		t.Fatalf("server user mfa %s: %v (output %q)", strings.Join(args, " "), err, out)
	}
	return out
}

// factorsSetup is what addFactors gives a user; zero fields give nothing.
type factorsSetup struct {
	totpAt     time.Time // an authenticator app confirmed then
	codes      int       // that many unused recovery codes...
	recoveryAt time.Time // ...issued then
	pending    bool      // an authenticator app enrolment in progress
}

// addFactors writes user's second factors straight into the store: the
// commands only read them or delete them, so a sealed secret and hashes
// need not be real ones.
func addFactors(t *testing.T, rdb *store.Redis, user string, f factorsSetup) {
	t.Helper()
	ctx := context.Background()
	if !f.totpAt.IsZero() {
		if err := rdb.Factors.SetTOTP(ctx, user, "sealed-test-secret", f.totpAt, 1); err != nil {
			t.Fatalf("set totp of %q: %v", user, err)
		}
	}
	if f.codes > 0 {
		r := store.Recovery{Salt: "test-salt", AddedAt: f.recoveryAt}
		for i := range f.codes {
			r.Hashes = append(r.Hashes, fmt.Sprintf("test-hash-%d", i))
		}
		if err := rdb.Factors.SetRecovery(ctx, user, r); err != nil {
			t.Fatalf("set recovery codes of %q: %v", user, err)
		}
	}
	if f.pending {
		if err := rdb.Factors.SetPendingTOTP(ctx, user, "sealed-pending-secret", time.Hour); err != nil {
			t.Fatalf("set pending totp of %q: %v", user, err)
		}
	}
}

// userKeys returns the keys under user:{NAME}: (SCAN, as an operator
// would), sorted: the record user:{NAME} itself is not among them.
func userKeys(t *testing.T, rdb *goredis.Client, name string) []string {
	t.Helper()
	var keys []string
	iter := rdb.Scan(context.Background(), 0, "user:{"+name+"}:*", 100).Iterator()
	for iter.Next(context.Background()) {
		// The account's security activity (and the notice of the reset
		// for its next login) is history, kept by a reset.
		if k := iter.Val(); !strings.HasSuffix(k, ":events") && !strings.HasSuffix(k, ":notice") {
			keys = append(keys, k)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN user:{%s}:*: %v", name, err)
	}
	slices.Sort(keys)
	return keys
}

// mfaStatusLine is `user mfa status --json`, as a script reads it.
type mfaStatusLine struct {
	User string `json:"user"`
	TOTP struct {
		Enabled bool       `json:"enabled"`
		AddedAt *time.Time `json:"added_at"`
	} `json:"totp"`
	RecoveryCodes struct {
		Left    int        `json:"left"`
		AddedAt *time.Time `json:"added_at"`
	} `json:"recovery_codes"`
}

// agoPattern is how long ago a time in a status line was.
var agoPattern = regexp.MustCompile(` \([0-9hms.]+ ago\)`)

func TestUserMFAStatus(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	rdb := openRedis(t, redis.URL())
	added := time.Now().UTC().Truncate(time.Second).Add(-3 * time.Hour)
	issued := added.Add(time.Minute)
	tests := []struct {
		user    string
		factors factorsSetup
		// Text after "name:", without the "(3h0m0s ago)" of each time,
		// which may be a second off when the clock ticks.
		wantApp, wantCodes string
		wantJSON           string
	}{
		{
			user:      "alice",
			wantApp:   "off",
			wantCodes: "none",
			wantJSON:  `{"user":"alice","totp":{"enabled":false,"added_at":null},"recovery_codes":{"left":0,"added_at":null},"passkeys":[]}`,
		},
		{
			user:      "bob",
			factors:   factorsSetup{totpAt: added, codes: 10, recoveryAt: issued},
			wantApp:   "on, added " + rfc3339(added),
			wantCodes: "10 left, issued " + rfc3339(issued),
			wantJSON: fmt.Sprintf(`{"user":"bob","totp":{"enabled":true,"added_at":%q},"recovery_codes":{"left":10,"added_at":%q},"passkeys":[]}`,
				rfc3339(added), rfc3339(issued)),
		},
		{
			user:      "carol",
			factors:   factorsSetup{totpAt: added, codes: 2, recoveryAt: issued},
			wantApp:   "on, added " + rfc3339(added),
			wantCodes: "2 left, issued " + rfc3339(issued) + "; few left",
			wantJSON: fmt.Sprintf(`{"user":"carol","totp":{"enabled":true,"added_at":%q},"recovery_codes":{"left":2,"added_at":%q},"passkeys":[]}`,
				rfc3339(added), rfc3339(issued)),
		},
	}
	for _, tt := range tests {
		addUser(t, rdb, tt.user)
		addFactors(t, rdb, tt.user, tt.factors)
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			out := mustMFACmd(t, redis.URL(), "status", tt.user)
			fields := map[string]string{}
			for line := range strings.Lines(out) {
				name, value, ok := strings.Cut(strings.TrimSuffix(line, "\n"), ":")
				if !ok {
					t.Fatalf("status: line %q is not 'name: value'", line)
				}
				fields[name] = strings.TrimSpace(value)
			}
			if len(fields) != 4 || fields["user"] != tt.user {
				t.Errorf("status: got\n%s\nwant four lines, user: %s", out, tt.user)
			}
			for name, want := range map[string]string{"authenticator app": tt.wantApp, "recovery codes": tt.wantCodes, "passkeys": "none"} {
				if got := agoPattern.ReplaceAllString(fields[name], ""); got != want {
					t.Errorf("status %s: got %q, want %q and how long ago", name, fields[name], want)
				}
			}
			if strings.Contains(out, "sealed") || strings.Contains(out, "test-hash") || strings.Contains(out, "test-salt") {
				t.Errorf("status shows stored secrets: %q", out)
			}

			for _, args := range [][]string{{"status", "--json", tt.user}, {"status", tt.user, "--json"}} {
				out := mustMFACmd(t, redis.URL(), args...)
				if out != tt.wantJSON+"\n" {
					t.Errorf("user mfa %s: got %s want %s", strings.Join(args, " "), out, tt.wantJSON)
				}
				var got mfaStatusLine
				if err := json.Unmarshal([]byte(out), &got); err != nil || got.User != tt.user {
					t.Errorf("user mfa %s: got %q (%v), want a JSON object for %s", strings.Join(args, " "), out, err, tt.user)
				}
			}
		})
	}

	// The name as stored, whatever the form typed.
	if out := mustMFACmd(t, redis.URL(), "status", "ｂｏｂ", "--json"); !strings.HasPrefix(out, `{"user":"bob",`) {
		t.Errorf("status ｂｏｂ: got %q, want bob's", out)
	}
	for _, args := range [][]string{{"status", "ghost"}, {"status", "--json", "ghost"}, {"reset", "--yes", "ghost"}} {
		checkCmdFails(t, redis.URL(), `"ghost"`, append([]string{"user", "mfa"}, args...)...)
	}
}

func TestUserMFAReset(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	rdb := openRedis(t, redis.URL())
	client := redis.Client(t)
	at := time.Now().UTC().Truncate(time.Second)
	for _, name := range []string{"alice", "bob"} {
		addUser(t, rdb, name)
		addFactors(t, rdb, name, factorsSetup{totpAt: at, codes: 10, recoveryAt: at, pending: name == "alice"})
	}
	twoStep := []string{session.MethodPassword, session.MethodOTP}
	keys := map[string]bool{
		startSession(t, rdb, session.Login{User: "alice", IP: "192.0.2.1", UserAgent: firefoxUA, Methods: twoStep}).Key:       false,
		startAPISession(t, rdb, session.Login{User: "alice", IP: "192.0.2.2", UserAgent: "curl/8.5.0", Methods: twoStep}).Key: false,
		startSession(t, rdb, session.Login{User: "bob", IP: "192.0.2.3", UserAgent: androidUA, Methods: twoStep}).Key:         true,
	}
	bobKeys := userKeys(t, client, "bob")

	out := mustMFACmd(t, redis.URL(), "reset", "alice", "--yes")
	if want := "reset two-step verification of \"alice\", ended 2 session(s)\n"; out != want {
		t.Errorf("reset: got %q, want %q", out, want)
	}
	checkKeys(t, client, keys)
	// Only the user record is left of alice: no factor, no pending
	// enrolment, no recovery code, no session index.
	if got := userKeys(t, client, "alice"); len(got) != 0 {
		t.Errorf("keys user:{alice}:* after the reset: got %v, want none", got)
	}
	checkKeys(t, client, map[string]bool{"user:{alice}": true})
	if got := userKeys(t, client, "bob"); !slices.Equal(got, bobKeys) {
		t.Errorf("keys user:{bob}:* after alice's reset: got %v, want them untouched: %v", got, bobKeys)
	}
	want := `{"user":"alice","totp":{"enabled":false,"added_at":null},"recovery_codes":{"left":0,"added_at":null},"passkeys":[]}` + "\n"
	if out := mustMFACmd(t, redis.URL(), "status", "alice", "--json"); out != want {
		t.Errorf("status after the reset: got %s want %s", out, want)
	}

	// Resetting again is harmless and says so.
	if out := mustMFACmd(t, redis.URL(), "reset", "--yes", "alice"); out != "reset two-step verification of \"alice\", ended 0 session(s)\n" {
		t.Errorf("second reset: got %q, want ended 0", out)
	}
}

// Off a terminal a reset needs --yes: a script cannot reset anyone by
// accident, whatever it pipes in, and nothing changes.
func TestUserMFAResetNeedsYesOffATerminal(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	rdb := openRedis(t, redis.URL())
	client := redis.Client(t)
	addUser(t, rdb, "alice")
	at := time.Now().UTC().Truncate(time.Second)
	addFactors(t, rdb, "alice", factorsSetup{totpAt: at, codes: 10, recoveryAt: at})
	s := startSession(t, rdb, session.Login{User: "alice", IP: "192.0.2.1", UserAgent: firefoxUA})
	before := userKeys(t, client, "alice")

	for _, stdin := range []string{"", "y\n", "yes\n"} {
		out, err := userCmd(t, redis.URL(), stdin, "mfa", "reset", "alice")
		checkUsageError(t, err, "--yes")
		if out != "" {
			t.Errorf("reset without --yes, stdin %q: stdout got %q, want nothing", stdin, out)
		}
	}
	if got := userKeys(t, client, "alice"); !slices.Equal(got, before) {
		t.Errorf("keys user:{alice}:* after refused resets: got %v, want %v", got, before)
	}
	checkKeys(t, client, map[string]bool{s.Key: true})
}

// confirm takes y or yes, in any case, and nothing else.
func TestConfirm(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		answer string
		want   bool
	}{
		{"y\n", true}, {"Y\n", true}, {"yes\n", true}, {" YES \r\n", true}, {"y", true},
		{"\n", false}, {"", false}, {"n\n", false}, {"no\n", false}, {"yess\n", false}, {"ye\n", false}, {"y es\n", false},
		{"oui\n", false}, {"nyes\n", false}, {strings.Repeat("y", 100) + "\n", false},
	} {
		var out strings.Builder
		got, err := confirm(strings.NewReader(tt.answer), &out, "Reset?")
		if err != nil || got != tt.want {
			t.Errorf("answer %q: got %v, %v; want %v", tt.answer, got, err, tt.want)
		}
		if out.String() != "Reset? [y/N] " {
			t.Errorf("answer %q: prompt got %q, want %q", tt.answer, out.String(), "Reset? [y/N] ")
		}
	}
	if _, err := confirm(errReader{}, &strings.Builder{}, "Reset?"); err == nil {
		t.Errorf("confirm on a failing stdin: got nil, want an error")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("terminal gone") }
