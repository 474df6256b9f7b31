package deploy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"loginsvc/internal/testkit"
)

// TestCluster proves the deployment on one native cluster of 3 replicas
// behind the repository's haproxy.cfg: shared sessions, logout everywhere,
// crash and rolling restart without a failed request, and Redis restarts and
// outages. The steps run in order on the same cluster and build on each
// other, so the first failing step ends the test.
func TestCluster(t *testing.T) {
	c := startCluster(t, 3)

	const bobPassword = "bob-cluster-test-only-password"
	var (
		first    *http.Client // step 1's client, logged out in step 2
		adminLB  *http.Client // admin, logged in through the LB
		adminApp *http.Client // admin, logged in directly at app-1
		bobLB    *http.Client // bob, logged in through the LB
		users    []loadUser   // the logged-in clients the load uses
	)

	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"1-round-robin", func(t *testing.T) {
			first = c.login(t, c.LB)
			servedBy := map[string]int{}
			for i := 0; i < 30; i++ {
				status, by, body := c.get(t, first, c.LB+"/")
				if status != http.StatusOK || !loggedIn(body, testUser) {
					t.Fatalf("GET / #%d via LB (served by %q): status %d, logged in as %s: %v", i+1, by, status, testUser, loggedIn(body, testUser))
				}
				servedBy[by]++
			}
			t.Logf("30 GET / via LB, served by %v", servedBy)
			for _, r := range c.Replicas {
				if servedBy[r.ID] == 0 {
					t.Errorf("replica %s answered none of 30 requests: %v", r.ID, servedBy)
				}
			}
		}},

		{"2-logout-everywhere", func(t *testing.T) {
			old := sessionCookieOf(t, first, c.LB).Value
			if _, ok := c.sessionValues(t, old); !ok {
				t.Fatalf("no session in Redis for the logged-in cookie (key %s)", testkit.SessionKey(old))
			}
			logout(t, first, c.LB)
			if _, ok := c.sessionValues(t, old); ok {
				t.Errorf("session still in Redis after logout (key %s)", testkit.SessionKey(old))
			}
			if status, by, body := c.get(t, first, c.LB+"/"); status != http.StatusOK || !loggedOut(body) {
				t.Errorf("logged-out client, GET / via LB (served by %q): status %d, logged out: %v", by, status, loggedOut(body))
			}
			replay := cookieClient(t, old)
			targets := []string{c.LB}
			for _, r := range c.Replicas {
				targets = append(targets, r.URL)
			}
			for _, base := range targets {
				status, by, body := c.get(t, replay, base+"/")
				if status != http.StatusOK || !loggedOut(body) {
					t.Errorf("old cookie replayed at %s (served by %q): status %d, logged out: %v", base, by, status, loggedOut(body))
				}
			}
		}},

		{"3-kill-replica-under-load", func(t *testing.T) {
			c.addUser(t, "bob", bobPassword)
			adminLB = c.login(t, c.LB)
			adminApp = c.login(t, c.Replicas[0].URL)
			bobLB = c.loginAs(t, c.LB, "bob", bobPassword)
			users = []loadUser{{adminLB, testUser}, {adminApp, testUser}, {bobLB, "bob"}}

			victim := c.Replicas[1]
			l := c.startLoad(4, users)
			defer l.stop()
			time.Sleep(1500 * time.Millisecond)
			victim.Kill(t)
			time.Sleep(1500 * time.Millisecond)
			stats := l.stop()
			t.Logf("kill -9 %s under load: %s", victim.ID, stats)
			if stats.failed != 0 {
				t.Errorf("%d of %d requests failed; first ones:\n%s", stats.failed, stats.total, strings.Join(stats.samples, "\n"))
			}
			if stats.servedBy[victim.ID] == 0 {
				t.Errorf("%s served nothing before it was killed: the kill was not mid-load", victim.ID)
			}

			victim.Start(t)
			d := c.waitInRotation(t, victim, 10*time.Second)
			t.Logf("%s restarted, back in the LB's rotation after %v", victim.ID, d.Round(time.Millisecond))
		}},

		{"4-rolling-restart", func(t *testing.T) {
			l := c.startLoad(4, users)
			defer l.stop()
			time.Sleep(500 * time.Millisecond)
			for _, r := range c.Replicas {
				start := time.Now()
				r.terminate(t)
				// Draining: /readyz fails at once, pages are still served.
				c.expectDraining(t, r, adminLB, testUser)
				r.waitStopped(t)
				stopped := time.Since(start)
				r.Start(t)
				ready := time.Since(start)
				// Only then the next one: haproxy takes a replica back
				// after two good /readyz checks, so going on earlier
				// could leave no ready replica at all.
				back := c.waitInRotation(t, r, 10*time.Second)
				t.Logf("%s: exited 0 after %v, ready after %v, back in rotation %v later",
					r.ID, stopped.Round(time.Millisecond), ready.Round(time.Millisecond), back.Round(time.Millisecond))
			}
			time.Sleep(300 * time.Millisecond)
			stats := l.stop()
			t.Logf("rolling restart under load: %s", stats)
			if stats.failed != 0 {
				t.Errorf("%d of %d requests failed; first ones:\n%s", stats.failed, stats.total, strings.Join(stats.samples, "\n"))
			}
		}},

		{"5-redis-restart", func(t *testing.T) {
			c.Redis.Stop(t)
			c.Redis.Restart(t)
			// The first request of each replica after the restart must
			// already succeed: the replicas' pooled connections are dead.
			for _, r := range c.Replicas {
				if status, by, body := c.get(t, adminLB, r.URL+"/"); status != http.StatusOK || !loggedIn(body, testUser) {
					t.Errorf("after Redis SIGTERM+restart, GET / at %s (served by %q): status %d, logged in: %v\n%s", r.URL, by, status, loggedIn(body, testUser), firstLine(body))
				}
			}
			c.expectSessions(t, users)

			// A logout persisted by the AOF survives a Redis crash.
			old := sessionCookieOf(t, adminApp, c.LB).Value
			logout(t, adminApp, c.LB)
			time.Sleep(1500 * time.Millisecond) // appendfsync everysec
			c.Redis.Kill(t)
			c.Redis.Restart(t)
			users = []loadUser{{adminLB, testUser}, {bobLB, "bob"}}
			replay := cookieClient(t, old)
			for _, base := range []string{c.LB, c.Replicas[0].URL} {
				if status, by, body := c.get(t, replay, base+"/"); status != http.StatusOK || !loggedOut(body) {
					t.Errorf("after Redis SIGKILL+restart, logged-out cookie at %s (served by %q): status %d, logged out: %v", base, by, status, loggedOut(body))
				}
			}
			if _, ok := c.sessionValues(t, old); ok {
				t.Errorf("logged-out session is back in Redis after the crash (key %s)", testkit.SessionKey(old))
			}
			c.expectSessions(t, users)
		}},

		{"6-redis-outage", func(t *testing.T) {
			c.Redis.Stop(t)
			outage := time.Now()
			rounds, bad := 0, 0
			check := func(what string, status, want int) {
				if status != want {
					bad++
					if bad <= 10 {
						t.Errorf("Redis down %v: %s answered %d, want %d", time.Since(outage).Round(time.Millisecond), what, status, want)
					}
				}
			}
			// Each answer that needs Redis takes up to the store's
			// operation timeout (800ms), so a round asks everything at once.
			type probe struct {
				what, url string
				want      int
			}
			var probes []probe
			for _, r := range c.Replicas {
				probes = append(probes,
					probe{"GET / at " + r.ID, r.URL + "/", http.StatusServiceUnavailable},
					probe{"/readyz at " + r.ID, r.URL + "/readyz", http.StatusServiceUnavailable},
					probe{"/healthz at " + r.ID, r.URL + "/healthz", http.StatusOK})
			}
			probes = append(probes, probe{"GET / via LB", c.LB + "/", http.StatusServiceUnavailable})
			var slowest time.Duration
			for time.Since(outage) < 3*time.Second {
				rounds++
				type answer struct {
					status    int
					by, retry string
					err       error
					took      time.Duration
				}
				answers := make([]answer, len(probes))
				var wg sync.WaitGroup
				for i, p := range probes {
					wg.Go(func() {
						start := time.Now()
						req, _ := http.NewRequest(http.MethodGet, p.url, nil)
						resp, err := adminLB.Do(req)
						a := answer{err: err, took: time.Since(start)}
						if err == nil {
							_, _ = io.Copy(io.Discard, resp.Body)
							_ = resp.Body.Close()
							a.status, a.by, a.retry = resp.StatusCode, resp.Header.Get("X-Served-By"), resp.Header.Get("Retry-After")
						}
						answers[i] = a
					})
				}
				wg.Wait()
				for i, p := range probes {
					a := answers[i]
					slowest = max(slowest, a.took)
					if a.err != nil {
						t.Fatalf("Redis down: %s: %v", p.what, a.err)
					}
					check(fmt.Sprintf("%s (served by %q)", p.what, a.by), a.status, p.want)
					if p.url != c.LB+"/" && a.by == "" {
						t.Errorf("Redis down: %s: no X-Served-By", p.what)
					}
					if strings.HasSuffix(p.url, "/") && a.status == http.StatusServiceUnavailable && a.retry == "" {
						t.Errorf("Redis down: %s: 503 without Retry-After", p.what)
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("Redis down for %v: %d rounds of %d checks, %d unexpected answers, slowest answer %v",
				time.Since(outage).Round(time.Millisecond), rounds, len(probes), bad, slowest.Round(time.Millisecond))

			c.Redis.Restart(t) // returns once Redis answers PING
			back := time.Now()
			// Recovery is per replica (each has its own Redis pool), so
			// besides the first success through the LB every replica is
			// polled directly until its page and its /readyz are back.
			type target struct{ what, url, user string }
			targets := []target{{"GET / via LB", c.LB + "/", testUser}}
			for _, r := range c.Replicas {
				targets = append(targets,
					target{"GET / at " + r.ID, r.URL + "/", testUser},
					target{"/readyz at " + r.ID, r.URL + "/readyz", ""})
			}
			recovered := map[string]time.Duration{}
			for len(recovered) < len(targets) {
				for _, tg := range targets {
					if _, done := recovered[tg.what]; done {
						continue
					}
					status, _, body, err := tryGet(adminLB, tg.url, nil)
					if err == nil && status == http.StatusOK && (tg.user == "" || loggedIn(body, tg.user)) {
						recovered[tg.what] = time.Since(back)
					} else if time.Since(back) > 5*time.Second {
						t.Fatalf("%s still failing 5s after Redis answered PING: status %d, err %v", tg.what, status, err)
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			var slowestBack time.Duration
			for _, tg := range targets {
				d := recovered[tg.what]
				slowestBack = max(slowestBack, d)
				t.Logf("%s succeeded %v after Redis answered PING", tg.what, d.Round(time.Millisecond))
				if d > 2*time.Second {
					t.Errorf("%s took %v to recover, want within 2s", tg.what, d)
				}
			}
			t.Logf("recovery: first success via LB %v, all replicas %v", recovered["GET / via LB"].Round(time.Millisecond), slowestBack.Round(time.Millisecond))
			c.expectSessions(t, users)
			for _, r := range c.Replicas {
				if status, _, _ := c.get(t, adminLB, r.URL+"/readyz"); status != http.StatusOK {
					t.Errorf("%s /readyz %d after Redis came back, want 200", r.ID, status)
				}
			}
		}},

		{"7-x-forwarded-for", func(t *testing.T) {
			// Whom the app records as the client (login_ip) when
			// TRUSTED_PROXIES=127.0.0.1/32 and haproxy replaces
			// X-Forwarded-For with the address it sees. The app takes the
			// rightmost address that
			// is not a trusted proxy. A client on 127.0.0.1 is itself a
			// trusted address, so whatever it claims would be believed
			// (correctly: the app cannot tell it from a proxy); the sound
			// checks use a client on 127.0.0.2, which is loopback but not
			// trusted. All connections still go to 127.0.0.1.
			cases := []struct {
				name, from, base, xff, want string
			}{
				{"loopback client via LB", "127.0.0.1", c.LB, "", "127.0.0.1"},
				// haproxy drops a client's header, so even a client on a
				// trusted address cannot choose its recorded one.
				{"loopback client via LB, forged XFF", "127.0.0.1", c.LB, "6.6.6.6", "127.0.0.1"},
				// haproxy's address reaches the app and is used: without
				// it the app would see only haproxy (127.0.0.1).
				{"untrusted client via LB", "127.0.0.2", c.LB, "", "127.0.0.2"},
				{"untrusted client via LB, forged XFF", "127.0.0.2", c.LB, "6.6.6.6", "127.0.0.2"},
				// Directly at a replica the peer is untrusted: no XFF read.
				{"untrusted client direct, forged XFF", "127.0.0.2", c.Replicas[0].URL, "6.6.6.6", "127.0.0.2"},
			}
			for _, tc := range cases {
				client := clientFrom(t, tc.from)
				var h http.Header
				if tc.xff != "" {
					h = http.Header{"X-Forwarded-For": {tc.xff}}
				}
				ck := postLogin(t, client, tc.base, testUser, testPassword, h)
				values, ok := c.sessionValues(t, ck.Value)
				if !ok {
					t.Fatalf("%s: no session in Redis after login", tc.name)
				}
				if got := values["login_ip"]; got != tc.want {
					t.Errorf("%s (from %s, X-Forwarded-For %q): login_ip %v, want %s", tc.name, tc.from, tc.xff, got, tc.want)
				}
			}
		}},
	}

	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			t.Fatalf("step %s failed; the later steps depend on it", s.name)
		}
	}
}

// expectDraining checks, right after SIGTERM, that r's /readyz turns 503
// within half of SHUTDOWN_DRAIN while /healthz and user's page are still
// served.
func (c *cluster) expectDraining(t testing.TB, r *replica, client *http.Client, user string) {
	t.Helper()
	testkit.Eventually(t, r.ID+" /readyz 503 after SIGTERM", replicaDrain/2, func() (bool, string) {
		status, _, _, err := tryGet(client, r.URL+"/readyz", nil)
		return err == nil && status == http.StatusServiceUnavailable, fmt.Sprintf("/readyz %d (err %v), want 503", status, err)
	})
	if status, _, body, err := tryGet(client, r.URL+"/healthz", nil); err != nil || status != http.StatusOK {
		t.Errorf("%s draining: /healthz %d (err %v), want 200 %s", r.ID, status, err, firstLine(body))
	}
	if status, by, body, err := tryGet(client, r.URL+"/", nil); err != nil || status != http.StatusOK || by != r.ID || !loggedIn(body, user) {
		t.Errorf("%s draining: GET / %d from %q (err %v), logged in as %s: %v", r.ID, status, by, err, user, loggedIn(body, user))
	}
}

// expectSessions checks that every client's session still shows its user
// through the LB.
func (c *cluster) expectSessions(t testing.TB, users []loadUser) {
	t.Helper()
	for i, u := range users {
		status, by, body := c.get(t, u.client, c.LB+"/")
		if status != http.StatusOK || !loggedIn(body, u.user) {
			t.Errorf("session %d (%s) via LB (served by %q): status %d, logged in: %v\n%s", i, u.user, by, status, loggedIn(body, u.user), firstLine(body))
		}
	}
}

// clientFrom returns a testkit.Browser whose connections come from the
// local address ip, e.g. 127.0.0.2 to be a loopback client that is not in
// TRUSTED_PROXIES.
func clientFrom(t testing.TB, ip string) *http.Client {
	t.Helper()
	client := testkit.Browser(t)
	tr, ok := client.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("testkit.Browser's transport is a %T, want an *http.Transport to set the local address on", client.Transport)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 2 * time.Second}
	tr.DialContext = d.DialContext
	return client
}
