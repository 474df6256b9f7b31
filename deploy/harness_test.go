package deploy

// The native cluster harness: a real redis-server (AOF), N replicas of the
// service binary and the repository's haproxy.cfg in front of them, all as
// child processes on 127.0.0.1. Tests get a *cluster from startCluster and
// drive it over HTTP; everything is torn down in t.Cleanup.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// The bootstrap account every replica is started with. Test-only: it exists
// in the throwaway Redis of one test and nowhere else.
const testUser, testPassword = "admin", "cluster-harness-only-7Qv2-not-a-real-secret"

// testDeviceCookieKey is every replica's DEVICE_COOKIE_KEY (required with
// REDIS_URL; base64 of 32 bytes), test-only.
const testDeviceCookieKey = "Y2x1c3Rlci1oYXJuZXNzLW9ubHktZGV2aWNlLWtleSE="

const (
	// replicaDrain is SHUTDOWN_DRAIN: long enough for in-flight requests
	// and for the test to see /readyz at 503, short enough for a quick
	// rolling restart.
	replicaDrain = time.Second
	// harnessReadyTimeout bounds a replica's or haproxy's start.
	harnessReadyTimeout = 15 * time.Second
	// harnessExitTimeout bounds waiting for a replica to exit after
	// SIGTERM: drain plus the server's 15s shutdown deadline plus slack.
	harnessExitTimeout = replicaDrain + 20*time.Second
	// harnessTailLines of each process log are printed when a test fails.
	harnessTailLines = 40
	// sessionCookie is the service's default cookie name.
	sessionCookie = "session_id"
	// deviceCookie is the device cookie a login leaves in the browser.
	deviceCookie = "device"
)

// TestMain removes the server binary that testkit.ServerBinary built (if
// any) once every test of the package has run.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := testkit.RemoveBuilt(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// probeClient is for readiness and rotation probes: a fresh connection for
// every request, so that a probe reaches whichever replica haproxy picks now
// and never reuses a connection to a replica that has gone.
var probeClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// ---------------------------------------------------------------------------
// Replicas.

// replica is one server process, restartable on the same port.
type replica struct {
	ID   string // INSTANCE_ID, echoed in X-Served-By
	Addr string // 127.0.0.1:PORT
	URL  string // http://127.0.0.1:PORT

	bin     string
	env     []string
	logPath string
	proc    *testkit.Process
}

// newReplica returns a replica that is not started yet. Whatever state the
// test leaves it in, its process does not outlive the test.
func newReplica(t testing.TB, bin, id, addr, redisURL, logDir string) *replica {
	t.Helper()
	// addr was free a moment ago. Taken again before the replica binds it,
	// it makes the start fail loudly (the replica exits on the failed bind,
	// or someone else answers without our X-Served-By), never silently.
	logPath := filepath.Join(logDir, id+".log")
	r := &replica{
		ID:      id,
		Addr:    addr,
		URL:     "http://" + addr,
		bin:     bin,
		logPath: logPath,
		proc:    testkit.NewProcess(t, logPath),
		// A clean environment, so nothing from the developer's shell
		// (SESSION_IDLE_TIMEOUT, LOGIN_MAX_FAILURES, ...) changes the run.
		env: []string{
			"ADDR=" + addr,
			"REDIS_URL=" + redisURL,
			"BOOTSTRAP_USER=" + testUser,
			"BOOTSTRAP_PASSWORD=" + testPassword,
			"DEVICE_COOKIE_KEY=" + testDeviceCookieKey,
			"INSTANCE_ID=" + id,
			"SHUTDOWN_DRAIN=" + replicaDrain.String(),
			"TRUSTED_PROXIES=127.0.0.1/32",
			"LOG_LEVEL=info",
		},
	}
	return r
}

// launch starts the process without waiting for it to be ready.
func (r *replica) launch(t testing.TB) {
	t.Helper()
	cmd := exec.Command(r.bin)
	cmd.Env = r.env
	if err := r.proc.Start(cmd); err != nil {
		t.Fatalf("replica %s: %v", r.ID, err)
	}
}

// waitReady polls /readyz until this replica (by X-Served-By) answers 200.
func (r *replica) waitReady(t testing.TB) {
	t.Helper()
	testkit.Eventually(t, "replica "+r.ID+" ready", harnessReadyTimeout, func() (bool, string) {
		if !r.proc.Running() {
			t.Fatalf("replica %s exited before it was ready: %v\n%s", r.ID, r.proc.Err(), r.proc.LogTail(harnessTailLines))
		}
		status, by, _, err := tryGet(probeClient, r.URL+"/readyz", nil)
		switch {
		case err != nil:
			return false, err.Error()
		case by != r.ID:
			return false, fmt.Sprintf("answered by %q, not %q: port taken by someone else?", by, r.ID)
		case status != http.StatusOK:
			return false, fmt.Sprintf("/readyz %d", status)
		}
		return true, ""
	})
}

// Start (re)starts the replica on its port and waits until /readyz is 200.
func (r *replica) Start(t testing.TB) {
	t.Helper()
	r.launch(t)
	r.waitReady(t)
}

// Stop sends SIGTERM, waits for the process to exit and requires exit
// code 0 (the graceful shutdown path: drain, then finish in-flight requests).
func (r *replica) Stop(t testing.TB) {
	t.Helper()
	r.terminate(t)
	r.waitStopped(t)
}

// terminate sends SIGTERM without waiting, so a test can watch the drain.
func (r *replica) terminate(t testing.TB) {
	t.Helper()
	if !r.proc.Running() {
		t.Fatalf("replica %s: Stop while not running", r.ID)
	}
	if err := r.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("replica %s: %v", r.ID, err)
	}
}

// waitStopped waits for the process to exit after terminate and requires
// exit code 0.
func (r *replica) waitStopped(t testing.TB) {
	t.Helper()
	if !r.proc.WaitExit(harnessExitTimeout) {
		t.Fatalf("replica %s ignored SIGTERM for %v\n%s", r.ID, harnessExitTimeout, r.proc.LogTail(harnessTailLines))
	}
	if err := r.proc.Err(); err != nil {
		t.Fatalf("replica %s did not exit cleanly after SIGTERM: %v\n%s", r.ID, err, r.proc.LogTail(harnessTailLines))
	}
}

// Kill simulates a crash (SIGKILL) and waits for the process to be gone.
func (r *replica) Kill(t testing.TB) {
	t.Helper()
	if !r.proc.Running() {
		t.Fatalf("replica %s: Kill while not running", r.ID)
	}
	if err := r.proc.Kill(testkit.WaitTimeout); err != nil {
		t.Fatalf("replica %s: %v", r.ID, err)
	}
}

// Running reports whether the replica's process is alive.
func (r *replica) Running() bool { return r.proc.Running() }

// Log returns everything the replica has written to its log so far.
func (r *replica) Log(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		t.Fatalf("replica %s: read log: %v", r.ID, err)
	}
	return string(b)
}

// ---------------------------------------------------------------------------
// The cluster.

type cluster struct {
	Redis    *redistest.Server
	Replicas []*replica
	LB       string // http://127.0.0.1:PORT of haproxy

	lbAddr string
	logDir string
	lb     *testkit.Process
}

// startCluster starts an AOF Redis, n replicas ("app-1".."app-n") and
// haproxy in front of them, and returns once all are ready and the bootstrap user
// exists. Everything is stopped in t.Cleanup, also when the test fails, and
// the tail of every process log is printed if it did.
func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("startCluster: n = %d", n)
	}
	haproxyBin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal("haproxy not found: run ./scripts/test.sh, which installs it")
	}
	bin := testkit.ServerBinary(t)

	c := &cluster{logDir: t.TempDir()}
	c.Redis = redistest.Start(t, redistest.WithAOF())
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range c.Replicas {
				t.Logf("replica %s (%s):\n%s", r.ID, r.Addr, r.proc.LogTail(harnessTailLines))
			}
			if c.lb != nil {
				t.Logf("haproxy (%s):\n%s", c.LB, c.lb.LogTail(harnessTailLines))
			}
		}
	})

	// One draw for every address of the cluster, so no two of them repeat.
	addrs := testkit.FreeAddrs(t, n+1)
	c.lbAddr = addrs[n]
	for i := 1; i <= n; i++ {
		c.Replicas = append(c.Replicas, newReplica(t, bin, "app-"+strconv.Itoa(i), addrs[i-1], c.Redis.URL(), c.logDir))
	}
	// Launch all, then wait for each: they start in parallel.
	for _, r := range c.Replicas {
		r.launch(t)
	}
	for _, r := range c.Replicas {
		r.waitReady(t)
	}
	c.waitBootstrapUser(t)
	c.startLB(t, haproxyBin)
	return c
}

// waitBootstrapUser waits until the bootstrap user is stored. /readyz turns
// 200 as soon as Redis answers, but the replicas create the user afterwards
// (an argon2id hash later), and a login before that would be a failed one
// counted by the throttle. The key is the documented layout of
// internal/store/keys.go ("user:{<name>}", a hash with field password).
func (c *cluster) waitBootstrapUser(t testing.TB) {
	t.Helper()
	rdb := c.Redis.Client(t)
	testkit.Eventually(t, "bootstrap user "+testUser+" stored", harnessReadyTimeout, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ok, err := rdb.HExists(ctx, "user:{"+testUser+"}", "password").Result()
		return err == nil && ok, fmt.Sprintf("HEXISTS: %v, %v", ok, err)
	})
}

// startLB runs deploy/haproxy.cfg, rendered over the replicas, in the
// foreground as a child process, and waits until it proxies.
func (c *cluster) startLB(t *testing.T, haproxyBin string) {
	t.Helper()
	servers := map[string]string{}
	for _, r := range c.Replicas {
		servers[r.ID] = r.Addr
	}
	c.LB = "http://" + c.lbAddr
	conf := renderHAProxyConf(t, servers, c.lbAddr)
	confPath := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// -db: foreground, no daemon; -W: master-worker, as the image runs it.
	cmd := exec.Command(haproxyBin, "-W", "-db", "-f", confPath)
	cmd.Env = []string{}
	c.lb = testkit.NewProcess(t, filepath.Join(c.logDir, "haproxy.log"))
	if err := c.lb.Start(cmd); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}

	testkit.Eventually(t, "haproxy proxying to every replica", harnessReadyTimeout, func() (bool, string) {
		if !c.lb.Running() {
			t.Fatalf("haproxy exited before it was ready: %v\n%s\n--- config ---\n%s", c.lb.Err(), c.lb.LogTail(harnessTailLines), conf)
		}
		// Every replica must have passed its health checks: round-robin
		// over all of them in one pass of len(servers) requests.
		seen := map[string]bool{}
		for range len(servers) {
			status, by, _, err := tryGet(probeClient, c.LB+"/healthz", nil)
			if err != nil {
				return false, err.Error()
			}
			if status != http.StatusOK {
				return false, fmt.Sprintf("/healthz %d served by %q", status, by)
			}
			seen[by] = true
		}
		return len(seen) == len(servers), fmt.Sprintf("%d of %d replicas in rotation", len(seen), len(servers))
	})
}

// ---------------------------------------------------------------------------
// HTTP helpers.

// login returns a client logged in as testUser via base (the LB or a
// replica URL).
func (c *cluster) login(t testing.TB, base string) *http.Client {
	t.Helper()
	return c.loginAs(t, base, testUser, testPassword)
}

// loginAs logs user in via base with a fresh client and asserts the 303 and
// the session cookie. The client's jar ignores ports, so the cookie got
// through the LB is also sent to every replica directly (all are 127.0.0.1).
func (c *cluster) loginAs(t testing.TB, base, user, password string) *http.Client {
	t.Helper()
	client := testkit.Browser(t)
	postLogin(t, client, base, user, password, nil)
	return client
}

// postLogin posts the login form with extra request headers and asserts a
// successful login (303 and a session cookie). It returns the cookie.
func postLogin(t testing.TB, client *http.Client, base, user, password string, header http.Header) *http.Cookie {
	t.Helper()
	form := url.Values{"username": {user}, "password": {password}}
	req, err := http.NewRequest(http.MethodPost, base+"/login/", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s/login/ as %s: %v", base, user, err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST %s/login/ as %s (served by %q): status %d, want 303\n%s", base, user, resp.Header.Get("X-Served-By"), resp.StatusCode, body)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie && ck.Value != "" {
			return ck
		}
	}
	t.Fatalf("POST %s/login/ as %s: no %s cookie in %q", base, user, sessionCookie, resp.Header.Values("Set-Cookie"))
	return nil
}

// logout posts the logout form via base and asserts the 303 and that the
// cookie is cleared.
func logout(t testing.TB, client *http.Client, base string) {
	t.Helper()
	resp, err := client.PostForm(base+"/logout/", url.Values{})
	if err != nil {
		t.Fatalf("POST %s/logout/: %v", base, err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST %s/logout/ (served by %q): status %d, want 303\n%s", base, resp.Header.Get("X-Served-By"), resp.StatusCode, body)
	}
	cleared := false
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie && ck.Value == "" && ck.MaxAge < 0 {
			cleared = true
		}
	}
	if !cleared {
		t.Fatalf("POST %s/logout/: cookie not cleared, Set-Cookie %q", base, resp.Header.Values("Set-Cookie"))
	}
}

// get does a GET with client and returns status, X-Served-By and body;
// a transport error fails the test.
func (c *cluster) get(t testing.TB, client *http.Client, url string) (status int, servedBy, body string) {
	t.Helper()
	status, servedBy, body, err := tryGet(client, url, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return status, servedBy, body
}

// tryGet is get without a testing.TB, for load goroutines; header is added
// to the request.
func tryGet(client *http.Client, url string, header http.Header) (status int, servedBy, body string, err error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, resp.Header.Get("X-Served-By"), string(b), fmt.Errorf("read body: %w", err)
	}
	return resp.StatusCode, resp.Header.Get("X-Served-By"), string(b), nil
}

// sessionCookieOf returns the session cookie client holds for base.
func sessionCookieOf(t testing.TB, client *http.Client, base string) *http.Cookie {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range client.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			return ck
		}
	}
	t.Fatalf("client holds no %s cookie for %s", sessionCookie, base)
	return nil
}

// cookieClient returns a client that sends exactly the given session cookie
// value with every request, whatever the server answers, e.g. to replay a
// cookie the browser has dropped.
func cookieClient(t testing.TB, value string) *http.Client {
	t.Helper()
	return testkit.Client(t, fixedJar{{Name: sessionCookie, Value: value}})
}

// fixedJar is a cookie jar that always holds the same cookies: a Set-Cookie
// that clears one does not.
type fixedJar []*http.Cookie

func (j fixedJar) SetCookies(*url.URL, []*http.Cookie) {}
func (j fixedJar) Cookies(*url.URL) []*http.Cookie     { return j }

// loggedIn reports whether an index page body shows user logged in.
func loggedIn(body, user string) bool {
	return strings.Contains(body, "Hello, "+user)
}

// loggedOut reports whether an index page body is the logged-out one.
func loggedOut(body string) bool {
	return strings.Contains(body, "<h1>Hello</h1>") && !strings.Contains(body, "Hello, "+testUser)
}

// sessionValues reads and decodes the session of a cookie from Redis; ok is
// false when no such session is stored.
func (c *cluster) sessionValues(t testing.TB, cookieValue string) (values map[string]any, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b, err := c.Redis.Client(t).Get(ctx, testkit.SessionKey(cookieValue)).Bytes()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return nil, false
		}
		t.Fatalf("read session from redis: %v", err)
	}
	var doc struct {
		Values map[string]any `json:"values"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Values == nil {
		t.Fatalf("decode session: %v\n%s", err, b)
	}
	return doc.Values, true
}

// addUser creates a user with the service's own CLI (`server user add`), the
// way an operator does, password on stdin.
func (c *cluster) addUser(t testing.TB, name, password string) {
	t.Helper()
	cmd := exec.Command(testkit.ServerBinary(t), "user", "add", name)
	cmd.Env = []string{"REDIS_URL=" + c.Redis.URL()}
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("server user add %s: %v\n%s", name, err, out)
	}
}

// waitInRotation waits until a request through the LB is answered by r,
// i.e. until haproxy sends traffic to it again: after two good /readyz
// checks a second apart. A rolling restart that went on earlier could take
// the last ready replica away. It returns how long it took.
func (c *cluster) waitInRotation(t testing.TB, r *replica, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	testkit.Eventually(t, "replica "+r.ID+" back in the LB's rotation", timeout, func() (bool, string) {
		status, by, _, err := tryGet(probeClient, c.LB+"/healthz", nil)
		return err == nil && status == http.StatusOK && by == r.ID, fmt.Sprintf("/healthz %d served by %q (err %v)", status, by, err)
	})
	return time.Since(start)
}

// ---------------------------------------------------------------------------
// Load.

// loadUser is one logged-in client and the user its page must show.
type loadUser struct {
	client *http.Client
	user   string
}

// loadStats is the outcome of a load run.
type loadStats struct {
	mu       sync.Mutex
	total    int
	failed   int
	servedBy map[string]int
	samples  []string // the first few failures, for the report
}

// loggedInGet is one request of a load: GET base/ as u, which must answer
// 200 with u logged in. It returns who served it and what went wrong ("":
// nothing), as loadStats.record takes them.
func loggedInGet(u loadUser, base string) (servedBy, failure string) {
	status, by, body, err := tryGet(u.client, base+"/", nil)
	switch {
	case err != nil:
		return by, "transport error: " + err.Error()
	case status != http.StatusOK:
		return by, fmt.Sprintf("status %d from %q: %s", status, by, firstLine(body))
	case !loggedIn(body, u.user):
		return by, fmt.Sprintf("200 from %q without %q", by, "Hello, "+u.user)
	}
	return by, ""
}

func (s *loadStats) record(by string, failure string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	if by != "" {
		s.servedBy[by]++
	}
	if failure != "" {
		s.failed++
		if len(s.samples) < 10 {
			s.samples = append(s.samples, time.Now().Format("15:04:05.000")+" "+failure)
		}
	}
}

func (s *loadStats) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%d failed of %d requests, served by %v", s.failed, s.total, s.servedBy)
}

// load runs logged-in GET / through the LB from workers goroutines, cycling
// over users, until stop is called; stop waits for the workers and returns
// the figures. A request fails if it is not a 200 showing its user, or if it
// gets no answer at all.
type load struct {
	stats    loadStats
	quit     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

func (c *cluster) startLoad(workers int, users []loadUser) *load {
	l := &load{quit: make(chan struct{}), stats: loadStats{servedBy: map[string]int{}}}
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := w; ; i++ {
				select {
				case <-l.quit:
					return
				default:
				}
				l.stats.record(loggedInGet(users[i%len(users)], c.LB))
			}
		}()
	}
	return l
}

// stop may be called more than once (e.g. deferred as well).
func (l *load) stop() *loadStats {
	l.stopOnce.Do(func() { close(l.quit) })
	l.wg.Wait()
	return &l.stats
}

// firstLine shortens a body for a failure message: its <title>, else its
// first 80 bytes.
func firstLine(body string) string {
	if m := titleRE.FindStringSubmatch(body); m != nil {
		return m[1]
	}
	if len(body) > 80 {
		return body[:80]
	}
	return body
}

var titleRE = regexp.MustCompile(`<title>([^<]*)</title>`)
