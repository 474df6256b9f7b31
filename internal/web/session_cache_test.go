package web

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"loginsvc/internal/redistest"
)

// warm asks for token's page on ta until ta serves its session from the
// session cache, and fails if it never does: a test of what the cache
// serves proves nothing otherwise. (The invalidations of the login's own
// writes arrive a moment later and evict what the first reads filled.)
func (ta *testApp) warm(t *testing.T, token, want string) {
	t.Helper()
	for range 50 {
		hits := ta.rdb.CacheStats().Hits
		ta.wantGreeting(t, token, want)
		if ta.rdb.CacheStats().Hits > hits {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("50 page views of one session on %s: none served from the session cache (stats %+v)", ta.settings.instanceID, ta.rdb.CacheStats())
}

// A session ended through the app (logout, revoke, revoke others, password
// change) is never served from the cache afterwards on the replica that
// ended it, not even on the very next request, and on another replica only
// within the invalidation delay.
func TestSessionCacheNeverServesAnEndedSession(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		tries int
		// end ends the session lost (whose page says "Hello, alice") from
		// another browser, me, logged in as alice on a.
		end func(t *testing.T, a *testApp, me *browser, lost string)
	}{
		{"log out", 10, func(t *testing.T, a *testApp, _ *browser, lost string) {
			if p := replay(t, http.MethodPost, a.url("/logout/"), lost); p.status != http.StatusSeeOther {
				t.Fatalf("POST /logout/: got status %d, want 303", p.status)
			}
		}},
		{"revoke", 10, func(t *testing.T, a *testApp, me *browser, lost string) {
			rows, _ := a.sessionsOf(t, me)
			for _, r := range rows {
				if !r.current {
					a.revokeVia(t, me, r.id)
				}
			}
		}},
		{"revoke others", 10, func(t *testing.T, a *testApp, me *browser, _ string) {
			if p := me.post(a.url("/sessions/revoke-others"), url.Values{}); p.status != http.StatusSeeOther {
				t.Fatalf("POST /sessions/revoke-others: got status %d, want 303", p.status)
			}
		}},
		{"password change", 1, func(t *testing.T, a *testApp, me *browser, _ string) {
			p := me.post(a.url("/password/"), passwordForm(alicePassword, aliceNewPassword, aliceNewPassword))
			if p.status != http.StatusSeeOther {
				t.Fatalf("POST /password/: got status %d, want 303; body:\n%s", p.status, p.body)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := redistest.Start(t)
			a := newTestApp(t, rs, withInstanceID("replica-a"), withSessionCache())
			b := newTestApp(t, rs, withInstanceID("replica-b"), withSessionCache())
			for i := range tc.tries {
				me := newBrowser(t)
				a.login(t, me, false)
				lost := a.login(t, newBrowser(t), false)
				a.warm(t, lost, "Hello, alice")
				b.warm(t, lost, "Hello, alice")

				tc.end(t, a, me, lost)
				if got := greeting(replay(t, http.MethodGet, a.url("/"), lost).body); got != "Hello" {
					t.Fatalf("try %d: GET / on the replica that ended the session, at once: got greeting %q, want %q", i+1, got, "Hello")
				}
				start := time.Now()
				for {
					got := greeting(replay(t, http.MethodGet, b.url("/"), lost).body)
					if got == "Hello" {
						break
					}
					if time.Since(start) > time.Second {
						t.Fatalf("try %d: GET / on the other replica %v after: got greeting %q, want %q", i+1, time.Since(start), got, "Hello")
					}
				}
				if i == 0 {
					t.Logf("other replica served the ended session for at most %v", time.Since(start))
				}
			}
		})
	}
}

// A frozen Redis cannot say when a session changes: within the channel's
// health bound the cached pages stop and the 503 page answers, as it does
// without the cache; no page comes from memory after that.
func TestSessionCacheAnswers503WhileRedisIsFrozen(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	ta := newTestApp(t, rs, withSessionCache())
	token := ta.login(t, newBrowser(t), false)
	ta.warm(t, token, "Hello, alice")

	rs.Freeze(t)
	frozen := true
	t.Cleanup(func() {
		if frozen {
			rs.Thaw(t)
		}
	})
	start := time.Now()
	var first time.Duration
	for time.Since(start) < 5*time.Second {
		p := replay(t, http.MethodGet, ta.url("/"), token)
		switch {
		case p.status == http.StatusServiceUnavailable && first == 0:
			checkUnavailablePage(t, "Redis frozen, cache on", p)
			first = time.Since(start)
		case p.status == http.StatusServiceUnavailable:
		case first != 0:
			t.Fatalf("Redis frozen, cache on: got status %d after a 503, want only 503s", p.status)
		}
		if first != 0 && time.Since(start) > first+time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// In doubt after 1.5s without an answer to the health pings, then the
	// read goes to Redis and meets its 0.8s deadline.
	if first == 0 || first > 3500*time.Millisecond {
		t.Fatalf("Redis frozen, cache on: first 503 after %v, want one within 3.5s", first)
	}
	t.Logf("Redis frozen: cached pages for %v, then 503s", first.Round(time.Millisecond))

	rs.Thaw(t)
	frozen = false
	start = time.Now()
	for {
		p := replay(t, http.MethodGet, ta.url("/"), token)
		if p.status == http.StatusOK && greeting(p.body) == "Hello, alice" {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("after Thaw: got status %d, greeting %q; want 200, Hello, alice within 5s", p.status, greeting(p.body))
		}
		time.Sleep(50 * time.Millisecond)
	}
	ta.warm(t, token, "Hello, alice")
}
