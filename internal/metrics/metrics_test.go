package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func scrape(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return res.StatusCode, string(b)
}

// What the layers report shows in /metrics, by label; every login result
// and end reason is there from the start, at 0.
func TestMetricsShowWhatWasReported(t *testing.T) {
	t.Parallel()
	m := New("replica-1")
	_, before := scrape(t, m.Handler(false), "/metrics")
	for _, want := range []string{
		`loginsvc_logins_total{result="throttled"} 0`,
		`loginsvc_sessions_ended_total{reason="cap"} 0`,
		`loginsvc_replica_info{replica="replica-1"} 1`,
		"process_resident_memory_bytes",
		"go_goroutines",
	} {
		if !strings.Contains(before, want) {
			t.Errorf("fresh /metrics lacks %q", want)
		}
	}

	m.Request("GET /{$}", 200, 3*time.Millisecond)
	m.Request("GET /{$}", 200, time.Millisecond)
	m.Request("POST /login/{$}", 429, 90*time.Millisecond)
	m.Login(LoginSuccess)
	m.SessionStarted()
	m.SessionsEnded(EndRevoke, 3)
	if err := m.WatchCache(func() CacheCounters {
		return CacheCounters{Hits: 90, Misses: 10, Invalidations: 4, Flushes: 1, Bypassed: 7, Entries: 3, Live: true}
	}); err != nil {
		t.Fatalf("WatchCache: %v", err)
	}
	status, text := scrape(t, m.Handler(false), "/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: got %d, want 200", status)
	}
	for _, want := range []string{
		`loginsvc_http_requests_total{route="GET /{$}",status="200"} 2`,
		`loginsvc_http_requests_total{route="POST /login/{$}",status="429"} 1`,
		`loginsvc_http_request_duration_seconds_count{route="GET /{$}"} 2`,
		`loginsvc_http_request_duration_seconds_bucket{route="GET /{$}",le="0.0025"} 1`,
		`loginsvc_logins_total{result="success"} 1`,
		`loginsvc_sessions_started_total 1`,
		`loginsvc_sessions_ended_total{reason="revoke"} 3`,
		`loginsvc_session_cache_hits_total 90`,
		`loginsvc_session_cache_misses_total 10`,
		`loginsvc_session_cache_invalidations_total 4`,
		`loginsvc_session_cache_flushes_total 1`,
		`loginsvc_session_cache_bypassed_total 7`,
		`loginsvc_session_cache_entries 3`,
		`loginsvc_session_cache_live 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// The profiles are served beside /metrics only when asked for (and only
// there: the public handler is another one); the command line, which can
// hold a Redis password, never is.
func TestHandlerServesPprofOnlyWhenOn(t *testing.T) {
	t.Parallel()
	m := New("r")
	for _, tc := range []struct {
		profiles bool
		path     string
		want     int
	}{
		{true, "/debug/pprof/", http.StatusOK},
		{true, "/debug/pprof/goroutine?debug=1", http.StatusOK},
		{true, "/debug/pprof/symbol", http.StatusOK},
		{true, "/debug/pprof/cmdline", http.StatusNotFound},
		{false, "/debug/pprof/", http.StatusNotFound},
		{false, "/debug/pprof/goroutine?debug=1", http.StatusNotFound},
		{false, "/debug/pprof/profile?seconds=1", http.StatusNotFound},
		{false, "/debug/pprof/trace?seconds=1", http.StatusNotFound},
		{false, "/debug/pprof/cmdline", http.StatusNotFound},
		{false, "/metrics", http.StatusOK},
		{true, "/", http.StatusNotFound},
	} {
		if status, body := scrape(t, m.Handler(tc.profiles), tc.path); status != tc.want {
			t.Errorf("profiles %v, GET %s: got %d, want %d", tc.profiles, tc.path, status, tc.want)
		} else if strings.Contains(body, "-test.") {
			t.Errorf("profiles %v, GET %s: got a body with the command line: %q", tc.profiles, tc.path, body)
		}
	}
}

// Two Metrics in one process do not collide: nothing is registered
// process-wide.
func TestTwoMetricsInOneProcess(t *testing.T) {
	t.Parallel()
	a, b := New("a"), New("b")
	a.Login(LoginInvalid)
	if _, text := scrape(t, b.Handler(false), "/metrics"); !strings.Contains(text, `loginsvc_logins_total{result="invalid"} 0`) {
		t.Error("a login counted in one Metrics shows in another")
	}
}
