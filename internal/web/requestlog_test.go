package web

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"loginsvc/internal/auth"
	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// requestLines returns the request log's lines (msg=request).
func requestLines(logs string) []string {
	var lines []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "msg=request ") {
			lines = append(lines, l)
		}
	}
	return lines
}

// requestLineOf returns the request log line of request id, or fails.
func requestLineOf(t *testing.T, logs, id string) string {
	t.Helper()
	var found []string
	for _, l := range requestLines(logs) {
		if strings.Contains(l, " request_id="+id) {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("request log lines of request id %s: got %d, want 1; log:\n%s", id, len(found), logs)
	}
	return found[0]
}

// Every request is one log line naming the route pattern that served it,
// its status, duration, replica and request id; a login's line (and every
// other) holds neither the password, nor the session token, nor a cookie.
func TestRequestLogLineOfEachRequest(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t), withInstanceID("replica-7"))
	b := newBrowser(t)

	login := newRequest(t, http.MethodPost, ta.url("/login/"), aliceForm(false))
	login.Header.Set("X-Request-Id", "lb-trace.42_a-b")
	p := b.do(login)
	if p.status != http.StatusSeeOther {
		t.Fatalf("POST /login/: got %d, want 303", p.status)
	}
	if got := p.header.Get("X-Request-Id"); got != "lb-trace.42_a-b" {
		t.Errorf("X-Request-Id of the login: got %q, want the incoming lb-trace.42_a-b kept", got)
	}
	token := ta.sessionCookie(p).Value

	sessions := b.get(ta.url("/sessions/"))
	missing := b.get(ta.url("/no/such/page"))
	line := requestLineOf(t, ta.logs.String(), "lb-trace.42_a-b")
	for _, tc := range []struct {
		what, line, route, status string
	}{
		{"login", line, `"POST /login/{$}"`, "303"},
		{"sessions page", requestLineOf(t, ta.logs.String(), sessions.header.Get("X-Request-Id")), `"GET /sessions/{$}"`, "200"},
		{"unknown page", requestLineOf(t, ta.logs.String(), missing.header.Get("X-Request-Id")), "/", "404"},
	} {
		for _, want := range []string{"method=", "path=", "route=" + tc.route + " ", "status=" + tc.status + " ", "duration_ms=", "replica=replica-7 "} {
			if !strings.Contains(tc.line, want) {
				t.Errorf("%s: request log line lacks %q:\n%s", tc.what, want, tc.line)
			}
		}
	}

	logs := ta.logs.String()
	for name, secret := range map[string]string{"password": alicePassword, "session token": token, "session key hash": testkit.TokenHash(token)} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log shows the %s %q:\n%s", name, secret, logs)
		}
	}
}

// An incoming X-Request-Id is kept only when it has a sane shape; anything
// else (too long, spaces, a forged log line) gets a fresh id.
func TestRequestIDKeptOnlyWhenSane(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	generated := regexp.MustCompile(`^[0-9a-f]{16}$`)
	for _, tc := range []struct {
		incoming string
		kept     bool
	}{
		{"abc-123", true},
		{"A.b_C-9", true},
		{strings.Repeat("x", 64), true},
		{"", false},
		{strings.Repeat("x", 65), false},
		{"two words", false},
		{"id\" msg=forged", false},
		{"ünïcode", false},
	} {
		req := newRequest(t, http.MethodGet, ta.url("/healthz"), nil)
		if tc.incoming != "" {
			req.Header.Set("X-Request-Id", tc.incoming)
		}
		got := doRequest(t, ta.client, req).header.Get("X-Request-Id")
		switch {
		case tc.kept && got != tc.incoming:
			t.Errorf("X-Request-Id %q: answered %q, want it kept", tc.incoming, got)
		case !tc.kept && !generated.MatchString(got):
			t.Errorf("X-Request-Id %q: answered %q, want a fresh 16-hex-digit id", tc.incoming, got)
		}
	}
}

// fakeObserver records what the HTTP layer and the session manager report.
type fakeObserver struct {
	mu       sync.Mutex
	requests []string // "route status"
	logins   []string
	started  int
	ended    map[string]int
}

func (o *fakeObserver) Request(route string, status int, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.requests = append(o.requests, route+" "+http.StatusText(status))
}

func (o *fakeObserver) Login(result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.logins = append(o.logins, result)
}

func (o *fakeObserver) SecondStep(method, result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.logins = append(o.logins, "second:"+method+":"+result)
}

func (o *fakeObserver) SessionStarted() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.started++
}

func (o *fakeObserver) SessionsEnded(reason string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ended == nil {
		o.ended = map[string]int{}
	}
	o.ended[reason] += n
}

func (o *fakeObserver) snapshot() (requests, logins []string, started int, ended map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e := map[string]int{}
	for k, v := range o.ended {
		e[k] = v
	}
	return slices.Clone(o.requests), slices.Clone(o.logins), o.started, e
}

// The metrics hear of every request by route, every login by result and
// every session started and ended by reason.
func TestObserverHearsRequestsLoginsAndSessions(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	obs := &fakeObserver{}
	ta := newTestApp(t, rs, withObserver(obs, obs), withMaxSessions(2),
		withLimits(auth.Limits{PerUser: 2, PerIP: 50, Window: time.Minute}))

	// Three logins with a cap of two: the first session ends by the cap.
	var browsers []*browser
	for range 3 {
		b := newBrowser(t)
		ta.login(t, b, false)
		browsers = append(browsers, b)
	}
	// The newest revokes the other remaining one, then logs out.
	last := browsers[2]
	p := last.post(ta.url("/sessions/revoke-others"), nil)
	if p.status != http.StatusSeeOther {
		t.Fatalf("POST /sessions/revoke-others: got %d, want 303", p.status)
	}
	if p := last.post(ta.url("/logout/"), nil); p.status != http.StatusSeeOther {
		t.Fatalf("POST /logout/: got %d, want 303", p.status)
	}
	wrong := url.Values{"username": {aliceName}, "password": {"not-the-password"}}
	for _, want := range []int{http.StatusBadRequest, http.StatusBadRequest, http.StatusTooManyRequests} {
		if p := newBrowser(t).post(ta.url("/login/"), wrong); p.status != want {
			t.Fatalf("wrong password: got %d, want %d", p.status, want)
		}
	}
	rs.Stop(t)
	if p := newBrowser(t).post(ta.url("/login/"), aliceForm(false)); p.status != http.StatusServiceUnavailable {
		t.Fatalf("login with Redis stopped: got %d, want 503", p.status)
	}

	requests, logins, started, ended := obs.snapshot()
	wantLogins := []string{LoginSuccess, LoginSuccess, LoginSuccess, LoginInvalid, LoginInvalid, LoginThrottled, LoginUnavailable}
	if !slices.Equal(logins, wantLogins) {
		t.Errorf("logins: got %q, want %q", logins, wantLogins)
	}
	if started != 3 {
		t.Errorf("sessions started: got %d, want 3", started)
	}
	wantEnded := map[string]int{"cap": 1, "revoke": 1, "logout": 1}
	for reason, n := range wantEnded {
		if ended[reason] != n {
			t.Errorf("sessions ended by %s: got %d, want %d (all: %v)", reason, ended[reason], n, ended)
		}
	}
	for _, want := range []string{"POST /login/{$} See Other", "POST /sessions/revoke-others See Other", "POST /logout/{$} See Other", "POST /login/{$} Too Many Requests", "POST /login/{$} Service Unavailable"} {
		if !slices.Contains(requests, want) {
			t.Errorf("requests observed lack %q: %q", want, requests)
		}
	}
}
