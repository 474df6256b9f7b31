package deploy

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// TestSentinelFailoverDrill kills the master of a Sentinel setup (master,
// two replicas, three Sentinels; down-after 1s, failover-timeout 3s) with
// SIGKILL while two replicas of the service, pointed at the Sentinels
// (REDIS_URL=redis+sentinel://...), serve a steady mixed load: page
// views, forward-auth checks, API whoami and logins. No request may fail
// (issue 18): reads are served by a replica meanwhile and writes wait for
// the promotion. Every session from before, every session a login of the
// load was given, and every logout acknowledged before the kill is kept.
// The figures are printed: time to promotion, requests by kind, failed,
// p50/p99/max latency from the kill to the end of the load.
func TestSentinelFailoverDrill(t *testing.T) {
	t.Parallel()
	sentinelDrill(t, "sentinel kill -9", func(t *testing.T, master *redistest.Server) func() {
		master.Kill(t)
		return func() {}
	})
}

// TestSentinelFreezeDrill is TestSentinelFailoverDrill with the master
// stopped by SIGSTOP instead: it keeps its connections open and answers
// nothing, which a client sees only as timeouts. After the promotion it
// is thawed (SIGCONT) while the load still runs, and comes back believing
// it is the master until the Sentinels demote it: nothing may be written
// to it, nor read from it.
func TestSentinelFreezeDrill(t *testing.T) {
	t.Parallel()
	sentinelDrill(t, "sentinel SIGSTOP", func(t *testing.T, master *redistest.Server) func() {
		master.Freeze(t)
		return func() { master.Thaw(t) }
	})
}

// sentinelDrill runs one Sentinel failover drill; fail makes the master
// fail and returns what to do a second after the promotion.
func sentinelDrill(t *testing.T, drill string, fail func(t *testing.T, master *redistest.Server) func()) {
	set := redistest.StartSentinel(t, 2, 3)
	redisURL := set.URL()
	apps := startApps(t, redisURL, 2)
	bases := []string{apps[0].URL, apps[1].URL}
	app := func(i int) string { return bases[i%len(bases)] }
	// The session cache is on (the default) on Sentinel: the failover
	// must flush it, not leave either replica serving from memory.
	for _, r := range apps {
		testkit.Eventually(t, r.ID+" says its session cache is on", 10*time.Second, func() (bool, string) {
			return strings.Contains(r.Log(t), "session cache on"), "no \"session cache on\" line yet"
		})
	}

	const password = "sentinel-drill-only-password"
	var (
		kept     []loadUser     // sessions that must survive
		apis     []apiUser      // API tokens that must survive
		toEnd    []*http.Client // sessions logged out right before the failure
		endedWho []string
		names    []string
	)
	for i := range 5 {
		name := fmt.Sprintf("user-%d", i)
		names = append(names, name)
		serverCLI(t, redisURL, password+"\n", "user", "add", name)
		for j := range 2 {
			c := testkit.Browser(t)
			postLogin(t, c, app(i+j), name, password, nil)
			kept = append(kept, loadUser{client: c, user: name})
		}
		apis = append(apis, apiLogin(t, app(i), name, password))
		c := testkit.Browser(t)
		postLogin(t, c, app(i), name, password, nil)
		toEnd = append(toEnd, c)
		endedWho = append(endedWho, name)
	}

	load := startFailoverLoad(t, bases, kept, apis, names, password)
	time.Sleep(time.Second)
	// Logouts under load, acknowledged (303) right before the failure; the
	// replayed cookies must stay logged out on the promoted replica.
	var ended []*http.Client
	for i, c := range toEnd {
		ended = append(ended, cookieClient(t, sessionCookieOf(t, c, app(i)).Value))
		postForm(t, c, app(i+1), "/logout/", url.Values{})
	}
	oldMaster := set.MasterAddr(t)
	failed := time.Now()
	after := fail(t, set.Master)
	promoted := set.WaitFailover(t, oldMaster)
	promotion := time.Since(failed)
	time.Sleep(time.Second)
	after()
	// Each replica lost its invalidation channel with the old master
	// (flushing its cache) and opened one on the promoted replica.
	for _, r := range apps {
		testkit.Eventually(t, r.ID+"'s session cache back on the promoted master", 15*time.Second, func() (bool, string) {
			log := r.Log(t)
			lost := strings.Index(log, "invalidation channel lost")
			back := strings.LastIndex(log, "invalidation channel back")
			return lost >= 0 && back > lost, "want an \"invalidation channel lost\" line, then \"invalidation channel back\""
		})
	}
	time.Sleep(time.Second)
	load.stop()
	t.Logf("%s: %s promoted", drill, promoted.Addr())
	load.report(failed, apps).check(t, drill, promotion)
	checkKept(t, bases, kept, apis, load.madeSessions(), ended, endedWho)
	// Writes on both replicas after the load: a login and a logout each
	// (a lasting READONLY would fail them).
	for i := range apps {
		c := testkit.Browser(t)
		postLogin(t, c, app(i), "user-0", password, nil)
		wantLoggedIn(t, c, app(i+1), "user-0")
		postForm(t, c, app(i+1), "/logout/", url.Values{})
		wantLoggedOut(t, c, app(i), "user-0")
	}
}
