package deploy

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
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
// Engine) and does what its comment tells users to try, kill the master
// container, under the failover drills' steady mixed load through the
// published lb port (page views, forward-auth checks, API whoami with a
// bearer token, logins). No request may fail (issue 18): no 5xx, no
// reset, no logged-out answer for a live session. HAProxy keeps every
// replica of the service in rotation meanwhile; every session from
// before, every session a login of the load was given and every logout
// acknowledged before the kill is kept; logins write through every
// replica afterwards (no lasting READONLY); the killed master, started
// again, rejoins as a replica of the new one. Time to promotion and, per
// kind of request, requests, failed and p50/p99/max in the failover
// window are printed.
func TestComposeSentinelFailover(t *testing.T) {
	const (
		masterIP  = "172.30.255.10" // compose.sentinel.yml's defaults
		replicaIP = "172.30.255.11"
		password  = "compose-failover-drill-only-password"
		drill     = "compose sentinel docker kill"
	)
	s := startComposeStack(t, []string{"compose.sentinel.yml"})
	bases := []string{s.base} // the lb: the only published port
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

	var (
		names    = []string{"ann", "ben", "cat"}
		kept     []loadUser     // sessions that must survive
		apis     []apiUser      // API tokens that must survive
		toEnd    []*http.Client // sessions logged out right before the kill
		endedWho []string
	)
	for _, name := range names {
		if out, err := s.compose(composeCmdTimeout, password+"\n", "exec", "-T", "app", "/server", "user", "add", name); err != nil {
			t.Fatalf("docker compose exec app /server user add %s: %v\n%s", name, err, out)
		}
	}
	for _, name := range names {
		for range 2 {
			c := testkit.Browser(t)
			postLogin(t, c, s.base, name, password, nil)
			kept = append(kept, loadUser{client: c, user: name})
		}
		apis = append(apis, apiLogin(t, s.base, name, password))
		c := testkit.Browser(t)
		postLogin(t, c, s.base, name, password, nil)
		toEnd = append(toEnd, c)
		endedWho = append(endedWho, name)
	}
	redisID := strings.TrimSpace(s.must(t, "ps", "-q", "redis"))

	load := startFailoverLoad(t, bases, kept, apis, names, password)
	time.Sleep(2 * time.Second)
	// Logouts under load, acknowledged (303) right before the kill; the
	// replayed cookies must stay logged out on the promoted replica.
	// (Sessions and revocations wait for a replica: WAIT, on Sentinel.)
	var ended []*http.Client
	for _, c := range toEnd {
		ended = append(ended, cookieClient(t, sessionCookieOf(t, c, s.base).Value))
		postForm(t, c, s.base, "/logout/", url.Values{})
	}

	s.must(t, "kill", "redis")
	// The moment the container died, by Docker's clock: the kill command
	// itself takes a while on a loaded machine.
	killed, err := time.Parse(time.RFC3339Nano, docker(t, "inspect", "-f", "{{.State.FinishedAt}}", redisID))
	if err != nil {
		t.Fatalf("redis container's FinishedAt: %v", err)
	}
	testkit.Eventually(t, "Sentinel names the replica as master", 60*time.Second, func() (bool, string) {
		got := masterAddr()
		return got == replicaIP+":6379", "names " + got
	})
	promotion := s.switchMaster(t, killed).Sub(killed)
	// Each replica of the service lost its session cache's invalidation
	// channel with the master (flushing the cache) and opened one on the
	// promoted replica: from then on it serves as before the kill.
	apps := s.replicas(t)
	for _, id := range apps {
		testkit.Eventually(t, id+"'s session cache back on the promoted master", 30*time.Second, func() (bool, string) {
			log := docker(t, "logs", id)
			lost := strings.Index(log, "invalidation channel lost")
			back := strings.LastIndex(log, "invalidation channel back")
			return lost >= 0 && back > lost, "want an \"invalidation channel lost\" line, then \"invalidation channel back\""
		})
	}
	time.Sleep(time.Second)
	load.stop()

	report := load.report(killed, nil)
	report.check(t, drill, promotion)
	if len(report.failed) > 0 {
		for _, id := range apps {
			for _, line := range strings.Split(docker(t, "logs", id), "\n") {
				if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
					t.Logf("%s: %s", id, line)
				}
			}
		}
	}
	// Losing the master must not have taken a replica of the service out
	// of the balancer: HAProxy logs every server it marks down.
	lbLog := s.must(t, "logs", "--no-color", "--since", killed.Format(time.RFC3339Nano), "lb")
	for _, line := range strings.Split(lbLog, "\n") {
		if strings.Contains(line, " is DOWN") || strings.Contains(line, "no server available") {
			t.Errorf("the lb took a replica out during the failover: %s", strings.TrimSpace(line))
		}
	}
	checkKept(t, bases, kept, apis, load.madeSessions(), ended, endedWho)
	// Writes through every replica after the load: a login and a logout
	// each, round-robin (a lasting READONLY would fail them).
	for i := range composeReplicas {
		c := testkit.Browser(t)
		postLogin(t, c, s.base, names[i%len(names)], password, nil)
		wantLoggedIn(t, c, s.base, names[i%len(names)])
		postForm(t, c, s.base, "/logout/", url.Values{})
		wantLoggedOut(t, c, s.base, names[i%len(names)])
	}

	s.must(t, "start", "redis")
	testkit.Eventually(t, "the old master rejoins as a replica", 60*time.Second, func() (bool, string) {
		out, _ := s.compose(composeCmdTimeout, "", "exec", "-T", "redis", "redis-cli", "INFO", "replication")
		return strings.Contains(out, "role:slave") && strings.Contains(out, "master_link_status:up"), firstLine(strings.TrimSpace(out))
	})
	t.Logf("%s: %s promoted, every replica of the service in rotation throughout, the sessions and logouts from before kept, the old master back as its replica", drill, replicaIP)
}

// switchMaster is when the first Sentinel announced the promotion
// (+switch-master) after since, by Docker's timestamps of their logs,
// which reach `docker compose logs` a moment after the Sentinels answer
// with the new master.
func (s *composeStack) switchMaster(t *testing.T, since time.Time) time.Time {
	t.Helper()
	var first time.Time
	testkit.Eventually(t, "a Sentinel's +switch-master in its log", 15*time.Second, func() (bool, string) {
		out := s.must(t, "logs", "--no-color", "--timestamps", "--since", since.Format(time.RFC3339Nano), "sentinel-1", "sentinel-2", "sentinel-3")
		for _, m := range switchMasterRE.FindAllStringSubmatch(out, -1) {
			at, err := time.Parse(time.RFC3339Nano, m[1])
			if err == nil && (first.IsZero() || at.Before(first)) {
				first = at
			}
		}
		return !first.IsZero(), "logs since the kill:\n" + out
	})
	return first
}

var switchMasterRE = regexp.MustCompile(`(\d{4}-\d\d-\d\dT[0-9:.]+Z) .*\+switch-master`)
