package deploy

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"

	"loginsvc/internal/store"
)

// compose.sentinel.yml, layered on docker-compose.yml as the README says:
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
