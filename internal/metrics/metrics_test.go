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
	_, before := scrape(t, m.Handler(), "/metrics")
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
	status, text := scrape(t, m.Handler(), "/metrics")
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

// The profiles are served beside /metrics (and only there: the public
// handler is another one).
func TestHandlerServesPprof(t *testing.T) {
	t.Parallel()
	m := New("r")
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		if status, _ := scrape(t, m.Handler(), path); status != http.StatusOK {
			t.Errorf("GET %s: got %d, want 200", path, status)
		}
	}
	if status, _ := scrape(t, m.Handler(), "/"); status != http.StatusNotFound {
		t.Errorf("GET /: got %d, want 404", status)
	}
}

// Two Metrics in one process do not collide: nothing is registered
// process-wide.
func TestTwoMetricsInOneProcess(t *testing.T) {
	t.Parallel()
	a, b := New("a"), New("b")
	a.Login(LoginInvalid)
	if _, text := scrape(t, b.Handler(), "/metrics"); !strings.Contains(text, `loginsvc_logins_total{result="invalid"} 0`) {
		t.Error("a login counted in one Metrics shows in another")
	}
}
