package web

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"loginsvc/internal/redistest"
)

// BenchmarkLoggedInPageView measures a logged-in GET / end to end: HTTP,
// session load, render and, with the idle timeout on, the session save. It
// reports the Redis commands each page view costs, the figure the planned
// lazy idle touch is meant to bring down to one.
//
//	go test -run '^$' -bench LoggedInPageView ./internal/web
func BenchmarkLoggedInPageView(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []appOption
	}{
		{"idle_timeout_on", nil},
		{"idle_timeout_off", []appOption{withIdleTimeout(0)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rs := redistest.Start(b)
			ta := newTestApp(b, rs, bc.opts...)
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.PostForm(ta.url("/login/"), url.Values{"username": {aliceName}, "password": {alicePassword}})
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			var cookie *http.Cookie
			for _, c := range resp.Cookies() {
				if c.Name == testCookieName {
					cookie = c
				}
			}
			if resp.StatusCode != http.StatusSeeOther || cookie == nil {
				b.Fatalf("login: got %d and cookie %v, want 303 with a session cookie", resp.StatusCode, cookie)
			}

			get := func() {
				req, _ := http.NewRequest(http.MethodGet, ta.url("/"), nil)
				req.AddCookie(cookie)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "hello "+aliceName) {
					b.Fatalf("GET /: got %d, want 200 showing %s logged in", resp.StatusCode, aliceName)
				}
			}
			get() // warm the connection pools

			check := rs.Client(b)
			before := redisCalls(b, check)
			b.ResetTimer()
			for b.Loop() {
				get()
			}
			b.StopTimer()
			b.ReportMetric(float64(redisCalls(b, check)-before-1)/float64(b.N), "redis-cmds/op")
		})
	}
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
