package deploy

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// TestSentinelFailoverDrill kills the master of a Sentinel setup (master,
// two replicas, three Sentinels; down-after 1s, failover-timeout 3s) with
// SIGKILL while two replicas of the service, pointed at the Sentinels
// (REDIS_URL=redis+sentinel://...), serve logged-in users. Then: both
// serve again on the promoted replica without a restart, writes work
// (no lasting READONLY), every session from before is still valid, and
// every logout acknowledged before the kill stays logged out. The figures
// are printed: seconds without service, sessions kept, requests failed,
// logouts kept.
func TestSentinelFailoverDrill(t *testing.T) {
	t.Parallel()
	set := redistest.StartSentinel(t, 2, 3)
	redisURL := set.URL()
	apps := startApps(t, redisURL, 2)
	app := func(i int) string { return apps[i%len(apps)].URL }
	// The session cache is on (the default) on Sentinel: the failover
	// must flush it, not leave either replica serving from memory.
	for _, r := range apps {
		testkit.Eventually(t, r.ID+" says its session cache is on", 10*time.Second, func() (bool, string) {
			return strings.Contains(r.Log(t), "session cache on"), "no \"session cache on\" line yet"
		})
	}

	const password = "sentinel-drill-only-password"
	var kept []loadUser      // sessions that must survive
	var toEnd []*http.Client // sessions logged out right before the kill
	var endedWho []string
	for i := range 5 {
		name := fmt.Sprintf("user-%d", i)
		serverCLI(t, redisURL, password+"\n", "user", "add", name)
		for j := range 2 {
			c := testkit.Browser(t)
			postLogin(t, c, app(i+j), name, password, nil)
			kept = append(kept, loadUser{client: c, user: name})
		}
		c := testkit.Browser(t)
		postLogin(t, c, app(i), name, password, nil)
		toEnd = append(toEnd, c)
		endedWho = append(endedWho, name)
	}

	// Load: logged-in GETs on both replicas, each failure timed.
	var (
		mu       sync.Mutex
		total    int
		failures []time.Time
		samples  []string
		why      []string // every failure's reason, beside failures
	)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-quit:
					return
				default:
				}
				_, failure := loggedInGet(kept[i%len(kept)], app(i))
				mu.Lock()
				total++
				if failure != "" {
					failures = append(failures, time.Now())
					why = append(why, failure)
					if len(samples) < 5 {
						samples = append(samples, failure)
					}
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	stopLoad := func() {
		select {
		case <-quit:
		default:
			close(quit)
		}
		wg.Wait()
	}
	defer stopLoad()

	// Logouts under load, acknowledged (303) right before the kill; the
	// replayed cookies must stay logged out on the promoted replica.
	time.Sleep(300 * time.Millisecond)
	var endedCookies []*http.Client
	for i, c := range toEnd {
		endedCookies = append(endedCookies, cookieClient(t, sessionCookieOf(t, c, app(i)).Value))
		postForm(t, c, app(i+1), "/logout/", url.Values{})
	}
	oldMaster := set.MasterAddr(t)
	killed := time.Now()
	set.Master.Kill(t)

	promoted := set.WaitFailover(t, oldMaster)
	failedOver := time.Since(killed)
	// Serving again: both replicas answer a logged-in GET, without restart.
	for i, r := range apps {
		testkit.Eventually(t, r.ID+" serves a logged-in page again", 30*time.Second, func() (bool, string) {
			_, failure := loggedInGet(kept[i], r.URL)
			return failure == "", failure
		})
	}
	recovered := time.Now()
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
	// Writes on both replicas: a login and a logout each (a READONLY
	// would fail them), with the load still running for a while.
	for i := range apps {
		c := testkit.Browser(t)
		postLogin(t, c, app(i), "user-0", password, nil)
		wantLoggedIn(t, c, app(i+1), "user-0")
		postForm(t, c, app(i+1), "/logout/", url.Values{})
		wantLoggedOut(t, c, app(i), "user-0")
	}
	time.Sleep(2 * time.Second)
	stopLoad()

	mu.Lock()
	var lastFailure time.Time
	var lasting []string
	// "Lasting": past a second's grace after both replicas served again,
	// the time for requests already in flight and for connections the
	// pool still held to the dead master to be found broken and dropped.
	for i, f := range failures {
		if f.After(lastFailure) {
			lastFailure = f
		}
		if f.After(recovered.Add(time.Second)) {
			lasting = append(lasting, why[i])
		}
	}
	nFailed, nTotal := len(failures), total
	mu.Unlock()
	unavailable := time.Duration(0)
	if !lastFailure.IsZero() {
		unavailable = lastFailure.Sub(killed)
	}

	sessionsKept := 0
	for i, u := range kept {
		for j := range apps {
			_, failure := loggedInGet(u, app(i+j))
			if failure != "" {
				t.Errorf("session %d of %s after the failover on %s: %s", i, u.user, apps[(i+j)%len(apps)].ID, failure)
			}
		}
		if _, failure := loggedInGet(u, app(i)); failure == "" {
			sessionsKept++
		}
	}
	logoutsKept := 0
	for i, c := range endedCookies {
		status, _, body, err := tryGet(c, app(i)+"/", nil)
		if err == nil && status == http.StatusOK && !strings.Contains(body, "hello "+endedWho[i]) {
			logoutsKept++
		} else {
			t.Errorf("a logout acknowledged before the failover came back: %s's old cookie, GET / %d, %v", endedWho[i], status, err)
		}
	}
	if len(lasting) > 0 {
		t.Errorf("%d requests failed more than a second after both replicas served again (READONLY or a stale master?): %v", len(lasting), lasting[:min(len(lasting), 5)])
	}

	t.Logf("promoted %s in %.1fs; unavailable %.1fs (last failed request after the kill); %d failed of %d requests (%v)",
		promoted.Addr(), failedOver.Seconds(), unavailable.Seconds(), nFailed, nTotal, samples)
	t.Logf("sessions kept %d of %d, logouts kept %d of %d", sessionsKept, len(kept), logoutsKept, len(endedCookies))
}
