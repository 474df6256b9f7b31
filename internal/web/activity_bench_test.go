package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"loginsvc/internal/auth"
	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// BenchmarkEventsOnTheRequestPath measures, end to end over HTTP with the
// activity log's writer running as in the server, a form login (POST
// /login/: the password step, the session's start and its sign_in event,
// each login a distinct user's first from this browser, so a "new device")
// and GET /auth/verify, which records nothing. It reports the Redis
// commands each request issues (request-cmds/op: every command but XADD,
// which only the writer sends) and the XADDs the writer sent for it once
// its queue drained (xadd/op): two per login (the user's stream and the
// service-wide one), none per verify. BenchmarkLoginEvents in
// internal/auth compares the login with the activity log off.
//
//	go test -run '^$' -bench EventsOnTheRequestPath -benchmem ./internal/web
func BenchmarkEventsOnTheRequestPath(b *testing.B) {
	// Every login comes from the one test client's address: its budget of
	// attempts (300 per 15 minutes by default) is not what is measured.
	ta := newTestApp(b, redistest.Start(b), withLimits(auth.Limits{AttemptsPerIP: 100_000}))
	ta.be.Activity.Start() // as serve.go does: events leave the request
	client := testkit.Client(b, nil)
	hash, err := aliceHash()
	if err != nil {
		b.Fatal(err)
	}

	run := 0 // names each run's users apart
	b.Run("form_login", func(b *testing.B) {
		const users = 1000
		run++
		names := make([]string, users)
		for i := range names {
			names[i] = "bench" + strconv.Itoa(run) + "u" + strconv.Itoa(i)
			if err := ta.rdb.Users.Create(context.Background(), names[i], hash); err != nil {
				b.Fatalf("create %s: %v", names[i], err)
			}
		}
		// The device summary's parser is built at its first use: not a
		// login's cost.
		ta.be.Sessions.DescribeUserAgent(testUserAgent)
		before := testkit.CommandCalls(b, ta.check)
		n := 0
		for b.Loop() {
			if n == users {
				b.Fatalf("more than %d logins: run with a -benchtime of at most %dx", users, users)
			}
			form := url.Values{"username": {names[n]}, "password": {alicePassword}}
			p := doRequest(b, client, newRequest(b, http.MethodPost, ta.url("/login/"), form))
			if p.status != http.StatusSeeOther || p.cookie == nil {
				b.Fatalf("POST /login/ as %s: got %d, cookie %v; want 303 with a session cookie", names[n], p.status, p.cookie)
			}
			n++
		}
		var calls testkit.Calls
		testkit.Eventually(b, "the writer done with every sign-in", 0, func() (bool, string) {
			calls = testkit.CommandCalls(b, ta.check).Since(before)
			return calls["xadd"] == int64(2*n), fmt.Sprintf("%d XADDs for %d logins", calls["xadd"], n)
		})
		b.ReportMetric(float64(calls.Total("xadd"))/float64(n), "request-cmds/op")
		b.ReportMetric(float64(calls["xadd"])/float64(n), "xadd/op")
		b.ReportMetric(float64(ta.be.Activity.Dropped())/float64(n), "events-lost/op")
		b.Logf("%d logins: commands %v", n, calls)
	})

	b.Run("verify", func(b *testing.B) {
		token := ta.login(b, newBrowser(b), false)
		verify := func() {
			req := newRequest(b, http.MethodGet, ta.url("/auth/verify"), nil)
			req.Header.Set("Cookie", testCookieName+"="+token)
			p := doRequest(b, client, req)
			if p.status != http.StatusOK || p.header.Get("Remote-User") != aliceName {
				b.Fatalf("GET /auth/verify: got %d, Remote-User %q; want 200 naming %s", p.status, p.header.Get("Remote-User"), aliceName)
			}
		}
		verify()
		// The login's own events written, so that what follows is the
		// verifies' alone.
		testkit.Eventually(b, "the login's events written", 0, func() (bool, string) {
			// The service-wide stream's XADD is the writer's second.
			n, err := ta.check.XLen(context.Background(), "events").Result()
			return err == nil && n > 0, fmt.Sprintf("XLEN %d, %v", n, err)
		})
		before := testkit.CommandCalls(b, ta.check)
		n := 0
		for b.Loop() {
			verify()
			n++
		}
		calls := testkit.CommandCalls(b, ta.check).Since(before)
		if calls["xadd"] != 0 {
			b.Errorf("%d verifies: got %d XADDs, want none (a verify records no event)", n, calls["xadd"])
		}
		b.ReportMetric(float64(calls.Total("xadd"))/float64(n), "request-cmds/op")
		b.ReportMetric(float64(calls["xadd"])/float64(n), "xadd/op")
		b.Logf("%d verifies: commands %v", n, calls)
	})
}
