package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// BenchmarkLoggedInPageView measures a logged-in GET / end to end: HTTP,
// session load and render. It reports the Redis commands each page view
// costs: one (the read), idle timeout or not, since the idle deadline is
// refreshed at most once a minute rather than on every view; with the
// session cache on, next to none.
//
//	go test -run '^$' -bench LoggedInPageView ./internal/web
func BenchmarkLoggedInPageView(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []appOption
	}{
		{"idle_timeout_on", nil},
		{"idle_timeout_off", []appOption{withIdleTimeout(0)}},
		{"session_cache_on", []appOption{withSessionCache()}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ta := newTestApp(b, redistest.Start(b), bc.opts...)
			token := ta.login(b, newBrowser(b), false)
			// One client, so that page views reuse their connection.
			client := testkit.Client(b, nil)
			get := func() {
				req := newRequest(b, http.MethodGet, ta.url("/"), nil)
				req.Header.Set("Cookie", testCookieName+"="+token)
				p := doRequest(b, client, req)
				if p.status != http.StatusOK || greeting(p.body) != "Hello, "+aliceName {
					b.Fatalf("GET /: got %d, greeting %q; want 200 showing %s logged in", p.status, greeting(p.body), aliceName)
				}
			}
			get() // warm the connection pools

			before := redisCalls(b, ta.check)
			b.ResetTimer()
			for b.Loop() {
				get()
			}
			b.StopTimer()
			b.ReportMetric(float64(redisCalls(b, ta.check)-before-1)/float64(b.N), "redis-cmds/op")
		})
	}
}

// BenchmarkForwardAuthVerify measures GET /auth/verify, the request a
// proxy makes before every request to an app it protects, with a cookie
// and with a bearer token. It reports the Redis commands each verify
// costs: one read, as a page view, since the idle deadline is extended at
// most once a minute.
//
//	go test -run '^$' -bench ForwardAuthVerify ./internal/web
func BenchmarkForwardAuthVerify(b *testing.B) {
	for _, bc := range []struct {
		name   string
		header func(token string) (string, string)
		token  func(ta *testApp) string
		opts   []appOption
	}{
		{"cookie", func(token string) (string, string) { return "Cookie", testCookieName + "=" + token },
			func(ta *testApp) string { return ta.login(b, newBrowser(b), false) }, nil},
		{"bearer", func(token string) (string, string) { return "Authorization", "Bearer " + token },
			func(ta *testApp) string { return ta.apiLoginB(b) }, nil},
		{"cookie_cache_on", func(token string) (string, string) { return "Cookie", testCookieName + "=" + token },
			func(ta *testApp) string { return ta.login(b, newBrowser(b), false) }, []appOption{withSessionCache()}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ta := newTestApp(b, redistest.Start(b), bc.opts...)
			k, v := bc.header(bc.token(ta))
			client := testkit.Client(b, nil)
			verify := func() {
				req := newRequest(b, http.MethodGet, ta.url("/auth/verify"), nil)
				req.Header.Set(k, v)
				p := doRequest(b, client, req)
				if p.status != http.StatusOK || p.header.Get("Remote-User") != aliceName {
					b.Fatalf("GET /auth/verify: got %d, Remote-User %q; want 200 naming %s", p.status, p.header.Get("Remote-User"), aliceName)
				}
			}
			verify()

			before := redisCalls(b, ta.check)
			b.ResetTimer()
			for b.Loop() {
				verify()
			}
			b.StopTimer()
			b.ReportMetric(float64(redisCalls(b, ta.check)-before-1)/float64(b.N), "redis-cmds/op")
		})
	}
}

// apiLoginB is apiLogin for a benchmark.
func (ta *testApp) apiLoginB(b *testing.B) string {
	b.Helper()
	req := newRequest(b, http.MethodPost, ta.url("/api/login"), nil)
	req.Body = io.NopCloser(strings.NewReader(aliceJSON("")))
	req.Header.Set("Content-Type", "application/json")
	p := doRequest(b, ta.client, req)
	var got apiLoginResponse
	if err := json.Unmarshal([]byte(p.body), &got); err != nil || got.Token == "" {
		b.Fatalf("POST /api/login: got %d %s", p.status, p.body)
	}
	return got.Token
}

// redisCalls is the number of commands the server has run so far (the INFO
// call that reads it counts itself, hence the -1 above).
func redisCalls(b *testing.B, check *redis.Client) int64 {
	b.Helper()
	info, err := check.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		_, rest, ok := strings.Cut(line, ":calls=")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		total += n
	}
	return total
}
