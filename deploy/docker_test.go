package deploy

// The real stack: `docker compose up --build` of the repository's own
// docker-compose.yml and Dockerfile on the machine's Docker Engine, as a
// user runs it. The third-party images are the stand-ins that
// ./scripts/stand-in-images.sh builds from Debian packages (no registry is
// reachable), and `docker compose` is the v2 CLI that
// ./scripts/compose-cli.sh builds; ./scripts/test.sh runs both first. All
// traffic goes to the published port on 127.0.0.1 or into the stack's own
// containers with `docker compose exec`.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"loginsvc/internal/testkit"
)

const (
	// composeUpTimeout bounds `up --build --wait`: the image build is most
	// of it, minutes on a cold 2-core machine, seconds with the layer cache.
	composeUpTimeout = 15 * time.Minute
	// composeCmdTimeout bounds every other compose command.
	composeCmdTimeout = 3 * time.Minute
	// composeReplicas is deploy.replicas of docker-compose.yml.
	composeReplicas = 3
)

// standInImages are the images the compose file and the Dockerfile pull,
// which ./scripts/stand-in-images.sh builds locally.
var standInImages = []string{
	"redis:7.4-alpine",
	"haproxy:2.6",
	"golang:1.27-bookworm",
	"gcr.io/distroless/static-debian12:nonroot",
	"prom/prometheus:v3.5.0", // the monitoring profile's
}

// composeStack is one `docker compose -p NAME` project of the repository's
// compose file, published on a free port of 127.0.0.1.
type composeStack struct {
	project string
	root    string
	files   []string // -f arguments: docker-compose.yml, then overrides
	env     []string
	base    string // http://127.0.0.1:PORT, the published lb
}

// compose runs `docker compose` on the stack and returns its combined
// output.
func (s *composeStack) compose(timeout time.Duration, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := []string{"compose", "-p", s.project, "--project-directory", s.root}
	for _, f := range s.files {
		full = append(full, "-f", filepath.Join(s.root, f))
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, "docker", full...)
	cmd.Env = s.env
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", timeout, err)
	}
	return out.String(), err
}

// must is compose that fails the test on an error.
func (s *composeStack) must(t testing.TB, args ...string) string {
	t.Helper()
	out, err := s.compose(composeCmdTimeout, "", args...)
	if err != nil {
		t.Fatalf("docker compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// docker runs the docker CLI itself, for what compose cannot aim at one
// replica (kill, restart) or inspect.
func docker(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), composeCmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// replicas returns the container ids of the running app replicas; a
// replica's X-Served-By is its hostname, the first 12 characters.
func (s *composeStack) replicas(t testing.TB) []string {
	t.Helper()
	var ids []string
	for _, id := range strings.Fields(s.must(t, "ps", "-q", "app")) {
		ids = append(ids, id[:12])
	}
	slices.Sort(ids)
	return ids
}

// redisCLI runs redis-cli in the redis container, as docs/running.md tells
// operators to.
func (s *composeStack) redisCLI(t testing.TB, args ...string) string {
	t.Helper()
	return strings.TrimSpace(s.must(t, append([]string{"exec", "-T", "redis", "redis-cli"}, args...)...))
}

// startComposeStack checks the tools, then brings the stack up with
// `docker compose up -d --build --wait` and registers `down -v`. overrides
// are compose files layered on docker-compose.yml, as docs/running.md layers
// them; extraEnv ("NAME=value") goes to every compose command, after the
// test's own.
func startComposeStack(t *testing.T, overrides []string, extraEnv ...string) *composeStack {
	t.Helper()
	if out, err := exec.Command("docker", "compose", "version").CombinedOutput(); err != nil {
		t.Fatalf("docker compose (v2) not found: run ./scripts/test.sh, which builds it: %v\n%s", err, out)
	}
	var standIns, others []string
	for _, img := range standInImages {
		out, err := exec.Command("docker", "image", "inspect", "-f", `{{ index .Config.Labels "org.loginsvc.stand-in" }}`, img).CombinedOutput()
		if err != nil {
			t.Fatalf("image %s missing: run ./scripts/test.sh, which builds the stand-ins: %v\n%s", img, err, out)
		}
		if strings.TrimSpace(string(out)) != "" {
			standIns = append(standIns, img)
		} else {
			others = append(others, img)
		}
	}
	t.Logf("STAND-IN images, Debian bookworm builds of the same programs made by scripts/stand-in-images.sh, NOT the upstream images: %s", strings.Join(standIns, ", "))
	if len(others) > 0 {
		t.Logf("images used as found on this engine (not stand-ins): %s", strings.Join(others, ", "))
	}

	port := strings.TrimPrefix(testkit.FreeAddr(t), "127.0.0.1:")
	s := &composeStack{
		project: "loginsvc-test-" + strconv.Itoa(os.Getpid()),
		root:    repoRoot(t),
		files:   append([]string{"docker-compose.yml"}, overrides...),
		base:    "http://127.0.0.1:" + port,
	}
	// The machine's environment (PATH, DOCKER_HOST) minus anything that
	// would change the compose file, plus the test's own settings.
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "BOOTSTRAP_USER", "BOOTSTRAP_PASSWORD", "DEVICE_COOKIE_KEY", "LB_BIND", "LB_PORT", "TRUSTED_PROXIES", "LOG_LEVEL", "COMPOSE_FILE", "COMPOSE_PROJECT_NAME",
			"LOG_FORMAT", "COMPOSE_PROFILES", "PROMETHEUS_BIND", "PROMETHEUS_PORT",
			"REDIS_SUBNET", "REDIS_MASTER_IP", "REDIS_REPLICA_IP": // compose.sentinel.yml's: its tests expect the defaults
			continue
		}
		s.env = append(s.env, kv)
	}
	s.env = append(s.env, "BOOTSTRAP_USER="+testUser, "BOOTSTRAP_PASSWORD="+testPassword, "DEVICE_COOKIE_KEY="+testDeviceCookieKey, "LB_PORT="+port)
	s.env = append(s.env, extraEnv...)

	t.Cleanup(func() {
		if t.Failed() {
			out, _ := s.compose(composeCmdTimeout, "", "logs", "--no-color", "--tail", "60")
			t.Logf("docker compose logs (last lines of each container):\n%s", out)
		}
		start := time.Now()
		if out, err := s.compose(composeCmdTimeout, "", "down", "-v", "--rmi", "local", "--remove-orphans", "--timeout", "30"); err != nil {
			t.Errorf("docker compose down -v: %v\n%s", err, out)
		} else {
			t.Logf("docker compose down -v took %v", time.Since(start).Round(time.Millisecond))
		}
	})

	start := time.Now()
	out, err := s.compose(composeUpTimeout, "", "up", "-d", "--build", "--wait", "--wait-timeout", "180")
	if err != nil {
		t.Fatalf("docker compose up -d --build --wait: %v\n%s", err, out)
	}
	t.Logf("docker compose up -d --build --wait: %v (image build included)", time.Since(start).Round(time.Millisecond))

	// The replicas create the bootstrap user just after they turn ready; a
	// login before that would count as a failed one.
	testkit.Eventually(t, "bootstrap user stored", 30*time.Second, func() (bool, string) {
		out, err := s.compose(composeCmdTimeout, "", "exec", "-T", "redis", "redis-cli", "HEXISTS", "user:{"+testUser+"}", "password")
		return err == nil && strings.TrimSpace(out) == "1", strings.TrimSpace(out)
	})
	return s
}

// TestComposeStack runs the repository's docker-compose.yml and Dockerfile,
// unchanged, on the Docker Engine and checks what a user of the stack
// would: logins through the published port, round-robin over the replicas,
// scaling, a replica killed and all restarted one by one under load, Redis
// restarted and stopped, sessions visible to redis-cli, and a real browser.
// The steps build on each other, so the first failing one ends the test.
func TestComposeStack(t *testing.T) {
	s := startComposeStack(t, nil)

	const posterPassword = "poster-compose-test-only-password"
	var (
		admin *http.Client // admin, logged in through the published port
		users []loadUser   // the logged-in clients of the load
	)

	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"published-on-loopback", func(t *testing.T) {
			got := strings.TrimSpace(s.must(t, "port", "lb", "8080"))
			if want := strings.TrimPrefix(s.base, "http://"); got != want {
				t.Errorf("lb's 8080 is published on %q, want %q (127.0.0.1 by default)", got, want)
			}
			// The test sets its own BOOTSTRAP_PASSWORD: no demo warning.
			if out := s.must(t, "logs", "--no-color", "app"); strings.Contains(out, "BOOTSTRAP_PASSWORD is the demo default") {
				t.Errorf("replicas warn about the demo password although BOOTSTRAP_PASSWORD is set")
			}
			if out := s.must(t, "logs", "--no-color", "app"); strings.Contains(out, "DEVICE_COOKIE_KEY is or lists the demo default") {
				t.Errorf("replicas warn about the demo device cookie key although DEVICE_COOKIE_KEY is set")
			}
		}},

		{"round-robin", func(t *testing.T) {
			ids := s.replicas(t)
			if len(ids) != composeReplicas {
				t.Fatalf("%d app replicas running, want %d: %v", len(ids), composeReplicas, ids)
			}
			admin = testkit.Browser(t)
			postLogin(t, admin, s.base, testUser, testPassword, nil)
			seen := map[string]int{}
			for i := range 30 {
				status, by, body, err := tryGet(admin, s.base+"/", nil)
				if err != nil || status != http.StatusOK || !loggedIn(body, testUser) {
					t.Fatalf("GET / #%d (served by %q): status %d, err %v, logged in %v", i+1, by, status, err, loggedIn(body, testUser))
				}
				seen[by]++
			}
			t.Logf("30 GET / through 127.0.0.1, served by %v", seen)
			for _, id := range ids {
				if seen[id] == 0 {
					t.Errorf("replica %s served none of 30 requests: %v", id, seen)
				}
			}
			if len(seen) != len(ids) {
				t.Errorf("X-Served-By names %v, want exactly the replicas %v", seen, ids)
			}
		}},

		{"redis-cli-shows-sessions", func(t *testing.T) {
			ck := sessionCookieOf(t, admin, s.base)
			key := testkit.SessionKey(ck.Value)
			keys := strings.Fields(s.redisCLI(t, "--scan", "--pattern", "scs:session:*"))
			if !slices.Contains(keys, key) {
				t.Fatalf("redis-cli --scan --pattern 'scs:session:*' gives %v, want it to hold %s", keys, key)
			}
			// The session records the client's address as HAProxy saw it,
			// not what the client claimed.
			forged := testkit.Browser(t)
			fck := postLogin(t, forged, s.base, testUser, testPassword, http.Header{"X-Forwarded-For": {"6.6.6.6"}})
			var doc struct {
				Values map[string]any `json:"values"`
			}
			raw := s.redisCLI(t, "GET", testkit.SessionKey(fck.Value))
			if err := json.Unmarshal([]byte(raw), &doc); err != nil {
				t.Fatalf("redis-cli GET of the session: %v\n%s", err, raw)
			}
			if ip, _ := doc.Values["login_ip"].(string); ip == "" || ip == "6.6.6.6" {
				t.Errorf("login with a forged X-Forwarded-For: login_ip %q, want the address HAProxy saw", ip)
			} else {
				t.Logf("%d session keys; a login claiming X-Forwarded-For 6.6.6.6 was recorded from %s", len(keys), ip)
			}
		}},

		{"scale-to-5-without-restart", func(t *testing.T) {
			lbBefore := docker(t, "inspect", "-f", "{{.Id}} {{.State.StartedAt}}", s.lbID(t))
			before := s.replicas(t)
			start := time.Now()
			s.must(t, "up", "-d", "--scale", "app=5", "--wait", "--wait-timeout", "120")
			upTook := time.Since(start)
			ids := s.replicas(t)
			if len(ids) != 5 {
				t.Fatalf("%d replicas after --scale app=5, want 5", len(ids))
			}
			for _, id := range before {
				if !slices.Contains(ids, id) {
					t.Errorf("replica %s was replaced by --scale", id)
				}
			}
			if after := docker(t, "inspect", "-f", "{{.Id}} {{.State.StartedAt}}", s.lbID(t)); after != lbBefore {
				t.Errorf("lb restarted by --scale: %q, then %q", lbBefore, after)
			}
			seen := map[string]bool{}
			probe := testkit.Client(t, nil)
			testkit.Eventually(t, "the lb sends traffic to all 5 replicas", 60*time.Second, func() (bool, string) {
				_, by, _, _ := tryGet(probe, s.base+"/healthz", nil)
				seen[by] = true
				missing := 0
				for _, id := range ids {
					if !seen[id] {
						missing++
					}
				}
				return missing == 0, fmt.Sprintf("%d replicas not seen yet (seen %v)", missing, seen)
			})
			t.Logf("--scale app=5: up --wait %v, all 5 in rotation %v after the command began, lb not restarted",
				upTook.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

			// Back to 3 under load: the removed replicas drain first.
			users = s.loadUsers(t, posterPassword)
			l := s.startLoad(t, 4, users, "")
			defer l.stop()
			start = time.Now()
			s.must(t, "up", "-d", "--scale", "app=3", "--wait", "--wait-timeout", "120")
			stats := l.stop()
			t.Logf("--scale app=3 under load (%v): %s", time.Since(start).Round(time.Millisecond), stats)
			if stats.failed != 0 {
				t.Errorf("%d of %d requests failed; first ones:\n%s", stats.failed, stats.total, strings.Join(stats.samples, "\n"))
			}
		}},

		{"kill-one-replica-under-load", func(t *testing.T) {
			ids := s.replicas(t)
			victim := ids[1]
			l := s.startLoad(t, 4, users, "")
			defer l.stop()
			time.Sleep(1500 * time.Millisecond)
			docker(t, "kill", victim)
			killed := time.Now()
			time.Sleep(3 * time.Second)
			stats := l.stop()
			t.Logf("docker kill (SIGKILL) of replica %s under load: %s", victim, stats)
			if stats.failed != 0 {
				t.Errorf("%d of %d GETs failed; first ones:\n%s", stats.failed, stats.total, strings.Join(stats.samples, "\n"))
			}
			if stats.servedBy[victim] == 0 {
				t.Errorf("%s served nothing before it was killed: the kill was not mid-load", victim)
			}
			s.expectSessions(t, users)
			// Docker brings it back (restart: unless-stopped); up makes sure.
			s.must(t, "up", "-d", "--wait", "--wait-timeout", "120")
			s.waitInRotation(t, victim, 60*time.Second)
			t.Logf("%s back in rotation %v after the kill", victim, time.Since(killed).Round(time.Millisecond))
		}},

		{"rolling-restart-under-load", func(t *testing.T) {
			l := s.startLoad(t, 4, users, posterPassword)
			defer l.stop()
			time.Sleep(time.Second)
			for _, id := range s.replicas(t) {
				start := time.Now()
				docker(t, "restart", id) // SIGTERM, drain, exit, start
				restarted := time.Since(start)
				back := s.waitInRotation(t, id, 60*time.Second)
				t.Logf("replica %s: docker restart took %v, back in rotation %v later",
					id, restarted.Round(time.Millisecond), back.Round(time.Millisecond))
			}
			time.Sleep(500 * time.Millisecond)
			stats := l.stop()
			t.Logf("rolling restart of %d replicas under load: %s; logins (POST) %d, failed %d",
				composeReplicas, stats, l.posts.Load(), l.postFailures.Load())
			if stats.failed != 0 {
				t.Errorf("%d of %d requests failed; first ones:\n%s", stats.failed, stats.total, strings.Join(stats.samples, "\n"))
			}
			if l.posts.Load() == 0 {
				t.Errorf("no login was posted during the rolling restart")
			}
		}},

		{"redis-restart-keeps-sessions", func(t *testing.T) {
			start := time.Now()
			s.must(t, "restart", "redis")
			restarted := time.Since(start)
			recovered := s.waitLoggedIn(t, users, 30*time.Second)
			t.Logf("docker compose restart redis: %v; every session logged in again %v after it returned",
				restarted.Round(time.Millisecond), recovered.Round(time.Millisecond))
		}},

		{"redis-stop-gives-503-start-recovers", func(t *testing.T) {
			s.must(t, "stop", "redis")
			stopped := time.Now()
			var status int
			var retry string
			testkit.Eventually(t, "GET / answers 503 with Redis stopped", 30*time.Second, func() (bool, string) {
				req, _ := http.NewRequest(http.MethodGet, s.base+"/", nil)
				resp, err := admin.Do(req)
				if err != nil {
					return false, err.Error()
				}
				_ = resp.Body.Close()
				status, retry = resp.StatusCode, resp.Header.Get("Retry-After")
				return status == http.StatusServiceUnavailable && resp.Header.Get("X-Served-By") != "", fmt.Sprintf("status %d from %q", status, resp.Header.Get("X-Served-By"))
			})
			if retry == "" {
				t.Errorf("503 without Retry-After")
			}
			t.Logf("Redis stopped: the app's 503 page (Retry-After %s) %v after stop returned", retry, time.Since(stopped).Round(time.Millisecond))

			start := time.Now()
			s.must(t, "start", "redis")
			started := time.Since(start)
			recovered := s.waitLoggedIn(t, users, 30*time.Second)
			t.Logf("docker compose start redis: %v; every session logged in again %v after it returned",
				started.Round(time.Millisecond), recovered.Round(time.Millisecond))
		}},

		{"browser-login", func(t *testing.T) {
			s.must(t, "up", "-d", "--wait", "--wait-timeout", "120") // every service healthy again
			ids := s.replicas(t)
			for _, id := range ids {
				s.waitInRotation(t, id, 30*time.Second)
			}
			home := s.base + "/"
			b := newBrowserTab(t)
			resp := b.navigate("open /", chromedp.Navigate(home))
			b.wantDocument("GET /", resp, home, 200)
			b.wantHeading("Hello")
			resp = b.navigate("open the login form", chromedp.Navigate(s.base+"/login/"))
			b.wantDocument("login form", resp, s.base+"/login/", 200)
			b.do("type the credentials",
				chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), testUser),
				chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), testPassword),
			)
			resp = b.navigate("submit the login form", chromedp.Click(`//button[normalize-space()="Sign in"]`))
			b.wantDocument("after login", resp, home, 200)
			b.wantHeading("Hello, " + testUser)
			var servers []string
			for i := range 4 {
				resp := b.navigate(fmt.Sprintf("reload %d", i+1), chromedp.Reload())
				b.wantHeading("Hello, " + testUser)
				servers = append(servers, browserServedBy(resp))
				if !slices.Contains(ids, browserServedBy(resp)) {
					t.Errorf("reload %d served by %q, not one of the replicas %v", i+1, browserServedBy(resp), ids)
				}
			}
			if distinct := len(slices.Compact(slices.Sorted(slices.Values(servers)))); distinct < 2 {
				t.Errorf("4 reloads served by %v: want at least 2 distinct replicas (round-robin)", servers)
			}
			ck := b.sessionCookie(s.base)
			if ck == nil {
				t.Fatalf("the browser holds no %s cookie after login", sessionCookie)
			}
			if got := s.redisCLI(t, "EXISTS", testkit.SessionKey(ck.Value)); got != "1" {
				t.Errorf("redis-cli EXISTS of the browser's session: %s, want 1", got)
			}
			resp = b.navigate(`click "Sign out"`, chromedp.Click(`//button[normalize-space()="Sign out"]`))
			b.wantDocument("after logout", resp, home, 200)
			b.wantHeading("Hello")
			t.Logf("headless Chromium logged in through %s; reloads served by %v; logged out", s.base, servers)
		}},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.fn) {
			t.Fatalf("step %s failed; the later steps depend on it", st.name)
		}
	}
}

// lbID is the lb's container id.
func (s *composeStack) lbID(t testing.TB) string {
	t.Helper()
	id := strings.TrimSpace(s.must(t, "ps", "-q", "lb"))
	if id == "" {
		t.Fatal("no lb container")
	}
	return id
}

// loadUsers logs in admin twice and a second user, created with the
// service's CLI inside a replica (password on stdin) as docs/running.md says,
// and creates the user poster for the login load.
func (s *composeStack) loadUsers(t *testing.T, posterPassword string) []loadUser {
	t.Helper()
	const bobPassword = "bob-compose-test-only-password"
	for _, u := range []struct{ name, password string }{{"bob", bobPassword}, {"poster", posterPassword}} {
		if out, err := s.compose(composeCmdTimeout, u.password+"\n", "exec", "-T", "app", "/server", "user", "add", u.name); err != nil {
			t.Fatalf("docker compose exec app /server user add %s: %v\n%s", u.name, err, out)
		}
	}
	var users []loadUser
	for _, u := range []struct{ name, password string }{{testUser, testPassword}, {testUser, testPassword}, {"bob", bobPassword}} {
		c := testkit.Browser(t)
		postLogin(t, c, s.base, u.name, u.password, nil)
		users = append(users, loadUser{client: c, user: u.name})
	}
	return users
}

// composeLoad is GET / of logged-in users from several workers, and, when
// asked, one more worker that logs the user poster in again and again (a
// POST, which the lb never sends twice).
type composeLoad struct {
	stats        loadStats
	quit         chan struct{}
	stopOnce     sync.Once
	wg           sync.WaitGroup
	posts        atomic.Int64
	postFailures atomic.Int64
}

func (s *composeStack) startLoad(t testing.TB, workers int, users []loadUser, posterPassword string) *composeLoad {
	l := &composeLoad{quit: make(chan struct{}), stats: loadStats{servedBy: map[string]int{}}}
	for w := range workers {
		l.wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-l.quit:
					return
				default:
				}
				l.stats.record(loggedInGet(users[i%len(users)], s.base))
			}
		})
	}
	if posterPassword != "" {
		form := url.Values{"username": {"poster"}, "password": {posterPassword}}.Encode()
		c := testkit.Client(t, nil)
		l.wg.Go(func() {
			for {
				select {
				case <-l.quit:
					return
				case <-time.After(200 * time.Millisecond):
				}
				req, _ := http.NewRequest(http.MethodPost, s.base+"/login/", strings.NewReader(form))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := c.Do(req)
				l.posts.Add(1)
				failure := ""
				by := ""
				switch {
				case err != nil:
					failure = "login: transport error: " + err.Error()
				case resp.StatusCode != http.StatusSeeOther:
					by = resp.Header.Get("X-Served-By")
					failure = fmt.Sprintf("login: status %d from %q, want 303", resp.StatusCode, by)
				default:
					by = resp.Header.Get("X-Served-By")
				}
				if resp != nil {
					_ = resp.Body.Close()
				}
				if failure != "" {
					l.postFailures.Add(1)
				}
				l.stats.record(by, failure)
			}
		})
	}
	return l
}

// stop may be called more than once (e.g. deferred as well).
func (l *composeLoad) stop() *loadStats {
	l.stopOnce.Do(func() { close(l.quit) })
	l.wg.Wait()
	return &l.stats
}

// waitInRotation waits until the lb sends a request to the replica id and
// returns how long that took.
func (s *composeStack) waitInRotation(t testing.TB, id string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	probe := testkit.Client(t, nil)
	testkit.Eventually(t, "replica "+id+" in the lb's rotation", timeout, func() (bool, string) {
		status, by, _, err := tryGet(probe, s.base+"/healthz", nil)
		return err == nil && status == http.StatusOK && by == id, fmt.Sprintf("served by %q, status %d, err %v", by, status, err)
	})
	return time.Since(start)
}

// waitLoggedIn polls until every user's page shows the user again and
// returns how long that took; a page that answers but shows someone logged
// out fails at once: the session was lost.
func (s *composeStack) waitLoggedIn(t testing.TB, users []loadUser, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for i, u := range users {
		testkit.Eventually(t, fmt.Sprintf("session %d (%s) served again", i, u.user), timeout, func() (bool, string) {
			status, by, body, err := tryGet(u.client, s.base+"/", nil)
			if err == nil && status == http.StatusOK && !loggedIn(body, u.user) {
				t.Fatalf("session %d (%s), served by %q: logged out", i, u.user, by)
			}
			return err == nil && status == http.StatusOK, fmt.Sprintf("status %d from %q, err %v", status, by, err)
		})
	}
	return time.Since(start)
}

// expectSessions checks that every user's page still shows the user.
func (s *composeStack) expectSessions(t testing.TB, users []loadUser) {
	t.Helper()
	for i, u := range users {
		status, by, body, err := tryGet(u.client, s.base+"/", nil)
		if err != nil || status != http.StatusOK || !loggedIn(body, u.user) {
			t.Errorf("session %d (%s), served by %q: status %d, err %v, logged in %v", i, u.user, by, status, err, loggedIn(body, u.user))
		}
	}
}
