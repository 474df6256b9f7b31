package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/redistest"
)

// cacheModes are the two SESSION_CACHE values and how long after a change
// made by another client (the CLI, another replica) the server may still
// serve the old session: not at all with the cache off, within the
// invalidation delay (milliseconds; a second here) with it on.
var cacheModes = []struct {
	value string
	delay time.Duration
}{{"off", 0}, {"on", time.Second}}

// startLoggedInCache is startLoggedIn with SESSION_CACHE=value ("on" is
// the default), after a few page views (with the cache on, the last ones
// come from memory).
func startLoggedInCache(t *testing.T, redisURL, value string) (*testServer, *http.Client) {
	t.Helper()
	var (
		s       *testServer
		browser *http.Client
	)
	if value == "on" {
		s, browser = startLoggedIn(t, redisURL)
	} else {
		vars := bootstrapEnv(redisURL)
		vars["SESSION_CACHE"] = value
		s = startServer(t, vars)
		s.waitStatus(t, "/readyz", http.StatusOK)
		s.waitLog(t, `msg="bootstrap user created" user=admin`)
		browser = login(t, s.base, adminUser, adminPassword)
	}
	for range 3 {
		if _, body := get(t, browser, s.base+"/"); !strings.Contains(body, "Hello, "+adminUser) {
			t.Fatalf("GET / after login: not logged in\n%s", body)
		}
	}
	return s, browser
}

// loggedOutWithin fails unless browser's GET / stops showing user
// logged in within delay (at once for 0).
func loggedOutWithin(t *testing.T, browser *http.Client, s *testServer, user, what string, delay time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		_, body := get(t, browser, s.base+"/")
		if !strings.Contains(body, "Hello, "+user) {
			return
		}
		if time.Since(start) > delay {
			t.Fatalf("GET / %v after %s: still logged in\n%s", time.Since(start), what, body)
		}
	}
}

// The start-up log says whether sessions are cached and, when not, why.
func TestServeSaysWhetherTheSessionCacheIsOn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		vars func(t *testing.T) env
		want string
	}{
		{"real Redis, default", func(t *testing.T) env { return env{"REDIS_URL": redistest.Start(t).URL()} },
			`msg="session cache on" max_age=2s`},
		{"SESSION_CACHE=off", func(t *testing.T) env {
			return env{"REDIS_URL": redistest.Start(t).URL(), "SESSION_CACHE": "off"}
		}, `msg="session cache off" reason="SESSION_CACHE=off"`},
		{"embedded Redis", func(t *testing.T) env { return env{} },
			`msg="session cache off" reason="the embedded Redis has no CLIENT TRACKING"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, tc.vars(t))
			s.waitStatus(t, "/readyz", http.StatusOK)
			s.waitLog(t, tc.want)
		})
	}
}
