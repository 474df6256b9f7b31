package deploy

// The three reverse proxies docs/forward-auth.md puts in front of the service for
// forward auth, each run for real with its snippet from deploy/ (the very
// file that page shows), only the addresses substituted: Debian's nginx
// and Caddy, and Traefik built from the Go module proxy by
// scripts/traefik-cli.sh (TRAEFIK_BIN).

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"loginsvc/internal/logging"
	"loginsvc/internal/testkit"
)

// gateway is one reverse proxy that can stand in front of a
// forwardAuthSite.
type gateway struct {
	// Name names the proxy (and its subtests).
	Name string
	// Snippets are the files of deploy/ the proxy runs, each shown
	// verbatim in a docs/forward-auth.md block fenced with its language.
	Snippets []readmeSnippet
	// DeniedScript is the status a request without a live session gets
	// when it does not accept text/html: nginx's error_page turns every
	// 401 of /auth/verify into the redirect, Traefik and Caddy hand the
	// 401 of /auth/forward to the client as it is.
	DeniedScript int
	// KeepsAppCookies says whether the app receives its own cookies.
	// Traefik cannot remove one cookie, so its snippet removes the whole
	// Cookie header.
	KeepsAppCookies bool
	// NamesAppHosts says whether the replicas need the app's hosts in
	// AUTH_ALLOWED_HOSTS: Traefik's check reaches the service with the
	// Host of forwardAuth's address, not the app's, and a return target
	// must be on the host the check reached or on that list.
	NamesAppHosts bool
	// start runs the proxy for s, listening on listen (127.0.0.1:PORT,
	// the first is s.URL), with its files in dir. It returns the process
	// and what to print of it when the test fails.
	start func(t *testing.T, s *forwardAuthSite, dir string, listen []string) (proc *testkit.Process, report func() string)
}

// readmeSnippet is a file of deploy/ that docs/forward-auth.md shows verbatim.
type readmeSnippet struct {
	Path  string // relative to deploy/
	Fence string // the language of its ``` block there
}

// The snippets, in deploy/.
const (
	// nginxSnippetPath is included in the app's server { } block.
	nginxSnippetPath = "nginx-forward-auth.conf"
	// nginxCookiesPath is included in the http { } block: the maps that
	// remove the service's cookies.
	nginxCookiesPath = "nginx-forward-auth-cookies.conf"
	// traefikSnippetPath is Traefik's dynamic configuration.
	traefikSnippetPath = "traefik-forward-auth.yml"
	// caddySnippetPath is the app's site in a Caddyfile.
	caddySnippetPath = "Caddyfile.forward-auth"
)

var (
	nginxGateway = gateway{
		Name: "nginx",
		Snippets: []readmeSnippet{
			{Path: nginxSnippetPath, Fence: "nginx"},
			{Path: nginxCookiesPath, Fence: "nginx"},
		},
		DeniedScript:    http.StatusFound,
		KeepsAppCookies: true,
		start:           startNginx,
	}
	traefikGateway = gateway{
		Name:          "traefik",
		Snippets:      []readmeSnippet{{Path: traefikSnippetPath, Fence: "yaml"}},
		DeniedScript:  http.StatusUnauthorized,
		NamesAppHosts: true,
		start:         startTraefik,
	}
	caddyGateway = gateway{
		Name:            "caddy",
		Snippets:        []readmeSnippet{{Path: caddySnippetPath, Fence: "caddyfile"}},
		DeniedScript:    http.StatusUnauthorized,
		KeepsAppCookies: true,
		start:           startCaddy,
	}
	// gateways are the proxies docs/forward-auth.md documents, every one tested.
	gateways = []gateway{nginxGateway, traefikGateway, caddyGateway}
)

// snippetWith returns the snippet at path (in deploy/) with each
// placeholder address replaced, in order. A placeholder the snippet lacks
// fails the test: the snippet would have drifted from what the test runs.
func snippetWith(t *testing.T, path string, replace ...string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(s, replace[i]) {
			t.Fatalf("deploy/%s has no %q to replace with the test's address", path, replace[i])
		}
		s = strings.ReplaceAll(s, replace[i], replace[i+1])
	}
	return s
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startNginx runs Debian's nginx with the two nginx snippets included, as
// docs/forward-auth.md's example http { } block does.
func startNginx(t *testing.T, s *forwardAuthSite, dir string, listen []string) (*testkit.Process, func() string) {
	t.Helper()
	nginxBin, err := exec.LookPath("nginx")
	if err != nil {
		t.Fatal("nginx not found: run ./scripts/test.sh, which installs it")
	}
	var paths []string
	for _, p := range []string{nginxSnippetPath, nginxCookiesPath} {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, abs)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n" // workers would otherwise run as nobody, who cannot read the temp dir
	}
	listens := ""
	for _, a := range listen {
		listens += "        listen " + a + ";\n"
	}
	conf := fmt.Sprintf(`%sworker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 256; }
http {
    access_log %[2]s/access.log;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[3]s;
    upstream loginsvc {
        server %[4]s;
        server %[5]s;
    }
    upstream app {
        server %[6]s;
    }
    server {
%[7]s        include %[8]s;
    }
}
`, user, dir, paths[1], s.Replicas[0].Addr, s.Replicas[1].Addr, strings.TrimPrefix(s.App.srv.URL, "http://"), listens, paths[0])
	writeFile(t, filepath.Join(dir, "nginx.conf"), conf)
	cmd := exec.Command(nginxBin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", "nginx.conf", "-g", "daemon off;")
	cmd.Env = []string{}
	proc := testkit.NewProcess(t, filepath.Join(dir, "nginx.log"))
	if err := proc.Start(cmd); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	return proc, func() string {
		errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return fmt.Sprintf("%s\n%s\n--- config ---\n%s", proc.LogTail(harnessTailLines), tail(string(errLog), 4000), conf)
	}
}

// traefikBinEnv names the Traefik binary scripts/test.sh builds.
const traefikBinEnv = "TRAEFIK_BIN"

// startTraefik runs Traefik v3 with deploy/traefik-forward-auth.yml as its
// dynamic configuration (file provider) and a static configuration of
// entry points on listen, without the version check or usage statistics.
// The snippet's forwardAuth address, one URL for every replica, is a
// round-robin balancer the test runs.
func startTraefik(t *testing.T, s *forwardAuthSite, dir string, listen []string) (*testkit.Process, func() string) {
	t.Helper()
	bin := os.Getenv(traefikBinEnv)
	if bin == "" {
		t.Fatalf("%s is not set: run ./scripts/test.sh, which builds Traefik (scripts/traefik-cli.sh) and sets it", traefikBinEnv)
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		t.Fatalf("%s=%s is not a binary (%v): run ./scripts/traefik-cli.sh", traefikBinEnv, bin, err)
	}
	balancer := newReplicaBalancer(t, s.Replicas)
	dynamic := snippetWith(t, traefikSnippetPath,
		"app.example.com", "127.0.0.1",
		"http://10.0.0.10:8080", balancer.URL,
		"http://10.0.0.11:8080", s.Replicas[0].URL,
		"http://10.0.0.12:8080", s.Replicas[1].URL,
		"http://10.0.0.21:3000", s.App.srv.URL)
	dynamicPath := filepath.Join(dir, "dynamic.yml")
	writeFile(t, dynamicPath, dynamic)
	entryPoints := ""
	for i, a := range listen {
		entryPoints += fmt.Sprintf("  web%d:\n    address: %q\n", i, a)
	}
	static := fmt.Sprintf(`global:
  checkNewVersion: false
  sendAnonymousUsage: false
log:
  level: INFO
entryPoints:
%sproviders:
  file:
    filename: %q
    watch: false
`, entryPoints, dynamicPath)
	staticPath := filepath.Join(dir, "traefik.yml")
	writeFile(t, staticPath, static)
	cmd := exec.Command(bin, "--configFile="+staticPath)
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir}
	proc := testkit.NewProcess(t, filepath.Join(dir, "traefik.log"))
	if err := proc.Start(cmd); err != nil {
		t.Fatalf("start traefik: %v", err)
	}
	return proc, func() string {
		return fmt.Sprintf("%s\n--- static ---\n%s\n--- dynamic ---\n%s", proc.LogTail(harnessTailLines), static, dynamic)
	}
}

// newReplicaBalancer stands for what a Traefik forwardAuth address names
// in production (a balancer, a DNS name or a Kubernetes Service in front
// of the replicas): round robin over them, passing on the X-Forwarded-*
// headers Traefik sent, as a layer-4 balancer would.
func newReplicaBalancer(t *testing.T, replicas []*replica) *httptest.Server {
	t.Helper()
	var targets []*url.URL
	for _, r := range replicas {
		u, err := url.Parse(r.URL)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, u)
	}
	var next atomic.Uint64
	srv := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(targets[(next.Add(1)-1)%uint64(len(targets))])
		pr.Out.Host = pr.In.Host
		for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
			if v, ok := pr.In.Header[h]; ok {
				pr.Out.Header[h] = v
			}
		}
	}})
	t.Cleanup(srv.Close)
	return srv
}

// startCaddy runs Debian's Caddy with deploy/Caddyfile.forward-auth after
// a global block that turns off the admin endpoint and automatic HTTPS
// (the site address is http://).
func startCaddy(t *testing.T, s *forwardAuthSite, dir string, listen []string) (*testkit.Process, func() string) {
	t.Helper()
	caddyBin, err := exec.LookPath("caddy")
	if err != nil {
		t.Fatal("caddy not found: run ./scripts/test.sh, which installs it")
	}
	sites := make([]string, len(listen))
	for i, a := range listen {
		sites[i] = "http://" + a
	}
	caddyfile := "{\n\tadmin off\n\tauto_https off\n}\n\n" + snippetWith(t, caddySnippetPath,
		"app.example.com", strings.Join(sites, ", "),
		"10.0.0.11:8080", s.Replicas[0].Addr,
		"10.0.0.12:8080", s.Replicas[1].Addr,
		"10.0.0.21:3000", strings.TrimPrefix(s.App.srv.URL, "http://"))
	path := filepath.Join(dir, "Caddyfile")
	writeFile(t, path, caddyfile)
	cmd := exec.Command(caddyBin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir, "XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config")}
	proc := testkit.NewProcess(t, filepath.Join(dir, "caddy.log"))
	if err := proc.Start(cmd); err != nil {
		t.Fatalf("start caddy: %v", err)
	}
	return proc, func() string {
		return fmt.Sprintf("%s\n--- Caddyfile ---\n%s", proc.LogTail(harnessTailLines), caddyfile)
	}
}

// serviceCookies are the cookies this service sets, by base name: none
// may reach a protected app, with or without a __Host- or __Secure- prefix.
var serviceCookies = map[string]bool{
	sessionCookie: true, deviceCookie: true, "login_pending": true, "passkey_ceremony": true, "flash": true, "lang": true,
}

// cookieNames returns the names in a Cookie header, in order, skipping
// the empty parts a proxy's removal may leave.
func cookieNames(header string) []string {
	var names []string
	for part := range strings.SplitSeq(header, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, _, _ := strings.Cut(part, "=")
		names = append(names, name)
	}
	return names
}

// serviceCookiesIn returns the service's cookies among names.
func serviceCookiesIn(names []string) []string {
	var ours []string
	for _, n := range names {
		base := strings.TrimPrefix(strings.TrimPrefix(n, "__Host-"), "__Secure-")
		if serviceCookies[base] {
			ours = append(ours, n)
		}
	}
	return ours
}

// checkLine matches a replica's request log line of a forward-auth check.
var checkLine = regexp.MustCompile(`(?m)^.*path=/auth/(?:verify|forward)\b.*$`)

// checksAnswered returns how many forward-auth checks each replica of s
// has logged so far. A replica writes its log lines out every
// logging.FlushEvery, so it first waits for every line of the requests
// made so far to be written.
func (s *forwardAuthSite) checksAnswered(t *testing.T) []int {
	t.Helper()
	time.Sleep(3 * logging.FlushEvery)
	n := make([]int, len(s.Replicas))
	for i, r := range s.Replicas {
		n[i] = len(checkLine.FindAllString(r.Log(t), -1))
	}
	return n
}

// wantEveryReplicaChecked fails unless every replica has answered a check
// since before (from checksAnswered).
func (s *forwardAuthSite) wantEveryReplicaChecked(t *testing.T, what string, before []int) {
	t.Helper()
	after := s.checksAnswered(t)
	for i, r := range s.Replicas {
		if after[i] == before[i] {
			t.Errorf("%s: replica %s answered no check (checks per replica before %v, after %v), want every replica to", what, r.ID, before, after)
		}
	}
}
