package deploy

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// haproxyConfPath is the lb's config, mounted by docker-compose.yml.
const haproxyConfPath = "haproxy.cfg"

// haproxyCode returns haproxy.cfg without comments.
func haproxyCode(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(haproxyConfPath)
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`(?m)#.*$`).ReplaceAllString(string(raw), "")
}

// TestHAProxyConfigAccepted runs `haproxy -c` (Debian's, which
// ./scripts/test.sh installs) on the file exactly as the lb mounts it.
func TestHAProxyConfigAccepted(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal("haproxy not found: run ./scripts/test.sh, which installs it")
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-c", "-f", haproxyConfPath)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("haproxy -c rejected %s: %v\n%s", haproxyConfPath, err, out.String())
	}
}

// TestHAProxyConfigRules checks the rules the stack depends on and that a
// careless edit could drop without any error from HAProxy.
func TestHAProxyConfigRules(t *testing.T) {
	code := haproxyCode(t)
	for _, tc := range []struct {
		re, why string
	}{
		{`(?m)^\s*nameserver \S+ 127\.0\.0\.11:53\s*$`, "replicas are found through Docker's DNS"},
		{`(?m)^\s*server-template app \d+ app:8080\s*$`, "one slot per replica of service app"},
		{`(?m)^\s*http-check send meth GET uri /readyz\s*$`, "a draining or unready replica gets no new request"},
		{`(?m)^\s*balance roundrobin\s*$`, "no stickiness: any replica serves any session"},
		{`(?m)^\s*http-request del-header X-Forwarded-For\s*$`, "the app trusts X-Forwarded-For from private ranges: a client's own header must go"},
		{`(?m)^\s*option forwardfor\s*$`, "the app learns the client's address"},
		{`(?m)^\s*http-request disable-l7-retry unless METH_GET \|\| METH_HEAD\s*$`, "a POST is never sent twice"},
		{`(?m)^\s*bind :8080\s*$`, "the port docker-compose.yml publishes"},
		{`(?m)^\s*monitor-uri /lb-healthz\s*$`, "the lb's own healthcheck"},
		{`(?m)^\s*timeout http-request 5s\s*$`, "slow-loris: a request's headers and body within 5s (TestHAProxyHoldsAgainstSlowLoris)"},
		{`(?m)^\s*option http-buffer-request\s*$`, "the request timeout covers the body too"},
		{`(?m)^\s*tcp-request connection track-sc0 src\s*$`, "connections are counted per client address"},
		{`(?m)^\s*tcp-request connection reject if \{ sc0_conn_cur gt 100 \}\s*$`, "one address holds at most 100 connections"},
	} {
		if !regexp.MustCompile(tc.re).MatchString(code) {
			t.Errorf("haproxy.cfg lacks %s (%s)", tc.re, tc.why)
		}
	}
	for _, bad := range []string{"cookie ", "stick ", "balance source", "hash-type"} {
		if strings.Contains(code, bad) {
			t.Errorf("haproxy.cfg has %q: sessions must not be sticky", bad)
		}
	}
}

// renderHAProxyConf returns haproxy.cfg for a native run: every
// `server-template app N app:8080` line (found through Docker's DNS in the
// stack) becomes one `server ID ADDR` line per replica, and `bind :8080`
// becomes `bind listen` (a free port on 127.0.0.1: the fixed port on every
// interface may be taken, and would expose the test cluster). Everything
// else, health checks and retries included, is the file as the lb runs it.
func renderHAProxyConf(t testing.TB, servers map[string]string, listen string) string {
	t.Helper()
	raw, err := os.ReadFile(haproxyConfPath)
	if err != nil {
		t.Fatal(err)
	}
	ids := slices.Sorted(maps.Keys(servers))
	if len(ids) == 0 {
		t.Fatal("renderHAProxyConf: no servers")
	}
	template := regexp.MustCompile(`(?m)^([ \t]*)server-template app \d+ app:8080[ \t]*$`)
	if n := len(template.FindAllString(string(raw), -1)); n != 2 {
		t.Fatalf("%s has %d `server-template app N app:8080` lines, want 2 (backends app and app-live)", haproxyConfPath, n)
	}
	conf := template.ReplaceAllStringFunc(string(raw), func(line string) string {
		indent := template.FindStringSubmatch(line)[1]
		var b strings.Builder
		for i, id := range ids {
			if i > 0 {
				b.WriteString("\n")
			}
			b.WriteString(indent + "server " + id + " " + servers[id])
		}
		return b.String()
	})
	bind := regexp.MustCompile(`(?m)^([ \t]*)bind :8080[ \t]*$`)
	if n := len(bind.FindAllString(conf, -1)); n != 1 {
		t.Fatalf("%s has %d `bind :8080` lines, want 1", haproxyConfPath, n)
	}
	return bind.ReplaceAllString(conf, "${1}bind "+listen)
}

func TestRenderHAProxyConf(t *testing.T) {
	got := renderHAProxyConf(t, map[string]string{"app-2": "127.0.0.1:41002", "app-1": "127.0.0.1:41001"}, "127.0.0.1:41000")
	for _, tc := range []struct {
		text string
		n    int
	}{
		{"\n    server app-1 127.0.0.1:41001\n    server app-2 127.0.0.1:41002\n", 2}, // backends app and app-live
		{"\n    bind 127.0.0.1:41000\n", 1},
	} {
		if n := strings.Count(got, tc.text); n != tc.n {
			t.Errorf("rendered config has %q %d times, want %d\n%s", tc.text, n, tc.n, got)
		}
	}
	if strings.Contains(got, "server-template") || strings.Contains(got, "bind :8080") {
		t.Errorf("rendered config still has the stack's lines:\n%s", got)
	}
}
