package deploy

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// repoRoot is the repository root: go test runs in deploy/.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s has no go.mod: %v", root, err)
	}
	return root
}

// loadCompose parses docker-compose.yml the way `docker compose` does
// (interpolation, normalization, consistency checks, resolved paths), with
// exactly the variables in env: neither the OS environment nor a .env file is
// read, so the result does not depend on the machine.
func loadCompose(t testing.TB, env ...string) *types.Project {
	t.Helper()
	root := repoRoot(t)
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithName("loginsvc"),
		cli.WithWorkingDirectory(root),
		cli.WithEnv(env),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

func service(p *types.Project, name string) (types.ServiceConfig, error) {
	s, ok := p.Services[name]
	if !ok {
		return s, fmt.Errorf("no service %q (have %v)", name, slices.Sorted(maps.Keys(p.Services)))
	}
	return s, nil
}

func envValue(s types.ServiceConfig, key string) (string, error) {
	v, ok := s.Environment[key]
	if !ok || v == nil {
		return "", fmt.Errorf("service %s: environment %s not set", s.Name, key)
	}
	return *v, nil
}

func wantEnv(s types.ServiceConfig, key, want string) error {
	got, err := envValue(s, key)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("service %s: %s=%q, want %q", s.Name, key, got, want)
	}
	return nil
}

func wantHealthcheck(s types.ServiceConfig, want ...string) error {
	hc := s.HealthCheck
	if hc == nil || hc.Disable || len(hc.Test) == 0 {
		return fmt.Errorf("service %s: no healthcheck", s.Name)
	}
	if !slices.Equal(hc.Test, append([]string{"CMD"}, want...)) {
		return fmt.Errorf("service %s: healthcheck test %q, want exec form %q", s.Name, hc.Test, append([]string{"CMD"}, want...))
	}
	if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
		return fmt.Errorf("service %s: healthcheck needs interval, timeout and retries", s.Name)
	}
	return nil
}

func wantDependsHealthy(s types.ServiceConfig, on string) error {
	d, ok := s.DependsOn[on]
	if !ok {
		return fmt.Errorf("service %s does not depend on %s", s.Name, on)
	}
	if d.Condition != types.ServiceConditionHealthy {
		return fmt.Errorf("service %s depends on %s with condition %q, want %q", s.Name, on, d.Condition, types.ServiceConditionHealthy)
	}
	return nil
}

func mount(s types.ServiceConfig, target string) (types.ServiceVolumeConfig, error) {
	for _, v := range s.Volumes {
		if v.Target == target {
			return v, nil
		}
	}
	return types.ServiceVolumeConfig{}, fmt.Errorf("service %s mounts nothing at %s", s.Name, target)
}

// imageVersion returns the version of a "name:X.Y[.Z][-variant]" image; patch
// is -1 when the tag does not pin it.
func imageVersion(image, name string) (major, minor, patch int, err error) {
	m := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `:(\d+)\.(\d+)(?:\.(\d+))?(?:-[a-z0-9.]+)?$`).FindStringSubmatch(image)
	if m == nil {
		return 0, 0, 0, fmt.Errorf("image %q is not %s:X.Y[.Z][-variant]", image, name)
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	patch = -1
	if m[3] != "" {
		patch, _ = strconv.Atoi(m[3])
	}
	return major, minor, patch, nil
}

func TestComposeFile(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)

	// Each check gets the service it names (none: ""), looked up once.
	tests := []struct {
		name, service string
		check         func(p *types.Project, s types.ServiceConfig) error
	}{
		{"services are exactly redis, app, lb", "", func(p *types.Project, _ types.ServiceConfig) error {
			got := slices.Sorted(maps.Keys(p.Services))
			if !slices.Equal(got, []string{"app", "lb", "redis"}) {
				return fmt.Errorf("services %v", got)
			}
			return nil
		}},

		// --- redis ---
		{"redis image is redis:7.x", "redis", func(p *types.Project, s types.ServiceConfig) error {
			major, _, _, err := imageVersion(s.Image, "redis")
			if err != nil {
				return err
			}
			if major != 7 {
				return fmt.Errorf("redis image %q: want 7.x", s.Image)
			}
			return nil
		}},
		{"redis persists (AOF everysec) and never evicts", "redis", func(p *types.Project, s types.ServiceConfig) error {
			cmd := " " + strings.Join(s.Command, " ") + " "
			for _, want := range []string{
				" --appendonly yes ",
				" --appendfsync everysec ",
				" --maxmemory-policy noeviction ",
			} {
				if !strings.Contains(cmd, want) {
					return fmt.Errorf("redis command %q lacks %q", s.Command, strings.TrimSpace(want))
				}
			}
			if !regexp.MustCompile(` --maxmemory \d+[kmg]?b? `).MatchString(cmd) {
				return fmt.Errorf("redis command %q sets no --maxmemory, so noeviction never applies", s.Command)
			}
			return nil
		}},
		{"redis healthcheck is redis-cli ping", "redis", func(p *types.Project, s types.ServiceConfig) error {
			return wantHealthcheck(s, "redis-cli", "ping")
		}},
		{"redis data lives on volume redis-data at /data", "redis", func(p *types.Project, s types.ServiceConfig) error {
			if _, ok := p.Volumes["redis-data"]; !ok {
				return fmt.Errorf("no top-level volume redis-data")
			}
			v, err := mount(s, "/data")
			if err != nil {
				return err
			}
			if v.Type != types.VolumeTypeVolume || v.Source != "redis-data" {
				return fmt.Errorf("/data is %s %q, want volume redis-data", v.Type, v.Source)
			}
			return nil
		}},
		{"redis is not published on the host", "redis", func(p *types.Project, s types.ServiceConfig) error {
			if len(s.Ports) != 0 {
				return fmt.Errorf("redis publishes %v", s.Ports)
			}
			return nil
		}},

		// --- app ---
		{"app runs 3 replicas", "app", func(p *types.Project, s types.ServiceConfig) error {
			if s.Deploy == nil || s.Deploy.Replicas == nil {
				return fmt.Errorf("app has no deploy.replicas")
			}
			if n := *s.Deploy.Replicas; n != 3 {
				return fmt.Errorf("app deploy.replicas is %d, want 3", n)
			}
			return nil
		}},
		{"app is built from the repo root", "app", func(p *types.Project, s types.ServiceConfig) error {
			if s.Build == nil || s.Build.Context == "" {
				return fmt.Errorf("app has no build context")
			}
			if filepath.Clean(s.Build.Context) != root {
				return fmt.Errorf("app build context %q, want %q", s.Build.Context, root)
			}
			if _, err := os.Stat(filepath.Join(root, "Dockerfile")); err != nil {
				return fmt.Errorf("build context has no Dockerfile: %v", err)
			}
			return nil
		}},
		{"app is scalable: no container_name, no host ports", "app", func(p *types.Project, s types.ServiceConfig) error {
			if s.ContainerName != "" {
				return fmt.Errorf("app has container_name %q", s.ContainerName)
			}
			if len(s.Ports) != 0 {
				return fmt.Errorf("app publishes %v", s.Ports)
			}
			return nil
		}},
		{"app healthcheck runs /server healthcheck", "app", func(p *types.Project, s types.ServiceConfig) error {
			return wantHealthcheck(s, "/server", "healthcheck")
		}},
		{"app waits for a healthy redis", "app", func(p *types.Project, s types.ServiceConfig) error {
			return wantDependsHealthy(s, "redis")
		}},
		{"app environment", "app", func(p *types.Project, s types.ServiceConfig) error {
			for k, v := range map[string]string{
				"REDIS_URL":          "redis://redis:6379/0",
				"BOOTSTRAP_USER":     "admin",
				"BOOTSTRAP_PASSWORD": "change-me-now",
				"DEVICE_COOKIE_KEY":  "636f6d706f73652d64656d6f2d6b65792d6368616e67652d6d652d6e6f772121", // serve.go's composeDemoDeviceKey
				"COOKIE_SECURE":      "false",
				"SHUTDOWN_DRAIN":     "5s",
			} {
				if err := wantEnv(s, k, v); err != nil {
					return err
				}
			}
			return nil
		}},
		{"only the lb reaches the replicas, on networks Docker numbers", "app", func(p *types.Project, s types.ServiceConfig) error {
			// TRUSTED_PROXIES covers private ranges, so nothing but the lb
			// may reach a replica: every network of app is internal, and
			// no network has a fixed subnet that could collide.
			for name := range s.Networks {
				if !p.Networks[name].Internal {
					return fmt.Errorf("app is on network %s, which is not internal", name)
				}
			}
			for name, n := range p.Networks {
				for _, pool := range n.Ipam.Config {
					if pool.Subnet != "" {
						return fmt.Errorf("network %s has the fixed subnet %s", name, pool.Subnet)
					}
				}
			}
			tp, err := envValue(s, "TRUSTED_PROXIES")
			if err != nil {
				return err
			}
			for _, c := range strings.Split(tp, ",") {
				pfx, err := netip.ParsePrefix(strings.TrimSpace(c))
				if err != nil {
					return fmt.Errorf("TRUSTED_PROXIES %q: %v", tp, err)
				}
				if !pfx.Addr().IsPrivate() {
					return fmt.Errorf("TRUSTED_PROXIES %q trusts %s, which is not a private range", tp, pfx)
				}
			}
			return nil
		}},
		{"app stop_grace_period outlasts SHUTDOWN_DRAIN", "app", func(p *types.Project, s types.ServiceConfig) error {
			v, err := envValue(s, "SHUTDOWN_DRAIN")
			if err != nil {
				return err
			}
			drain, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("SHUTDOWN_DRAIN %q: %v", v, err)
			}
			if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= drain+5*time.Second {
				return fmt.Errorf("stop_grace_period %v must exceed SHUTDOWN_DRAIN %v by more than 5s", s.StopGracePeriod, drain)
			}
			return nil
		}},
		{"app restarts unless stopped", "app", func(p *types.Project, s types.ServiceConfig) error {
			if s.Restart != types.RestartPolicyUnlessStopped {
				return fmt.Errorf("app restart %q", s.Restart)
			}
			return nil
		}},

		// --- lb ---
		{"lb is haproxy 2.x, at least 2.2 (http-check send)", "lb", func(p *types.Project, s types.ServiceConfig) error {
			major, minor, _, err := imageVersion(s.Image, "haproxy")
			if err != nil {
				return err
			}
			if major < 2 || (major == 2 && minor < 2) {
				return fmt.Errorf("lb image %q predates haproxy 2.2", s.Image)
			}
			return nil
		}},
		{"lb publishes 8080 on 127.0.0.1 by default", "lb", func(p *types.Project, s types.ServiceConfig) error {
			for _, port := range s.Ports {
				if port.HostIP == "127.0.0.1" && port.Published == "8080" && port.Target == 8080 {
					return nil
				}
			}
			return fmt.Errorf("lb ports %+v: want 127.0.0.1:8080:8080", s.Ports)
		}},
		{"lb mounts deploy/haproxy.cfg read-only", "lb", func(p *types.Project, s types.ServiceConfig) error {
			v, err := mount(s, "/usr/local/etc/haproxy/haproxy.cfg")
			if err != nil {
				return err
			}
			want := filepath.Join(root, "deploy", "haproxy.cfg")
			if v.Type != types.VolumeTypeBind || v.Source != want || !v.ReadOnly {
				return fmt.Errorf("/usr/local/etc/haproxy/haproxy.cfg is %s %q ro=%v, want read-only bind of %q", v.Type, v.Source, v.ReadOnly, want)
			}
			if _, err := os.Stat(want); err != nil {
				return err
			}
			return nil
		}},
		{"lb starts without waiting for every replica to be healthy", "lb", func(p *types.Project, s types.ServiceConfig) error {
			d, ok := s.DependsOn["app"]
			if !ok {
				return fmt.Errorf("lb does not depend on app")
			}
			if d.Condition != types.ServiceConditionStarted {
				return fmt.Errorf("lb depends on app with condition %q, want %q", d.Condition, types.ServiceConditionStarted)
			}
			return nil
		}},
		{"lb has its own healthcheck", "lb", func(p *types.Project, s types.ServiceConfig) error {
			if hc := s.HealthCheck; hc == nil || hc.Disable || len(hc.Test) == 0 || !strings.Contains(strings.Join(hc.Test, " "), "/lb-healthz") {
				return fmt.Errorf("lb healthcheck %+v: want one on /lb-healthz", hc)
			}
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s types.ServiceConfig
			if tc.service != "" {
				var err error
				if s, err = service(p, tc.service); err != nil {
					t.Fatal(err)
				}
			}
			if err := tc.check(p, s); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestComposeInterpolation: the demo credentials are defaults that the
// environment overrides.
func TestComposeInterpolation(t *testing.T) {
	p := loadCompose(t, "BOOTSTRAP_USER=alice", "BOOTSTRAP_PASSWORD=s3cret-from-env")
	s, err := service(p, "app")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"BOOTSTRAP_USER": "alice", "BOOTSTRAP_PASSWORD": "s3cret-from-env"} {
		if err := wantEnv(s, k, v); err != nil {
			t.Error(err)
		}
	}
}

// TestComposeFileRaw checks what the parsed model cannot show.
func TestComposeFileRaw(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?m)^version:`).Match(raw) {
		t.Error("docker-compose.yml has an obsolete top-level `version:` key")
	}
}
