package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/redistest"
)

// The same binary serves on one Redis, a Sentinel setup and a Cluster,
// changed only by REDIS_URL, says which in the start-up log, and the user
// commands work on each.
func TestServeOnEveryTopology(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		topology string
		url      func(t *testing.T) string
	}{
		{"standalone", func(t *testing.T) string { return redistest.Start(t).URL() }},
		{"sentinel", func(t *testing.T) string { return redistest.StartSentinel(t, 1, 1).URL() }},
		{"cluster", func(t *testing.T) string { return redistest.StartCluster(t, 3).URL() }},
	} {
		t.Run(tc.topology, func(t *testing.T) {
			t.Parallel()
			redisURL := tc.url(t)
			s, browser := startLoggedIn(t, redisURL)
			s.waitLog(t, `msg="redis topology" topology=`+tc.topology)

			mustUserCmd(t, redisURL, "a long passphrase for bob\n", "add", "bob")
			bob := login(t, s.base, "bob", "a long passphrase for bob")
			if out := mustSessionsCmd(t, redisURL, "count"); strings.TrimSpace(out) != "2" {
				t.Errorf("sessions count: got %q, want 2", out)
			}
			if out := mustUserCmd(t, redisURL, "", "delete", "bob"); !strings.Contains(out, "1 session") {
				t.Errorf("user delete bob: got %q, want it to say it ended 1 session", out)
			}
			// Another process (the CLI) ended it: with the session cache on
			// (the default where the topology has it), within its
			// invalidation delay.
			loggedOutWithin(t, bob, s, "bob", "user delete bob", time.Second)

			resp, err := browser.PostForm(s.base+"/logout/", url.Values{})
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("POST /logout/: got %d, want 303", resp.StatusCode)
			}
			if _, body := get(t, browser, s.base+"/"); strings.Contains(body, "Hello, "+adminUser) {
				t.Errorf("GET / after logout: still logged in")
			}
		})
	}
}
