package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// The bootstrap account the tests log in with.
const (
	adminUser     = "admin"
	adminPassword = "change-me-now"
)

func bootstrapEnv(redisURL string) env {
	return env{"REDIS_URL": redisURL, "BOOTSTRAP_USER": adminUser, "BOOTSTRAP_PASSWORD": adminPassword}
}

// The service starts, creates the bootstrap user, lets it log in, and on
// shutdown first fails readiness while still serving for SHUTDOWN_DRAIN,
// then lets requests in flight finish before run returns nil.
func TestServeLogsInAndDrainsOnShutdown(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	vars := bootstrapEnv(redis.URL())
	vars["SHUTDOWN_DRAIN"] = "1s"
	s := startServer(t, vars)

	s.waitStatus(t, "/readyz", http.StatusOK)
	s.waitLog(t, `msg="bootstrap user created" user=admin`)
	browser := login(t, s.base, adminUser, adminPassword)

	s.cancel()
	// Readiness fails first, so a load balancer stops sending traffic...
	probe := testkit.Browser(t)
	testkit.Eventually(t, "/readyz answers 503 after cancel", 0, func() (bool, string) {
		status, body := get(t, probe, s.base+"/readyz")
		return status == http.StatusServiceUnavailable && strings.Contains(body, "shutting down"), fmt.Sprintf("status %d body %q", status, body)
	})
	// ...while the server still answers everything else, logged-in
	// sessions included.
	if status, body := get(t, browser, s.base+"/"); status != http.StatusOK || !strings.Contains(body, "Hello, admin") {
		t.Errorf("GET / during the drain: got status %d body\n%s\nwant 200 and Hello, admin", status, body)
	}
	if status, _ := get(t, probe, s.base+"/healthz"); status != http.StatusOK {
		t.Errorf("GET /healthz during the drain: got status %d, want 200", status)
	}

	// A login that starts during the drain and is still being sent when
	// the listener closes is answered in full.
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatalf("dial during the drain: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	form := url.Values{"username": {adminUser}, "password": {adminPassword}}.Encode()
	head := fmt.Sprintf("POST /login/ HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", s.addr, len(form))
	if _, err := conn.Write([]byte(head + form[:5])); err != nil {
		t.Fatalf("send the first part of the login: %v", err)
	}
	testkit.Eventually(t, "the listener closes after the drain", 0, func() (bool, string) {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			return true, ""
		}
		_ = c.Close()
		return false, "still accepting connections"
	})
	if _, err := conn.Write([]byte(form[5:])); err != nil {
		t.Fatalf("send the rest of the login after the listener closed: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer to the in-flight login: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) == 0 {
		t.Errorf("in-flight login: got status %d cookies %v, want 303 and a session cookie", resp.StatusCode, resp.Cookies())
	}

	if err := s.stop(t); err != nil {
		t.Errorf("run: got %v, want nil", err)
	}
	out := s.out.String()
	for _, want := range []string{`msg="shutting down" drain=1s`, `msg=stopped`} {
		if !strings.Contains(out, want) {
			t.Errorf("log: got no %s", want)
		}
	}
	if strings.Contains(out, adminPassword) {
		t.Errorf("log shows the bootstrap password:\n%s", out)
	}
}

// A replica whose Redis never answered was never ready, so no balancer
// sent it traffic: SIGTERM stops it at once instead of draining.
func TestNeverReadyReplicaSkipsTheDrain(t *testing.T) {
	t.Parallel()
	vars := bootstrapEnv("redis://" + testkit.FreeAddr(t) + "/0") // nothing listens
	vars["SHUTDOWN_DRAIN"] = "30s"
	s := startServer(t, vars)
	s.waitStatus(t, "/readyz", http.StatusServiceUnavailable)
	start := time.Now()
	if err := s.stop(t); err != nil {
		t.Errorf("run: got %v, want nil", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("stopping a never-ready replica took %v, want far less than its 30s drain", took)
	}
	if out := s.out.String(); !strings.Contains(out, `msg="shutting down" drain=0s why="never ready"`) {
		t.Errorf("log: got no shutting-down line with drain=0s why=\"never ready\":\n%s", out)
	}
}

// With no REDIS_URL the service runs on its own: an embedded Redis that
// redis-cli can inspect, and a demo user whose password is printed once.
func TestServeWithEmbeddedRedis(t *testing.T) {
	t.Parallel()
	s := startServer(t, env{})
	s.waitStatus(t, "/readyz", http.StatusOK)

	s.waitLog(t, "demo user created")
	demo := regexp.MustCompile(`demo user created: username "demo", password "([^"]+)"`).FindStringSubmatch(s.out.String())
	if demo == nil {
		t.Fatalf("stdout: no demo user line with a password")
	}
	password := demo[1]
	at := regexp.MustCompile(`no REDIS_URL: using embedded in-memory Redis at 127\.0\.0\.1:(\d+)`).FindStringSubmatch(s.out.String())
	if at == nil {
		t.Fatalf("log: no line telling where the embedded Redis listens")
	}
	port := at[1]

	login(t, s.base, "demo", password)
	if got := postLogin(t, testkit.Browser(t), s.base, "demo", password+"x"); got != http.StatusBadRequest {
		t.Errorf("login with a wrong demo password: got status %d, want 400", got)
	}

	keys := redisCLI(t, port, "--scan")
	var sessions []string
	for _, k := range strings.Fields(keys) {
		if strings.HasPrefix(k, "scs:session:") {
			sessions = append(sessions, k)
		}
	}
	if len(sessions) != 1 {
		t.Fatalf("redis-cli --scan: got session keys %q, want exactly one scs:session:... (all keys: %q)", sessions, keys)
	}
	doc := redisCLI(t, port, "GET", sessions[0])
	if !strings.Contains(doc, `"username":"demo"`) || !strings.Contains(doc, `"deadline":`) {
		t.Errorf("redis-cli GET %s: got %q, want a JSON session document for demo", sessions[0], doc)
	}
}

// redisCLI runs redis-cli against 127.0.0.1:port and returns its output.
func redisCLI(t *testing.T, port string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.WaitTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-cli", append([]string{"-h", "127.0.0.1", "-p", port}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// A replica that starts before Redis listens at once, stays alive but not
// ready, retries with growing pauses, and serves logins once Redis is up.
func TestServeWaitsForRedis(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	redis.Stop(t)
	s := startServer(t, bootstrapEnv(redis.URL()))

	s.waitStatus(t, "/healthz", http.StatusOK)
	if status, body := get(t, testkit.Browser(t), s.base+"/readyz"); status != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with Redis down: got status %d body %q, want 503", status, body)
	}
	retryIn := regexp.MustCompile(`msg="redis not reachable, retrying" attempt=\d+ retry_in=(\S+)`)
	testkit.Eventually(t, "three retry lines in the log", 0, func() (bool, string) {
		n := len(retryIn.FindAllString(s.out.String(), -1))
		return n >= 3, fmt.Sprintf("%d so far", n)
	})
	var pauses []time.Duration
	for _, m := range retryIn.FindAllStringSubmatch(s.out.String(), -1) {
		d, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatalf("retry_in=%s: %v", m[1], err)
		}
		pauses = append(pauses, d)
	}
	for i := 1; i < len(pauses); i++ {
		if pauses[i] <= pauses[i-1] && pauses[i] < 5*time.Second {
			t.Errorf("retry_in: got %v, want each pause longer than the one before (up to the cap)", pauses)
			break
		}
	}

	redis.Restart(t)
	s.waitStatus(t, "/readyz", http.StatusOK)
	s.waitLog(t, `msg="bootstrap user created" user=admin`)
	login(t, s.base, adminUser, adminPassword)
}

// Replicas that start together with the same BOOTSTRAP_USER create it
// exactly once, and the losing replica does not replace the password.
func TestServeReplicasBootstrapOnce(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	passwords := []string{"password-of-replica-a", "password-of-replica-b"}
	replicas := make([]*testServer, len(passwords))
	for i, p := range passwords {
		replicas[i] = startServer(t, env{"REDIS_URL": redis.URL(), "BOOTSTRAP_USER": adminUser, "BOOTSTRAP_PASSWORD": p})
	}

	outcome := regexp.MustCompile(`msg="bootstrap user (created|already exists)" user=admin`)
	winner, losers := -1, 0
	for i, s := range replicas {
		testkit.Eventually(t, fmt.Sprintf("replica %d logs the bootstrap outcome", i), 0, func() (bool, string) {
			s.failIfExited(t)
			return outcome.MatchString(s.out.String()), "not yet logged"
		})
		switch outcome.FindStringSubmatch(s.out.String())[1] {
		case "created":
			if winner >= 0 {
				t.Errorf("replicas %d and %d both logged bootstrap user created", winner, i)
			}
			winner = i
		default:
			losers++
		}
	}
	if winner < 0 || losers != len(replicas)-1 {
		t.Fatalf("got %d replica(s) creating the user and %d finding it, want exactly 1 and %d", len(replicas)-losers, losers, len(replicas)-1)
	}

	for i, s := range replicas {
		s.waitStatus(t, "/readyz", http.StatusOK)
		login(t, s.base, adminUser, passwords[winner])
		loser := passwords[1-winner]
		if got := postLogin(t, testkit.Browser(t), s.base, adminUser, loser); got != http.StatusBadRequest {
			t.Errorf("replica %d: login with the losing replica's password: got status %d, want 400", i, got)
		}
	}
}

// Ready means ready: a login sent the moment /readyz first answers 200
// succeeds, because readiness waits for the bootstrap user. (It used to
// be created 10-300 ms after that first 200, and such a login failed as
// a wrong password.) /readyz is asked as fast as a balancer could.
func TestReadyMeansTheBootstrapUserCanLogIn(t *testing.T) {
	t.Parallel()
	s := startServer(t, bootstrapEnv(redistest.Start(t).URL()))
	probe := testkit.Client(t, nil)
	deadline := time.Now().Add(testkit.WaitTimeout)
	for {
		s.failIfExited(t)
		resp, err := probe.Get(s.base + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 within %v", testkit.WaitTimeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if got := postLogin(t, testkit.Browser(t), s.base, adminUser, adminPassword); got != http.StatusSeeOther {
		t.Fatalf("POST /login/ as the bootstrap user right after the first 200 of /readyz: got %d, want %d", got, http.StatusSeeOther)
	}
}
