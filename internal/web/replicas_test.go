package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"loginsvc/internal/redistest"
	"loginsvc/internal/session"
	"loginsvc/internal/testkit"
)

func TestReplicasShareSessions(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	a := newTestApp(t, rs, withInstanceID("replica-a"))
	b := newTestApp(t, rs, withInstanceID("replica-b"))

	for _, tc := range []struct {
		name            string
		loginOn, outOn  *testApp
		loginID, logoID string
	}{
		{"log in on a, log out on b", a, b, "replica-a", "replica-b"},
		{"log in on b, log out on a", b, a, "replica-b", "replica-a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token := tc.loginOn.login(t, newBrowser(t), false)

			for _, r := range []*testApp{a, b} {
				p := r.wantGreeting(t, token, "Hello, alice")
				if got := p.header.Get("X-Served-By"); got != r.settings.instanceID {
					t.Fatalf("GET / on %s: got X-Served-By %q, want %q", r.settings.instanceID, got, r.settings.instanceID)
				}
			}

			p := replay(t, http.MethodPost, tc.outOn.url("/logout/"), token)
			if p.status != http.StatusSeeOther {
				t.Fatalf("POST /logout/ on %s: got status %d, want 303", tc.outOn.settings.instanceID, p.status)
			}
			for _, r := range []*testApp{a, b} {
				r.wantGreeting(t, token, "Hello")
			}
			if a.exists(t, testkit.SessionKey(token)) {
				t.Fatalf("after logout: key %s exists, want it deleted", testkit.SessionKey(token))
			}
		})
	}
}

// A request that loaded the session before logout and saves it after must
// not bring the session back. Each slow request loads the session, reports
// in, and waits; the test logs out once all 20 are in flight and only then
// lets them finish, so every one of them saves after the logout. (A gate
// rather than a fixed sleep makes that interleaving certain.)
func TestLogoutIsNotUndoneByRequestsInFlight(t *testing.T) {
	t.Parallel()
	const inFlight = 20
	for _, tc := range []struct {
		name  string
		idle  time.Duration // on: every request re-saves the session
		stale bool          // last seen is old: every request records it
	}{
		{"idle timeout on", 30 * time.Minute, false},
		{"idle timeout on, last seen stale", 30 * time.Minute, true},
		{"idle timeout off, last seen stale", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ta := newTestApp(t, redistest.Start(t), withIdleTimeout(tc.idle))
			token := ta.login(t, newBrowser(t), false)
			if tc.stale {
				ta.backdateLastSeen(t, token, 2*session.LastSeenEvery)
			}

			// entered records which requests loaded the session and are
			// held; a request answered before that (say 503 because the
			// machine is too loaded to reach Redis in time) was never in
			// flight and is sent again.
			var enteredIDs sync.Map
			entered := make(chan string, inFlight)
			release := make(chan struct{})
			var releaseOnce sync.Once
			letGo := func() { releaseOnce.Do(func() { close(release) }) }
			t.Cleanup(letGo)
			slow := httptest.NewServer(ta.app.loadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				user := ta.app.currentUser(r.Context())
				enteredIDs.Store(r.Header.Get("X-Test-Request"), true)
				entered <- user
				select {
				case <-release:
				case <-time.After(testkit.WaitTimeout):
				}
				_, _ = fmt.Fprintf(w, "user=%s", user)
			})))
			t.Cleanup(slow.Close)

			client := testkit.Client(t, nil)
			results := make(chan error, inFlight)
			var wg sync.WaitGroup
			for i := range inFlight {
				wg.Go(func() { results <- slowRequest(client, slow.URL, token, i, &enteredIDs) })
			}
			for i := range inFlight {
				select {
				case user := <-entered:
					if user != aliceName {
						t.Fatalf("slow request %d loaded user %q, want %q", i, user, aliceName)
					}
				case err := <-results:
					t.Fatalf("a slow request finished before the logout, want all %d held: %v", inFlight, err)
				case <-time.After(testkit.WaitTimeout):
					t.Fatalf("only %d of %d slow requests started within %v", i, inFlight, testkit.WaitTimeout)
				}
			}

			p := replay(t, http.MethodPost, ta.url("/logout/"), token)
			if p.status != http.StatusSeeOther {
				t.Fatalf("POST /logout/: got status %d, want 303", p.status)
			}
			letGo()
			wg.Wait()
			close(results)
			for err := range results {
				if err != nil {
					t.Error(err)
				}
			}

			ta.wantGreeting(t, token, "Hello")
			time.Sleep(200 * time.Millisecond)
			if ta.exists(t, testkit.SessionKey(token)) {
				t.Fatalf("after logout and %d late saves: key %s exists, want it gone", inFlight, testkit.SessionKey(token))
			}
			if keys := ta.sessionKeys(t); len(keys) != 0 {
				t.Fatalf("after logout and %d late saves: got session keys %q, want none", inFlight, keys)
			}
		})
	}
}

// slowRequest sends request number i with token to the slow server until
// one is held there (see enteredIDs), and checks how it ends.
func slowRequest(client *http.Client, rawURL, token string, i int, enteredIDs *sync.Map) error {
	for attempt := 0; ; attempt++ {
		id := fmt.Sprintf("%d/%d", i, attempt)
		req, err := http.NewRequest(http.MethodGet, rawURL, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Cookie", testCookieName+"="+token)
		req.Header.Set("X-Test-Request", id)
		p, err := fetch(client, req)
		_, held := enteredIDs.Load(id)
		switch {
		case err != nil:
			return err
		case !held && attempt < 5:
			continue
		case !held:
			return fmt.Errorf("slow request %d: answered %d without reaching the handler %d times", i, p.status, attempt+1)
		case p.status != http.StatusOK || p.body != "user=alice":
			return fmt.Errorf("slow request %s: got status %d, body %q; want 200, %q", id, p.status, p.body, "user=alice")
		case p.cookie != nil:
			return fmt.Errorf("slow request %s finishing after logout: got Set-Cookie %v, want none", id, p.cookie)
		}
		return nil
	}
}
