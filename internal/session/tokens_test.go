package session

// Several cookies of the session's name: another service on the same host
// can plant one (with a narrower Path, so the browser sends it first). The
// request is the newest live session among them, and logout ends them all.

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/store"
)

// planted is the shape of the planted cookie in the report: well-formed,
// naming nothing.
var planted = strings.Repeat("Q", 43)

func TestSeveralCookiesLoadTheNewestLiveSession(t *testing.T) {
	h := newHarness(t)
	m := h.manager(Config{})
	aliceStamp := h.addUser(t, "alice")
	malloryStamp := h.addUser(t, "mallory")
	mallory, _ := login(t, m, "mallory", malloryStamp)
	time.Sleep(2 * time.Millisecond) // login_at has nanoseconds; keep the order certain
	older, _ := login(t, m, "alice", aliceStamp)
	time.Sleep(2 * time.Millisecond)
	newer, _ := login(t, m, "alice", aliceStamp)
	time.Sleep(2 * time.Millisecond)
	// The attacker logs into his own account after the victim did and
	// plants that cookie: the newest live session is his.
	attacker, _ := login(t, m, "mallory", malloryStamp)

	for _, tc := range []struct {
		name   string
		tokens []string
		want   string
	}{
		{"planted, then the real one", []string{planted, newer}, "alice"},
		{"the real one, then planted", []string{newer, planted}, "alice"},
		{"an older login of the same user first", []string{older, newer}, "alice"},
		{"an older login of the same user second", []string{newer, older}, "alice"},
		{"planted, older, newer", []string{planted, newToken(), older, newer}, "alice"},
		{"planted, then an older login", []string{planted, mallory}, "mallory"},
		{"the same token twice", []string{newer, newer}, "alice"},
		{"none live", []string{planted, newToken()}, ""},
		{"another user's older session first", []string{mallory, newer}, ""},
		{"another user's older session second", []string{newer, mallory}, ""},
		{"another user's newer session first", []string{attacker, newer}, ""},
		{"another user's newer session second", []string{newer, attacker}, ""},
		{"another user's newer session among the user's own", []string{older, attacker, newer}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, err := m.Load(context.Background(), tc.tokens...)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := m.User(ctx); got != tc.want {
				t.Errorf("User after Load of %d cookies: got %q, want %q", len(tc.tokens), got, tc.want)
			}
		})
	}
}

func TestEndEndsEverySessionTheCookiesName(t *testing.T) {
	h := newHarness(t)
	m := h.manager(Config{})
	mallory, _ := login(t, m, "mallory", h.addUser(t, "mallory"))
	alice, _ := login(t, m, "alice", h.addUser(t, "alice"))
	other, _ := login(t, m, "alice", "$argon2id$stamp-of-alice")

	ctx, err := m.Load(context.Background(), planted, alice, mallory)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := m.End(ctx); err != nil {
		t.Fatalf("End: %v", err)
	}
	if c := save(t, m, ctx); c == nil || c.Value != "" {
		t.Errorf("Save after End: got cookie %v, want the cookie cleared", c)
	}
	for _, s := range []struct{ user, token string }{{"alice", alice}, {"mallory", mallory}} {
		if key := store.SessionKey(hashOf(s.token)); h.exists(t, key) {
			t.Errorf("after End: %s's key %s still exists, want it deleted", s.user, key)
		}
		if _, ok := h.index(t, s.user)[hashOf(s.token)]; ok {
			t.Errorf("after End: %s's index still holds the ended session, want it gone", s.user)
		}
		if got := userOf(t, m, s.token); got != "" {
			t.Errorf("after End: %s's token is logged in as %q, want anonymous", s.user, got)
		}
	}
	// A session no cookie of the request named is not touched.
	if got := userOf(t, m, other); got != "alice" {
		t.Errorf("after End: alice's other browser is logged in as %q, want %q", got, "alice")
	}
}

// TestOneCookieCostsOneRead: the common request, one cookie, reads Redis
// once, however many cookies a request may carry.
func TestOneCookieCostsOneRead(t *testing.T) {
	h := newHarness(t)
	m := h.manager(Config{})
	token, _ := login(t, m, "alice", h.addUser(t, "alice"))
	if err := h.raw.ConfigResetStat(context.Background()).Err(); err != nil {
		t.Fatalf("CONFIG RESETSTAT: %v", err)
	}
	if got := userOf(t, m, token); got != "alice" {
		t.Fatalf("Load of one cookie: got user %q, want %q", got, "alice")
	}
	if got := commandCalls(t, h); got != 1 {
		t.Errorf("Load of one cookie: got %d Redis commands, want 1", got)
	}
}

// commandCalls is how many commands Redis ran since CONFIG RESETSTAT,
// leaving out the INFO that asks and the RESETSTAT itself.
func commandCalls(t *testing.T, h *harness) int {
	t.Helper()
	info, err := h.raw.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	n := 0
	for _, line := range strings.Split(info, "\n") {
		name, stats, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") || name == "cmdstat_info" || strings.HasPrefix(name, "cmdstat_config") {
			continue
		}
		for _, kv := range strings.Split(stats, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				c, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("INFO commandstats line %q: %v", line, err)
				}
				n += c
			}
		}
	}
	return n
}
