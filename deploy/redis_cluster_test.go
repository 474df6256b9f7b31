package deploy

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

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

// TestClusterFailoverDrill runs two replicas of the service on a Redis
// Cluster of three primaries with one replica each (cluster-node-timeout
// 2s) under the mixed load of the Sentinel drills, and fails over the
// primary that holds the logged-in users' records and session indexes:
// first with kill -9 (its replica is elected), then with a planned
// CLUSTER FAILOVER run on the replica that took the slots over when a
// replica of it exists again (the killed node is restarted and rejoins as
// its replica). No request may fail; every session and acknowledged
// logout is kept; the figures are printed per failover.
func TestClusterFailoverDrill(t *testing.T) {
	t.Parallel()
	cl := redistest.StartClusterWithReplicas(t, 3, 1)
	redisURL := cl.URL()
	apps := startApps(t, redisURL, 2)
	bases := []string{apps[0].URL, apps[1].URL}
	app := func(i int) string { return bases[i%len(bases)] }

	// Users whose records share one primary: the one to fail.
	const password = "cluster-failover-drill-only-password"
	byPrimary := map[int][]string{}
	for i := 0; len(byPrimary[0]) < 3 && i < 60; i++ {
		name := fmt.Sprintf("user-%02d", i)
		counts := func() []int { return cl.KeysPerPrimary(t, "user:{"+name+"}") }
		serverCLI(t, redisURL, password+"\n", "user", "add", name)
		for p, n := range counts() {
			if n > 0 {
				byPrimary[p] = append(byPrimary[p], name)
			}
		}
	}
	names := byPrimary[0]
	if len(names) < 3 {
		t.Fatalf("no 3 users of 60 on primary %s: %v", cl.Primaries[0].Addr(), byPrimary)
	}
	victim := cl.Primaries[0]
	var kept []loadUser
	var apis []apiUser
	for i, name := range names {
		for j := range 2 {
			c := testkit.Browser(t)
			postLogin(t, c, app(i+j), name, password, nil)
			kept = append(kept, loadUser{client: c, user: name})
		}
		apis = append(apis, apiLogin(t, app(i), name, password))
	}

	failover := func(drill string, fail func() *redistest.Server) {
		var toEnd []*http.Client
		var endedWho []string
		for i, name := range names {
			c := testkit.Browser(t)
			postLogin(t, c, app(i), name, password, nil)
			toEnd = append(toEnd, c)
			endedWho = append(endedWho, name)
		}
		load := startFailoverLoad(t, bases, kept, apis, names, password)
		time.Sleep(time.Second)
		var ended []*http.Client
		for i, c := range toEnd {
			ended = append(ended, cookieClient(t, sessionCookieOf(t, c, app(i)).Value))
			postForm(t, c, app(i+1), "/logout/", url.Values{})
		}
		// Replication is asynchronous on Cluster (no WAIT): the failure
		// comes once the replica has what was acknowledged, or losing it
		// would be Redis's promise, not the service's.
		time.Sleep(200 * time.Millisecond)
		failed := time.Now()
		promotedTo := fail()
		testkit.Eventually(t, drill+": "+promotedTo.Addr()+" promoted", 30*time.Second, func() (bool, string) {
			role := cl.Role(promotedTo)
			return role == "master", "role " + role
		})
		promotion := time.Since(failed)
		time.Sleep(2 * time.Second)
		load.stop()
		load.report(failed, apps).check(t, drill, promotion)
		checkKept(t, bases, kept, apis, load.madeSessions(), ended, endedWho)
	}

	replica := cl.ReplicaOf(t, victim)
	if replica == nil {
		t.Fatalf("no replica follows %s", victim.Addr())
	}
	failover("cluster kill -9", func() *redistest.Server {
		victim.Kill(t)
		return replica
	})
	// The killed node comes back as a replica of the one that replaced it.
	victim.Restart(t)
	testkit.Eventually(t, victim.Addr()+" back as a replica in sync", 30*time.Second, func() (bool, string) {
		return cl.ReplicaOf(t, replica) == victim, "role " + cl.Role(victim)
	})
	failover("cluster CLUSTER FAILOVER", func() *redistest.Server {
		if err := victim.Client(t).ClusterFailover(context.Background()).Err(); err != nil {
			t.Fatalf("CLUSTER FAILOVER on %s: %v", victim.Addr(), err)
		}
		return victim
	})
}
