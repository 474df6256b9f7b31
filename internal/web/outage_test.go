package web

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// These tests stop or freeze Redis and measure how long answers take, so
// they do not call t.Parallel (see expiry_test.go).

// checkUnavailablePage fails unless p is the short human 503 page, with
// nothing of the Go error behind it and nothing of the page it replaces.
func checkUnavailablePage(t testing.TB, what string, p page) {
	t.Helper()
	if p.status != http.StatusServiceUnavailable {
		t.Fatalf("%s: got status %d, want 503; body:\n%s", what, p.status, p.body)
	}
	if !strings.Contains(p.body, "Temporarily unavailable") {
		t.Errorf("%s: got body without %q:\n%s", what, "Temporarily unavailable", p.body)
	}
	checkNoGoErrorText(t, what, p.body)
	lower := strings.ToLower(p.body)
	for _, leak := range []string{"i/o timeout", "127.0.0.1", "Hello", aliceName} {
		if strings.Contains(lower, leak) {
			t.Errorf("%s: got body containing %q, want no error detail or page content:\n%s", what, leak, p.body)
		}
	}
	if got := p.header.Values("Set-Cookie"); len(got) != 0 {
		t.Errorf("%s: got Set-Cookie %q, want none", what, got)
	}
}

func wantStatus(t *testing.T, what string, p page, want int) {
	t.Helper()
	if p.status != want {
		t.Fatalf("%s: got status %d, want %d; body:\n%s", what, p.status, want, p.body)
	}
}

func TestRedisStoppedAndRestarted(t *testing.T) {
	rs := redistest.Start(t, redistest.WithAOF())
	ta := newTestApp(t, rs)
	token := ta.login(t, newBrowser(t), false)
	ta.wantGreeting(t, token, "Hello, alice")

	rs.Stop(t)

	for _, tc := range []struct {
		name string
		send func() page
	}{
		{"GET / with a session", func() page { return replay(t, http.MethodGet, ta.url("/"), token) }},
		{"POST /login/", func() page { return ta.send(t, formPost("/login/", aliceForm(false))) }},
		{"POST /logout/", func() page { return replay(t, http.MethodPost, ta.url("/logout/"), token) }},
	} {
		start := time.Now()
		p := tc.send()
		t.Logf("Redis stopped: %s answered %d in %v", tc.name, p.status, time.Since(start).Round(time.Millisecond))
		checkUnavailablePage(t, "Redis stopped: "+tc.name, p)
	}
	wantStatus(t, "GET /healthz, Redis stopped", sendWithCookie(t, http.MethodGet, ta.url("/healthz"), ""), http.StatusOK)
	wantStatus(t, "GET /readyz, Redis stopped", sendWithCookie(t, http.MethodGet, ta.url("/readyz"), ""), http.StatusServiceUnavailable)
	// A page that needs no session still works.
	if p := sendWithCookie(t, http.MethodGet, ta.url("/"), ""); p.status != http.StatusOK || greeting(p.body) != "Hello" {
		t.Fatalf("GET / without a cookie, Redis stopped: got status %d, greeting %q; want 200, %q", p.status, greeting(p.body), "Hello")
	}

	rs.Restart(t)
	restarted := time.Now()

	// Ready again within 2s, and the very first page after that works
	// (no stale pooled connection fails it).
	for {
		p := sendWithCookie(t, http.MethodGet, ta.url("/readyz"), "")
		if p.status == http.StatusOK {
			break
		}
		if time.Since(restarted) > 2*time.Second {
			t.Fatalf("GET /readyz %v after Redis restarted: got status %d, want 200 within 2s", time.Since(restarted), p.status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("/readyz was 200 %v after Redis answered PING again", time.Since(restarted).Round(time.Millisecond))
	ta.wantGreeting(t, token, "Hello, alice")
}

func TestRedisFrozen(t *testing.T) {
	// The bound on a single answer: a hang, not a performance goal.
	const hang = 3 * time.Second
	rs := redistest.Start(t)
	ta := newTestApp(t, rs)
	token := ta.login(t, newBrowser(t), false)
	ta.wantGreeting(t, token, "Hello, alice")

	rs.Freeze(t)
	frozen := true
	t.Cleanup(func() {
		if frozen {
			rs.Thaw(t)
		}
	})

	for _, tc := range []struct {
		name   string
		method string
		path   string
		cookie string
		want   int
	}{
		{"GET / with a session", http.MethodGet, "/", testCookieName + "=" + token, http.StatusServiceUnavailable},
		{"GET /readyz", http.MethodGet, "/readyz", "", http.StatusServiceUnavailable},
		{"GET /healthz", http.MethodGet, "/healthz", "", http.StatusOK},
	} {
		start := time.Now()
		p := sendWithCookie(t, tc.method, ta.url(tc.path), tc.cookie)
		took := time.Since(start)
		t.Logf("Redis frozen: %s answered %d in %v", tc.name, p.status, took.Round(time.Millisecond))
		if tc.want == http.StatusServiceUnavailable && tc.path == "/" {
			checkUnavailablePage(t, "Redis frozen: "+tc.name, p)
		} else {
			wantStatus(t, "Redis frozen: "+tc.name, p, tc.want)
		}
		if took > hang {
			t.Errorf("Redis frozen: %s took %v, want an answer within %v", tc.name, took, hang)
		}
	}

	rs.Thaw(t)
	frozen = false
	thawed := time.Now()
	for {
		p := replay(t, http.MethodGet, ta.url("/"), token)
		if p.status == http.StatusOK {
			if got := greeting(p.body); got != "Hello, alice" {
				t.Fatalf("after Thaw: got greeting %q, want %q", got, "Hello, alice")
			}
			break
		}
		if time.Since(thawed) > testkit.WaitTimeout {
			t.Fatalf("after Thaw: GET / still answers %d after %v, want 200", p.status, testkit.WaitTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("after Thaw: GET / logged in again %v later", time.Since(thawed).Round(time.Millisecond))
}

// TestReadyzTellsTheReasonOnlyToTheLog: /readyz is reachable through the
// balancer, so its body says only "not ready"; why is in one warn line for
// the operator.
func TestReadyzTellsTheReasonOnlyToTheLog(t *testing.T) {
	rs := redistest.Start(t)
	ta := newTestApp(t, rs)
	rs.Stop(t)

	before := ta.logs.String()
	p := sendWithCookie(t, http.MethodGet, ta.url("/readyz"), "")
	if p.status != http.StatusServiceUnavailable || p.body != "not ready\n" {
		t.Fatalf("GET /readyz, Redis stopped: got status %d, body %q; want 503, %q", p.status, p.body, "not ready\n")
	}
	logged := strings.TrimPrefix(ta.logs.String(), before)
	var lines []string
	for _, line := range strings.Split(logged, "\n") {
		if strings.Contains(line, "msg=\"not ready\"") {
			lines = append(lines, line)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("GET /readyz, Redis stopped: got %d log lines with msg=\"not ready\", want 1; log:\n%s", len(lines), logged)
	}
	for _, want := range []string{"level=WARN", "reason=", "redis unavailable", "request_id="} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("GET /readyz, Redis stopped: got log line %q, want it to contain %q", lines[0], want)
		}
	}
}
