package deploy

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// TestRedisClusterDrill runs the service on a real Redis Cluster of three
// primaries (REDIS_URL=redis+cluster://...), two replicas of the service
// addressed in turn: the login flow, the sessions page (sign out one, sign
// out the others), a password change, the login throttle and its unlock,
// `user delete`, and the operator CLI, whose `sessions list` and `count`
// must see the sessions of every primary. Users and sessions are asserted
// to be spread over all three, or the drill would prove nothing.
func TestRedisClusterDrill(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	redisURL := cl.URL()
	apps := startApps(t, redisURL, 2)
	app := func(i int) string { return apps[i%len(apps)].URL }

	const users, password = 9, "cluster-drill-only-password"
	names := make([]string, users)
	browsers := make([][2]*http.Client, users) // each user: one browser per replica
	for i := range names {
		names[i] = fmt.Sprintf("user-%02d", i)
		serverCLI(t, redisURL, password+"\n", "user", "add", names[i])
	}
	for i, name := range names {
		for j := range 2 {
			c := testkit.Browser(t)
			if status, _, _, err := tryGet(c, app(j)+"/login/", nil); err != nil || status != http.StatusOK {
				t.Fatalf("GET /login/: %d, %v", status, err)
			}
			postLogin(t, c, app(j), name, password, nil)
			wantLoggedIn(t, c, app(j+1), name) // the other replica knows the session
			browsers[i][j] = c
		}
	}
	sessions := cl.KeysPerPrimary(t, "scs:session:*")
	records := cl.KeysPerPrimary(t, "user:{*}")
	t.Logf("sessions per primary %v, user records per primary %v", sessions, records)
	for i := range cl.Primaries {
		if sessions[i] == 0 || records[i] == 0 {
			t.Fatalf("primary %s holds %d sessions and %d user records; want some of each on every primary", cl.Primaries[i].Addr(), sessions[i], records[i])
		}
	}

	t.Run("sessions page: sign out one, then the others", func(t *testing.T) {
		name, mine, other := names[0], browsers[0][0], browsers[0][1]
		third := testkit.Browser(t)
		postLogin(t, third, app(1), name, password, nil)
		rows := sessionsPage(t, mine, app(0))
		if len(rows) != 3 {
			t.Fatalf("sessions page of %s: %d rows, want 3", name, len(rows))
		}
		otherRows := sessionsPage(t, other, app(1))
		var otherID string
		for _, r := range otherRows {
			if r.current {
				otherID = r.id
			}
		}
		postForm(t, mine, app(0), "/sessions/"+otherID+"/revoke", url.Values{})
		wantLoggedOut(t, other, app(1), name)
		wantLoggedOut(t, other, app(0), name)
		wantLoggedIn(t, third, app(0), name)
		postForm(t, mine, app(1), "/sessions/revoke-others", url.Values{})
		wantLoggedOut(t, third, app(0), name)
		wantLoggedIn(t, mine, app(1), name)
		if rows := sessionsPage(t, mine, app(0)); len(rows) != 1 || !rows[0].current {
			t.Errorf("sessions page after signing out the others: %v, want only this device", rows)
		}
	})

	t.Run("password change ends the other session", func(t *testing.T) {
		name, mine, other := names[1], browsers[1][0], browsers[1][1]
		const newPassword = "cluster-drill-new-password"
		postForm(t, mine, app(0), "/password/", url.Values{
			"current_password": {password}, "new_password": {newPassword}, "confirm_password": {newPassword},
		})
		wantLoggedOut(t, other, app(1), name)
		wantLoggedIn(t, mine, app(1), name)
		if status := tryLogin(testkit.Browser(t), app(1), name, password); status == http.StatusSeeOther {
			t.Errorf("login with the old password: 303, want refused")
		}
		postLogin(t, testkit.Browser(t), app(1), name, newPassword, nil)
	})

	t.Run("throttle locks, unlock lifts it", func(t *testing.T) {
		name := names[2]
		statuses := map[int]int{}
		for i := range 10 {
			statuses[tryLogin(testkit.Browser(t), app(i), name, "wrong password "+strconv.Itoa(i))]++
		}
		if status := tryLogin(testkit.Browser(t), app(0), name, password); status != http.StatusTooManyRequests {
			t.Fatalf("login after 10 failures (%v): status %d, want 429", statuses, status)
		}
		serverCLI(t, redisURL, "", "user", "unlock", name)
		postLogin(t, testkit.Browser(t), app(1), name, password, nil)
	})

	t.Run("user delete ends the user's sessions", func(t *testing.T) {
		name := names[3]
		out := serverCLI(t, redisURL, "", "user", "delete", name)
		if !strings.Contains(out, "2 session") {
			t.Errorf("user delete %s: %q, want it to say 2 sessions ended", name, out)
		}
		wantLoggedOut(t, browsers[3][0], app(0), name)
		wantLoggedOut(t, browsers[3][1], app(1), name)
		if status := tryLogin(testkit.Browser(t), app(0), name, password); status == http.StatusSeeOther {
			t.Errorf("login as the deleted user: 303, want refused")
		}
	})

	t.Run("operator CLI sees every primary", func(t *testing.T) {
		perPrimary := cl.KeysPerPrimary(t, "scs:session:*")
		want := 0
		for _, n := range perPrimary {
			want += n
		}
		count := strings.TrimSpace(serverCLI(t, redisURL, "", "sessions", "count"))
		if count != strconv.Itoa(want) {
			t.Errorf("sessions count: %q, want %d (per primary %v)", count, want, perPrimary)
		}
		lines := strings.Split(strings.TrimSpace(serverCLI(t, redisURL, "", "sessions", "list", "--json")), "\n")
		if len(lines) != want {
			t.Errorf("sessions list --json: %d lines, want %d (per primary %v)", len(lines), want, perPrimary)
		}
		listed := map[string]bool{}
		for _, l := range lines {
			for _, name := range names {
				if strings.Contains(l, `"user":"`+name+`"`) {
					listed[name] = true
				}
			}
		}
		for i, name := range names {
			if i != 3 && !listed[name] { // names[3] was deleted
				t.Errorf("sessions list --json: no session of %s", name)
			}
		}
		byUser := serverCLI(t, redisURL, "", "sessions", "count", "--by-user")
		if !strings.Contains(byUser, names[8]) {
			t.Errorf("sessions count --by-user: %q, want %s in it", byUser, names[8])
		}
		t.Logf("sessions count %s over primaries %v", count, perPrimary)
	})
}
