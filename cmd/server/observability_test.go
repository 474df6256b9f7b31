package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// By default (PPROF unset) the metrics listener serves /metrics and no
// profile: a CPU profile or trace is not for whoever reaches METRICS_ADDR,
// and the command line (a Redis password given as --redis-url) is never
// served.
func TestProfilesAreOffByDefault(t *testing.T) {
	t.Parallel()
	metricsAddr := testkit.FreeAddr(t)
	s := startServer(t, env{"REDIS_URL": redistest.Start(t).URL(), "METRICS_ADDR": metricsAddr})
	s.waitLog(t, "metrics listening")
	if !strings.Contains(s.out.String(), "pprof=off") {
		t.Errorf("start-up line lacks pprof=off:\n%s", s.out.String())
	}
	c := testkit.Client(t, nil)
	if status, _ := get(t, c, "http://"+metricsAddr+"/metrics"); status != http.StatusOK {
		t.Errorf("GET /metrics on METRICS_ADDR: got %d, want 200", status)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1", "/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=1"} {
		if status, _ := get(t, c, "http://"+metricsAddr+path); status != http.StatusNotFound {
			t.Errorf("GET %s on METRICS_ADDR with PPROF unset: got %d, want 404", path, status)
		}
	}
	if err := s.stop(t); err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
}

// With METRICS_ADDR, PPROF=on and LOG_FORMAT=json: /metrics and the
// profiles (never the command line) answer on the metrics address and not
// on the public one, the metrics count a
// login, and the log is JSON lines, one per request, with no password or
// token, down to the last line before run returns.
func TestServeMetricsAndJSONLogs(t *testing.T) {
	t.Parallel()
	const password = "a-bootstrap-password-for-metrics"
	metricsAddr := testkit.FreeAddr(t)
	s := startServer(t, env{
		"REDIS_URL": redistest.Start(t).URL(), "LOG_FORMAT": "json", "METRICS_ADDR": metricsAddr,
		"INSTANCE_ID": "replica-m", "BOOTSTRAP_USER": "alice", "BOOTSTRAP_PASSWORD": password, "PPROF": "on",
	})
	s.waitLog(t, `"msg":"bootstrap user created"`)

	b := testkit.Browser(t)
	res, err := b.PostForm(s.base+"/login/", url.Values{"username": {"alice"}, "password": {password}})
	if err != nil {
		t.Fatalf("POST /login/: %v", err)
	}
	_ = res.Body.Close()
	var token string
	for _, c := range res.Cookies() {
		if c.Name == "session_id" {
			token = c.Value
		}
	}
	if res.StatusCode != http.StatusSeeOther || token == "" {
		t.Fatalf("POST /login/: got %d with token %q, want 303 and a session cookie", res.StatusCode, token)
	}
	if status, _ := get(t, b, s.base+"/"); status != http.StatusOK {
		t.Fatalf("GET / logged in: got %d, want 200", status)
	}

	c := testkit.Client(t, nil)
	status, text := get(t, c, "http://"+metricsAddr+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics on METRICS_ADDR: got %d, want 200", status)
	}
	for _, want := range []string{
		`loginsvc_http_requests_total{route="POST /login/{$}",status="303"} 1`,
		`loginsvc_http_requests_total{route="GET /{$}",status="200"} 1`,
		`loginsvc_logins_total{result="success"} 1`,
		`loginsvc_sessions_started_total 1`,
		`loginsvc_replica_info{replica="replica-m"} 1`,
		// The login's scripts run whatever the session cache does (with
		// it live, the page view's read may never reach Redis).
		`loginsvc_redis_command_duration_seconds_count{command="evalsha"}`,
		`loginsvc_session_cache_live`,
		`loginsvc_redis_pool_conns`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if status, _ := get(t, c, "http://"+metricsAddr+"/debug/pprof/goroutine?debug=1"); status != http.StatusOK {
		t.Errorf("GET /debug/pprof/goroutine on METRICS_ADDR: got %d, want 200", status)
	}
	// The mutex profile samples contention, or it would always be empty.
	if status, text := get(t, c, "http://"+metricsAddr+"/debug/pprof/mutex?debug=1"); status != http.StatusOK ||
		!strings.Contains(text, fmt.Sprintf("sampling period=%d\n", mutexProfileFraction)) {
		t.Errorf("GET /debug/pprof/mutex?debug=1 with PPROF=on: got %d, want 200 with a sampling period of %d:\n%.300s", status, mutexProfileFraction, text)
	}
	if status, _ := get(t, c, "http://"+metricsAddr+"/debug/pprof/cmdline"); status != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/cmdline on METRICS_ADDR with PPROF=on: got %d, want 404", status)
	}
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/cmdline"} {
		if status, _ := get(t, c, s.base+path); status != http.StatusNotFound {
			t.Errorf("GET %s on the public address: got %d, want 404", path, status)
		}
	}

	if err := s.stop(t); err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
	out := s.out.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var requests int
	var last string
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("log line is not JSON: %q", l)
			continue
		}
		last, _ = rec["msg"].(string)
		if last != "request" {
			continue
		}
		requests++
		for _, k := range []string{"route", "status", "duration_ms", "replica", "request_id"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("request line lacks %q: %s", k, l)
			}
		}
	}
	if requests < 2 {
		t.Errorf("request lines: got %d, want one per request (at least 2)", requests)
	}
	if last != "stopped" {
		t.Errorf(`last log line: got msg %q, want "stopped" (a line lost at shutdown?)`, last)
	}
	for name, secret := range map[string]string{"password": password, "session token": token, "token hash": testkit.TokenHash(token)} {
		if strings.Contains(out, secret) {
			t.Errorf("the log shows the %s", name)
		}
	}
}

// A METRICS_ADDR the operator chose must work: taken, the server does not
// start, and says which variable to change.
func TestServeRefusesATakenMetricsAddr(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	vars := env{"REDIS_URL": redistest.Start(t).URL(), "DEVICE_COOKIE_KEY": testDeviceCookieKey, "ADDR": testkit.FreeAddr(t), "METRICS_ADDR": ln.Addr().String()}
	err = run(context.Background(), nil, vars.getenv, strings.NewReader(""), &testkit.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "METRICS_ADDR") {
		t.Fatalf("run with METRICS_ADDR taken: got %v, want an error naming METRICS_ADDR", err)
	}
}

// At LOG_LEVEL=info the health checks a balancer and compose send every
// few seconds leave no request line (they are logged at debug), while
// other requests still do and the checks still count in /metrics; at
// LOG_LEVEL=debug they are logged again.
func TestHealthChecksAreNotLoggedAtInfo(t *testing.T) {
	t.Parallel()
	for _, level := range []string{"info", "debug"} {
		t.Run(level, func(t *testing.T) {
			t.Parallel()
			metricsAddr := testkit.FreeAddr(t)
			s := startServer(t, env{"REDIS_URL": redistest.Start(t).URL(), "LOG_LEVEL": level, "METRICS_ADDR": metricsAddr})
			s.waitStatus(t, "/readyz", http.StatusOK)
			c := testkit.Client(t, nil)
			get(t, c, s.base+"/healthz")
			get(t, c, s.base+"/login/")
			s.waitLog(t, `path=/login/`)
			logs := s.out.String()
			for _, path := range []string{"/readyz", "/healthz"} {
				logged := strings.Contains(logs, "msg=request method=GET path="+path+" ")
				if want := level == "debug"; logged != want {
					t.Errorf("LOG_LEVEL=%s: request line of GET %s logged: got %v, want %v; log:\n%s", level, path, logged, want, logs)
				}
			}
			_, metrics := get(t, c, "http://"+metricsAddr+"/metrics")
			if !strings.Contains(metrics, `route="GET /readyz"`) {
				t.Errorf("LOG_LEVEL=%s: /metrics does not count GET /readyz", level)
			}
		})
	}
}
