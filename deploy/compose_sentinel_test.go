package deploy

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"

	"loginsvc/internal/store"
	"loginsvc/internal/testkit"
)

// compose.sentinel.yml, layered on docker-compose.yml as docs/running.md says:
// the app is pointed at the three Sentinels by a URL the service accepts,
// the replica follows the master by its fixed address, which is the one
// every Sentinel watches, and nothing is published beyond the lb's port.
func TestComposeSentinelOverride(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml"), filepath.Join(root, "compose.sentinel.yml")},
		cli.WithName("loginsvc"), cli.WithWorkingDirectory(root), cli.WithEnv(nil),
		cli.WithInterpolation(true), cli.WithNormalization(true), cli.WithConsistency(true), cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("load docker-compose.yml + compose.sentinel.yml: %v", err)
	}
	app, err := service(p, "app")
	if err != nil {
		t.Fatal(err)
	}
	url, err := envValue(app, "REDIS_URL")
	if err != nil {
		t.Fatal(err)
	}
	ep, err := store.ParseURL(url)
	if err != nil || ep.Topology != store.Sentinel {
		t.Fatalf("app REDIS_URL %q: topology %q, %v; want a Sentinel URL the service accepts", url, ep.Topology, err)
	}
	master, err := service(p, "redis")
	if err != nil {
		t.Fatal(err)
	}
	masterIP := master.Networks["backend"].Ipv4Address
	if masterIP == "" {
		t.Fatal("redis has no fixed address on backend: Sentinel would have to watch it by name")
	}
	replica, err := service(p, "redis-replica")
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.Index(replica.Command, "--replicaof"); i < 0 || replica.Command[i+1] != masterIP {
		t.Errorf("redis-replica command %q: want --replicaof %s", replica.Command, masterIP)
	}
	for _, name := range []string{"sentinel-1", "sentinel-2", "sentinel-3"} {
		s, err := service(p, name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(url, name+":26379") {
			t.Errorf("app REDIS_URL %q does not name %s", url, name)
		}
		if got := s.Environment["MASTER_IP"]; got == nil || *got != masterIP {
			t.Errorf("%s watches %v, want the master's address %s", name, got, masterIP)
		}
		if !strings.Contains(strings.Join(s.Command, " "), "--sentinel") {
			t.Errorf("%s command %q: want redis-server ... --sentinel", name, s.Command)
		}
		if _, ok := app.DependsOn[name]; !ok {
			t.Errorf("app does not wait for %s", name)
		}
	}
	for name, s := range p.Services {
		if len(s.Ports) > 0 && name != "lb" {
			t.Errorf("service %s publishes %v: only the lb may", name, s.Ports)
		}
	}
}

// TestComposeSentinelFailover brings docs/running.md's Sentinel stack up for
// real (docker-compose.yml with compose.sentinel.yml, on the Docker
// Engine) and does what its comment tells users to try: kill the master
// container. Then the app serves again through the published port without
// a restart, on the replica the Sentinels promoted; a session from before
// is still valid; a logout acknowledged before the kill stays logged out;
// logins write on every replica (no lasting READONLY); and the killed master, started
// again, rejoins as a replica of the new one. The seconds without service
// are printed.
func TestComposeSentinelFailover(t *testing.T) {
	const (
		masterIP  = "172.30.255.10" // compose.sentinel.yml's defaults
		replicaIP = "172.30.255.11"
	)
	s := startComposeStack(t, []string{"compose.sentinel.yml"})
	masterAddr := func() string {
		out, err := s.compose(composeCmdTimeout, "", "exec", "-T", "sentinel-1", "redis-cli", "-p", "26379", "SENTINEL", "get-master-addr-by-name", "loginsvc")
		if err != nil {
			return "no answer: " + strings.TrimSpace(out)
		}
		return strings.Join(strings.Fields(out), ":")
	}
	if got := masterAddr(); got != masterIP+":6379" {
		t.Fatalf("Sentinel names master %q, want %s:6379", got, masterIP)
	}
	if logs := s.must(t, "logs", "--no-color", "app"); !strings.Contains(logs, `"topology":"sentinel"`) {
		t.Fatalf("app replicas do not log the sentinel topology:\n%s", logs)
	}

	kept := testkit.Browser(t)
	keptToken := postLogin(t, kept, s.base, testUser, testPassword, nil).Value
	ended := testkit.Browser(t)
	endedToken := postLogin(t, ended, s.base, testUser, testPassword, nil).Value
	logout(t, ended, s.base)
	// Replication is asynchronous: the kill must come after the replica
	// holds the session, or losing it would be Redis's promise, not ours.
	// (The logout waited for the replica itself: WAIT on revocations.)
	testkit.Eventually(t, "redis-replica holds the kept session", 30*time.Second, func() (bool, string) {
		out, _ := s.compose(composeCmdTimeout, "", "exec", "-T", "redis-replica", "redis-cli", "EXISTS", testkit.SessionKey(keptToken))
		return strings.TrimSpace(out) == "1", "EXISTS says " + strings.TrimSpace(out)
	})

	s.must(t, "kill", "redis")
	killed := time.Now()
	// First the promotion, as the Sentinels see it: a page served before
	// it could come from a replica's session cache in the instant before
	// the replica notices its master gone, and prove nothing.
	testkit.Eventually(t, "Sentinel names the replica as master", 60*time.Second, func() (bool, string) {
		got := masterAddr()
		return got == replicaIP+":6379", "names " + got
	})
	promoted := time.Since(killed)
	// Then every replica of the service behind the lb: the kept session
	// read and a login written, several times over in a row, so one
	// replica still dialling the old master cannot pass for all three.
	failed, streak := 0, 0
	testkit.Eventually(t, "the kept session served and logins written again through the lb", 90*time.Second, func() (bool, string) {
		status, by, body, err := tryGet(kept, s.base+"/", nil)
		if err != nil || status != http.StatusOK || !loggedIn(body, testUser) {
			failed, streak = failed+1, 0
			return false, fmt.Sprintf("GET / with the kept session: status %d from %q, err %v: %s", status, by, err, firstLine(body))
		}
		if status := tryLogin(testkit.Browser(t), s.base, testUser, testPassword); status != http.StatusSeeOther {
			failed, streak = failed+1, 0
			return false, fmt.Sprintf("login: status %d (0: no answer)", status)
		}
		streak++
		return streak >= 2*composeReplicas, fmt.Sprintf("%d in a row so far", streak)
	})
	down := time.Since(killed)
	if ck := sessionCookieOf(t, kept, s.base); ck.Value != keptToken {
		t.Errorf("the kept session's cookie changed across the failover")
	}
	if status, _, body, err := tryGet(cookieClient(t, endedToken), s.base+"/", nil); err != nil || status != http.StatusOK || !loggedOut(body) {
		t.Errorf("the token logged out before the failover: status %d, err %v, logged out %v; want the logged-out page", status, err, loggedOut(body))
	}

	s.must(t, "start", "redis")
	testkit.Eventually(t, "the old master rejoins as a replica", 60*time.Second, func() (bool, string) {
		out, _ := s.compose(composeCmdTimeout, "", "exec", "-T", "redis", "redis-cli", "INFO", "replication")
		return strings.Contains(out, "role:slave") && strings.Contains(out, "master_link_status:up"), firstLine(strings.TrimSpace(out))
	})
	t.Logf("compose Sentinel stack: master killed, %s promoted after %.1f s, pages and logins served again after %.1f s (%d probes failed meanwhile), the session from before kept, the logout kept, the old master back as its replica",
		replicaIP, promoted.Seconds(), down.Seconds(), failed)
}
