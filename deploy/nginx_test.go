package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Marker lines in nginx.conf. Everything between them (exclusive) is the
// upstream server list, the only part of the file that tests replace.
const (
	nginxBeginMarker = "# BEGIN upstream servers"
	nginxEndMarker   = "# END upstream servers"
)

// nginxConfPath is nginx.conf of this package; go test runs in the package
// directory.
const nginxConfPath = "nginx.conf"

// renderNginxConf returns deploy/nginx.conf with the upstream server list
// (the lines between the markers) replaced by one line per address in servers,
// e.g. "127.0.0.1:41234" becomes
//
//	server 127.0.0.1:41234 max_fails=1 fail_timeout=5s;
//
// The parameters are those of the production server line minus `resolve`
// (which Debian's nginx 1.22 does not know and loopback addresses do not
// need), so the native tests run the same passive health checking as the
// image. Everything outside the markers is returned unchanged.
func renderNginxConf(t testing.TB, servers []string) string {
	t.Helper()
	if len(servers) == 0 {
		t.Fatal("renderNginxConf: no upstream servers")
	}
	raw, err := os.ReadFile(nginxConfPath)
	if err != nil {
		t.Fatalf("read %s: %v", nginxConfPath, err)
	}
	lines := strings.SplitAfter(string(raw), "\n")
	begin, end := nginxMarkers(t, lines)

	var params []string
	indent := ""
	for _, l := range lines[begin+1 : end] {
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(l), ";"))
		if len(f) < 2 || f[0] != "server" {
			continue
		}
		indent = l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		for _, p := range f[2:] {
			if p != "resolve" {
				params = append(params, p)
			}
		}
		break
	}
	if indent == "" {
		t.Fatalf("%s: no `server` line between the markers", nginxConfPath)
	}

	var b strings.Builder
	for _, l := range lines[:begin+1] {
		b.WriteString(l)
	}
	for _, s := range servers {
		if strings.ContainsAny(s, " \t\n;{}#") || s == "" {
			t.Fatalf("renderNginxConf: bad server address %q", s)
		}
		b.WriteString(indent + "server " + strings.Join(append([]string{s}, params...), " ") + ";\n")
	}
	for _, l := range lines[end:] {
		b.WriteString(l)
	}
	return b.String()
}

// nginxListenDirective is the one listen directive of nginx.conf.
const nginxListenDirective = "listen 8080;"

// nginxConfListen returns conf with its `listen 8080;` replaced by
// `listen ADDR;` (e.g. "127.0.0.1:41000"). Optional: for a native run that
// must not take port 8080 on all interfaces (a busy CI machine, or several
// clusters at once). Everything else stays as rendered.
func nginxConfListen(t testing.TB, conf, addr string) string {
	t.Helper()
	if n := strings.Count(conf, nginxListenDirective); n != 1 {
		t.Fatalf("nginx.conf has %d %q directives, want 1", n, nginxListenDirective)
	}
	if addr == "" || strings.ContainsAny(addr, " \t\n;{}#") {
		t.Fatalf("nginxConfListen: bad address %q", addr)
	}
	return strings.Replace(conf, nginxListenDirective, "listen "+addr+";", 1)
}

// nginxMarkers returns the indexes of the single BEGIN and END marker lines.
func nginxMarkers(t testing.TB, lines []string) (begin, end int) {
	t.Helper()
	begin, end = -1, -1
	for i, l := range lines {
		switch strings.TrimSpace(l) {
		case nginxBeginMarker:
			if begin >= 0 {
				t.Fatalf("%s: marker %q appears more than once", nginxConfPath, nginxBeginMarker)
			}
			begin = i
		case nginxEndMarker:
			if end >= 0 {
				t.Fatalf("%s: marker %q appears more than once", nginxConfPath, nginxEndMarker)
			}
			end = i
		}
	}
	if begin < 0 || end < 0 {
		t.Fatalf("%s: missing marker lines %q / %q", nginxConfPath, nginxBeginMarker, nginxEndMarker)
	}
	if end < begin {
		t.Fatalf("%s: %q comes before %q", nginxConfPath, nginxEndMarker, nginxBeginMarker)
	}
	return begin, end
}

// requireNginx returns the path of the nginx binary, failing (never skipping)
// when it is missing.
func requireNginx(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("nginx")
	if err != nil {
		t.Fatal("nginx not found: run ./scripts/test.sh, which installs it")
	}
	return p
}

// writeNginxPrefix writes conf as nginx.conf into a fresh prefix directory and
// returns the prefix (with trailing slash) and the config path. The directory
// is world-traversable so that, when the tests run as root, nginx's workers
// (which then drop to an unprivileged user) can use the temp dirs under it.
func writeNginxPrefix(t testing.TB, conf string) (prefix, confPath string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "loginsvc-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	confPath = filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir + "/", confPath
}

// nginxArgs are the command-line arguments that run conf under prefix in the
// foreground, logging errors to stderr; extra (e.g. "-t") come first.
func nginxArgs(prefix, confPath string, extra ...string) []string {
	return append(extra,
		"-e", "stderr",
		"-p", prefix,
		"-c", confPath,
		"-g", "daemon off; pid "+filepath.Join(prefix, "nginx.pid")+";",
	)
}

func readNginxConf(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(nginxConfPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// stripNginxComments removes # comments (nginx.conf has no quoted '#').
func stripNginxComments(conf string) string {
	return regexp.MustCompile(`#[^\n]*`).ReplaceAllString(conf, "")
}

// nginxDirectives returns the first word of every directive of conf, comments
// stripped.
func nginxDirectives(conf string) []string {
	var out []string
	for _, line := range strings.Split(conf, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, stmt := range strings.FieldsFunc(line, func(r rune) bool { return r == ';' || r == '{' || r == '}' }) {
			if f := strings.Fields(stmt); len(f) > 0 {
				out = append(out, f[0])
			}
		}
	}
	return out
}

func TestNginxConfMarkers(t *testing.T) {
	conf := readNginxConf(t)
	lines := strings.SplitAfter(conf, "\n")
	for _, m := range []string{nginxBeginMarker, nginxEndMarker} {
		if n := strings.Count(conf, m); n != 1 {
			t.Errorf("marker %q appears %d times, want exactly 1", m, n)
		}
	}
	begin, end := nginxMarkers(t, lines)
	want := []string{
		"    " + nginxBeginMarker + "\n",
		"    server app:8080 resolve max_fails=1 fail_timeout=5s;\n",
		"    " + nginxEndMarker + "\n",
	}
	// The markers sit inside `upstream app { ... }`, indented as shown.
	var got []string
	for _, l := range lines[begin : end+1] {
		got = append(got, strings.TrimPrefix(l, "    "))
	}
	if strings.Join(got, "") != strings.Join(want, "") {
		t.Errorf("templated block is\n%s\nwant\n%s", strings.Join(got, ""), strings.Join(want, ""))
	}
	upstream := -1
	for i := begin; i >= 0; i-- {
		if strings.TrimSpace(lines[i]) == "upstream app {" {
			upstream = i
			break
		}
	}
	if upstream < 0 {
		t.Fatalf("markers are not inside `upstream app {`")
	}
	for _, l := range lines[upstream:begin] {
		if strings.Contains(l, "}") {
			t.Fatalf("markers are not inside `upstream app {`")
		}
	}
	if !regexp.MustCompile(`(?m)^\s*zone app 64k;`).MatchString(strings.Join(lines[upstream:begin], "")) {
		t.Errorf("upstream app has no `zone app 64k;` (needed by `resolve`)")
	}
}

func TestNginxConfDirectives(t *testing.T) {
	conf := readNginxConf(t)
	dirs := map[string]bool{}
	for _, d := range nginxDirectives(conf) {
		dirs[d] = true
	}
	for _, tc := range []struct {
		directive string
		want      bool
		why       string
	}{
		{"proxy_next_upstream", true, "retry idempotent requests on the next replica"},
		{"proxy_next_upstream_tries", true, "bound retries"},
		{"proxy_next_upstream_timeout", true, "bound retries"},
		{"proxy_connect_timeout", true, "fail fast on a dead replica"},
		{"resolver", true, "pick up `--scale app=N`"},
		{"zone", true, "needed by `resolve`"},
		{"ip_hash", false, "no sticky sessions: round-robin"},
		{"hash", false, "no sticky sessions: round-robin"},
		{"sticky", false, "no sticky sessions: round-robin"},
		{"least_conn", false, "round-robin"},
		{"random", false, "round-robin"},
		{"user", false, "set by the caller (non-root native runs)"},
		{"pid", false, "set by the caller with -g"},
		{"daemon", false, "set by the caller with -g"},
		{"include", false, "self-contained: nothing under the native prefix to include"},
	} {
		if dirs[tc.directive] != tc.want {
			t.Errorf("directive %s present=%v, want %v (%s)", tc.directive, dirs[tc.directive], tc.want, tc.why)
		}
	}
	for _, s := range []string{
		"proxy_next_upstream error timeout http_502 http_504;",
		"proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
		"proxy_set_header X-Forwarded-Proto $scheme;",
		"proxy_set_header X-Real-IP $remote_addr;",
		"proxy_set_header Host ",
		"resolver 127.0.0.11 valid=5s ipv6=off;",
		"listen 8080;",
		"proxy_pass http://app;",
		"error_log stderr",
		"access_log /dev/stdout",
	} {
		if !strings.Contains(conf, s) {
			t.Errorf("nginx.conf lacks %q", s)
		}
	}
	// Belt and braces for the table above, outside comments: no sticky/hash
	// balancing, and never retry a POST that was already sent.
	code := stripNginxComments(conf)
	if strings.Contains(code, "non_idempotent") {
		t.Errorf("nginx.conf must not retry non-idempotent requests")
	}
	for _, re := range []string{`ip_hash`, `sticky`, `(^|[\s;{}])hash\s`} {
		if regexp.MustCompile(re).MatchString(code) {
			t.Errorf("nginx.conf matches %q: sessions must not be sticky", re)
		}
	}
}

func TestRenderNginxConf(t *testing.T) {
	orig := readNginxConf(t)
	servers := []string{"127.0.0.1:41001", "127.0.0.1:41002", "127.0.0.1:41003"}
	got := renderNginxConf(t, servers)

	for _, s := range servers {
		line := "        server " + s + " max_fails=1 fail_timeout=5s;\n"
		if strings.Count(got, line) != 1 {
			t.Errorf("rendered config lacks line %q", line)
		}
	}
	if code := stripNginxComments(got); strings.Contains(code, "app:8080") || regexp.MustCompile(`\sresolve[\s;]`).MatchString(code) {
		t.Errorf("rendered config still has the production server line")
	}
	// Outside the markers the file is unchanged.
	strip := func(s string) string {
		b := strings.Index(s, nginxBeginMarker)
		e := strings.Index(s, nginxEndMarker)
		if b < 0 || e < b {
			t.Fatalf("markers lost")
		}
		return s[:b] + s[e:]
	}
	if strip(got) != strip(orig) {
		t.Errorf("renderNginxConf changed the file outside the markers")
	}
}

func TestNginxConfListen(t *testing.T) {
	conf := renderNginxConf(t, []string{"127.0.0.1:41001"})
	got := nginxConfListen(t, conf, "127.0.0.1:41000")
	if strings.Contains(got, nginxListenDirective) || strings.Count(got, "listen 127.0.0.1:41000;") != 1 {
		t.Errorf("listen not replaced:\n%s", got)
	}
	if strings.Replace(got, "listen 127.0.0.1:41000;", nginxListenDirective, 1) != conf {
		t.Errorf("nginxConfListen changed more than the listen directive")
	}
}

// TestNginxConfAccepted runs `nginx -t` on the rendered config, as a non-root
// native run would use it: prefix, config and pid path all given by the caller.
func TestNginxConfAccepted(t *testing.T) {
	nginx := requireNginx(t)
	conf := renderNginxConf(t, []string{"127.0.0.1:41001", "127.0.0.1:41002"})
	prefix, confPath := writeNginxPrefix(t, conf)
	cmd := exec.Command(nginx, nginxArgs(prefix, confPath, "-t")...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("nginx -t rejected the rendered config: %v\n%s\n--- config ---\n%s", err, out.String(), conf)
	}
	if !strings.Contains(out.String(), "test is successful") {
		t.Fatalf("nginx -t: unexpected output:\n%s", out.String())
	}
}
