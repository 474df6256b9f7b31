package deploy

// The failover drills' load: page views, forward-auth checks, API whoami
// and logins, spread over every replica of the service, each request
// timed and judged, bounded in count and time. The drills in
// sentinel_test.go and redis_cluster_test.go start it, fail Redis over,
// and print what it saw (issue 18: no failed request in a failover).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"loginsvc/internal/testkit"
)

const (
	// failoverLoadMax bounds the requests of one drill's load, whatever
	// the time it runs.
	failoverLoadMax = 40_000
	// failoverLoginsMax bounds its logins: each is an argon2id hash on a
	// shared machine, and LOGIN_MAX_ATTEMPTS_PER_IP (300) counts them.
	failoverLoginsMax = 150
)

// apiUser is a bearer token of an API session and its user.
type apiUser struct {
	token, user string
}

// failoverSample is one request of the load.
type failoverSample struct {
	kind    string
	start   time.Time
	took    time.Duration
	failure string // "": it succeeded
}

// madeSession is a session a login of the load was told it has.
type madeSession struct {
	cookie, user string
}

// failoverLoad is a running mixed load; stop it once.
type failoverLoad struct {
	bases    []string
	users    []loadUser
	apis     []apiUser
	names    []string
	password string

	mu      sync.Mutex
	samples []failoverSample
	made    []madeSession
	quit    chan struct{}
	wg      sync.WaitGroup
}

// apiLogin logs name in through POST /api/login and returns its token.
func apiLogin(t testing.TB, base, name, password string) apiUser {
	t.Helper()
	body := fmt.Sprintf(`{"username":%q,"password":%q}`, name, password)
	req, err := http.NewRequest(http.MethodPost, base+"/api/login", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := testkit.Client(t, nil).Do(req)
	if err != nil {
		t.Fatalf("POST %s/api/login as %s: %v", base, name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var tok struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&tok) != nil || tok.Token == "" {
		t.Fatalf("POST %s/api/login as %s: status %d, no token", base, name, resp.StatusCode)
	}
	return apiUser{token: tok.Token, user: name}
}

// startFailoverLoad starts, against bases in turn: two workers of page
// views, one of /auth/verify checks and one of /api/whoami, each with
// the sessions given, and one of logins as names (all with password).
func startFailoverLoad(t *testing.T, bases []string, users []loadUser, apis []apiUser, names []string, password string) *failoverLoad {
	l := &failoverLoad{bases: bases, users: users, apis: apis, names: names, password: password, quit: make(chan struct{})}
	client := testkit.Client(t, nil)
	run := func(pause time.Duration, one func(i int) (string, string)) {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.quit:
					return
				default:
				}
				start := time.Now()
				kind, failure := one(i)
				l.mu.Lock()
				l.samples = append(l.samples, failoverSample{kind: kind, start: start, took: time.Since(start), failure: failure})
				n := len(l.samples)
				l.mu.Unlock()
				if n >= failoverLoadMax {
					return
				}
				time.Sleep(pause)
			}
		})
	}
	for w := range 2 {
		run(5*time.Millisecond, func(i int) (string, string) {
			_, failure := loggedInGet(users[(i*2+w)%len(users)], bases[(i+w)%len(bases)])
			return "page", failure
		})
	}
	run(5*time.Millisecond, func(i int) (string, string) {
		u := users[i%len(users)]
		status, by, body, err := tryGet(u.client, bases[i%len(bases)]+"/auth/verify", nil)
		switch {
		case err != nil:
			return "verify", "transport error: " + err.Error()
		case status != http.StatusOK:
			return "verify", fmt.Sprintf("status %d from %q: %s", status, by, firstLine(body))
		}
		return "verify", ""
	})
	run(5*time.Millisecond, func(i int) (string, string) {
		a := apis[i%len(apis)]
		status, by, body, err := tryGet(client, bases[(i+1)%len(bases)]+"/api/whoami", http.Header{"Authorization": {"Bearer " + a.token}})
		switch {
		case err != nil:
			return "whoami", "transport error: " + err.Error()
		case status != http.StatusOK || !strings.Contains(body, `"`+a.user+`"`):
			return "whoami", fmt.Sprintf("status %d from %q without %q: %s", status, by, a.user, firstLine(body))
		}
		return "whoami", ""
	})
	logins := 0
	run(100*time.Millisecond, func(i int) (string, string) {
		if logins >= failoverLoginsMax {
			return "", ""
		}
		logins++
		name := names[i%len(names)]
		base := bases[i%len(bases)]
		form := url.Values{"username": {name}, "password": {password}}
		req, _ := http.NewRequest(http.MethodPost, base+"/login/", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := client.Do(req)
		if err != nil {
			return "login", "transport error: " + err.Error()
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			return "login", fmt.Sprintf("status %d from %q", resp.StatusCode, resp.Header.Get("X-Served-By"))
		}
		for _, ck := range resp.Cookies() {
			if ck.Name == sessionCookie && ck.Value != "" {
				l.mu.Lock()
				l.made = append(l.made, madeSession{cookie: ck.Value, user: name})
				l.mu.Unlock()
				return "login", ""
			}
		}
		return "login", "303 without a session cookie"
	})
	t.Cleanup(l.stop)
	return l
}

// stop ends the load and waits for its requests in flight.
func (l *failoverLoad) stop() {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	l.wg.Wait()
}

// failoverReport is what a drill prints and asserts.
type failoverReport struct {
	all    failoverFigures
	kinds  map[string]*failoverFigures
	failed []string
	apps   []*replica // whose warnings and errors a failure prints
}

// failoverFigures are one kind's (or all kinds') requests, failures and
// latencies in the failover window.
type failoverFigures struct {
	requests, failed int
	inWindow         int
	p50, p99, max    time.Duration
	window           []time.Duration
}

func (f *failoverFigures) add(s failoverSample, from time.Time) {
	f.requests++
	if s.failure != "" {
		f.failed++
	}
	// In the window: every request that had not ended when Redis failed,
	// so one in flight at the failure, which waited longest, counts.
	if s.start.Add(s.took).After(from) {
		f.window = append(f.window, s.took)
	}
}

func (f *failoverFigures) settle() {
	slices.Sort(f.window)
	f.inWindow = len(f.window)
	if n := len(f.window); n > 0 {
		f.p50, f.p99, f.max = f.window[n/2], f.window[min(n-1, n*99/100)], f.window[n-1]
	}
}

func (f *failoverFigures) String() string {
	return fmt.Sprintf("%d requests, failed %d; failover window: %d requests, p50 %v, p99 %v, max %v",
		f.requests, f.failed, f.inWindow, f.p50.Round(time.Millisecond), f.p99.Round(time.Millisecond), f.max.Round(time.Millisecond))
}

// report judges the samples; the failover window is from the failure of
// Redis to the end of the load, and holds the requests still in flight
// at the failure.
func (l *failoverLoad) report(from time.Time, apps []*replica) failoverReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := failoverReport{kinds: map[string]*failoverFigures{}, apps: apps}
	for _, s := range l.samples {
		if s.kind == "" {
			continue
		}
		k := r.kinds[s.kind]
		if k == nil {
			k = &failoverFigures{}
			r.kinds[s.kind] = k
		}
		k.add(s, from)
		r.all.add(s, from)
		if s.failure != "" {
			r.failed = append(r.failed, fmt.Sprintf("%s %s at +%v after %v: %s", s.kind, s.start.Format("15:04:05.000"),
				s.start.Sub(from).Round(time.Millisecond), s.took.Round(time.Millisecond), s.failure))
		}
	}
	r.all.settle()
	for _, k := range r.kinds {
		k.settle()
	}
	return r
}

// madeSessions returns the sessions the load's logins were given.
func (l *failoverLoad) madeSessions() []madeSession {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.made)
}

// check prints the drill's figures, in all and per kind of request, and
// fails the test on any failed request: a user would have seen it.
// Latencies are printed, not asserted: they depend on the machine.
func (r failoverReport) check(t *testing.T, drill string, promotion time.Duration) {
	t.Helper()
	kinds := make([]string, 0, len(r.kinds))
	for k := range r.kinds {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	lines := []string{fmt.Sprintf("%s: promotion after %.2fs; all: %v", drill, promotion.Seconds(), &r.all)}
	for _, k := range kinds {
		lines = append(lines, fmt.Sprintf("  %-7s %v", k+":", r.kinds[k]))
	}
	t.Log(strings.Join(lines, "\n"))
	if len(r.failed) > 0 {
		for _, a := range r.apps {
			for _, line := range strings.Split(a.Log(t), "\n") {
				if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
					t.Logf("%s: %s", a.ID, line)
				}
			}
		}
		t.Errorf("%s: %d of %d requests failed; first ones:\n%s", drill, len(r.failed), r.all.requests, strings.Join(r.failed[:min(len(r.failed), 10)], "\n"))
	}
	if r.all.max > promotion+time.Second {
		t.Logf("%s: the slowest request (%v) took longer than the promotion plus a second (%v)", drill, r.all.max.Round(time.Millisecond), (promotion + time.Second).Round(time.Millisecond))
	}
}

// checkKept requires every session of users, apis and the load's logins to
// be live on every base, and every cookie of ended to be logged out.
func checkKept(t *testing.T, bases []string, users []loadUser, apis []apiUser, made []madeSession, ended []*http.Client, endedWho []string) {
	t.Helper()
	client := testkit.Client(t, nil)
	for i, u := range users {
		for _, base := range bases {
			if _, failure := loggedInGet(u, base); failure != "" {
				t.Errorf("session %d of %s after the failover at %s: %s", i, u.user, base, failure)
			}
		}
	}
	for _, a := range apis {
		status, _, body, err := tryGet(client, bases[0]+"/api/whoami", http.Header{"Authorization": {"Bearer " + a.token}})
		if err != nil || status != http.StatusOK || !strings.Contains(body, `"`+a.user+`"`) {
			t.Errorf("API token of %s after the failover: status %d, %v", a.user, status, err)
		}
	}
	lost := 0
	for _, m := range made {
		if _, failure := loggedInGet(loadUser{client: cookieClient(t, m.cookie), user: m.user}, bases[0]); failure != "" {
			lost++
			if lost <= 5 {
				t.Errorf("a session a login of the load was given is gone after the failover (%s): %s", m.user, failure)
			}
		}
	}
	for i, c := range ended {
		status, _, body, err := tryGet(c, bases[i%len(bases)]+"/", nil)
		if err != nil || status != http.StatusOK || strings.Contains(body, "Hello, "+endedWho[i]) {
			t.Errorf("a logout acknowledged before the failover came back: %s's old cookie, GET / %d, %v", endedWho[i], status, err)
		}
	}
	t.Logf("kept: %d browser sessions, %d API tokens, %d of %d sessions made by logins under load; %d logouts stayed logged out",
		len(users), len(apis), len(made)-lost, len(made), len(ended))
}
