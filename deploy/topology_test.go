package deploy

// Helpers of the Sentinel and Redis Cluster drills: replicas of the
// service pointed at a REDIS_URL of any topology, the operator CLI run the
// way an operator runs it, and the sessions page read as a browser sees it.

import (
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"loginsvc/internal/testkit"
)

// startApps starts n replicas of the service ("app-1".."app-n") on
// redisURL, directly on loopback ports (no balancer: the drills address
// each replica), and returns once every one is ready and the bootstrap
// user can log in. Their logs are printed if the test fails.
func startApps(t *testing.T, redisURL string, n int) []*replica {
	t.Helper()
	bin := testkit.ServerBinary(t)
	logDir := t.TempDir()
	addrs := testkit.FreeAddrs(t, n)
	apps := make([]*replica, n)
	for i := range apps {
		apps[i] = newReplica(t, bin, "app-"+strconv.Itoa(i+1), addrs[i], redisURL, logDir)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range apps {
				t.Logf("replica %s (%s):\n%s", r.ID, r.Addr, r.proc.LogTail(harnessTailLines))
			}
		}
	})
	for _, r := range apps {
		r.launch(t)
	}
	for _, r := range apps {
		r.waitReady(t)
	}
	// /readyz is 200 once Redis answers; the bootstrap user comes an
	// argon2id hash later.
	testkit.Eventually(t, "bootstrap user can log in", harnessReadyTimeout, func() (bool, string) {
		status := tryLogin(testkit.Browser(t), apps[0].URL, testUser, testPassword)
		return status == http.StatusSeeOther, "POST /login/: " + strconv.Itoa(status)
	})
	return apps
}

// tryLogin posts the login form and returns the status (0: no answer).
func tryLogin(client *http.Client, base, user, password string) int {
	resp, err := client.PostForm(base+"/login/", url.Values{"username": {user}, "password": {password}})
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// serverCLI runs the service binary's operator commands against redisURL,
// password (if any) on stdin, and returns what it printed; a failure fails
// the test.
func serverCLI(t testing.TB, redisURL, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testkit.ServerBinary(t), args...)
	cmd.Env = []string{"REDIS_URL=" + redisURL}
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("server %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sessionRow is one row of the sessions page.
type sessionRow struct {
	id      string
	current bool
}

var sessionRowRE = regexp.MustCompile(`<li class="session[^"]*" data-session-id="([A-Za-z0-9_-]+)"( data-current="true")?>`)

// sessionsPage returns the rows of client's /sessions/ page at base.
func sessionsPage(t testing.TB, client *http.Client, base string) []sessionRow {
	t.Helper()
	status, _, body, err := tryGet(client, base+"/sessions/", nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET %s/sessions/: status %d, %v; want 200", base, status, err)
	}
	var rows []sessionRow
	for _, m := range sessionRowRE.FindAllStringSubmatch(body, -1) {
		rows = append(rows, sessionRow{id: m[1], current: m[2] != ""})
	}
	return rows
}

// postForm posts form to base+path and wants a 303; it returns Location.
func postForm(t testing.TB, client *http.Client, base, path string, form url.Values) string {
	t.Helper()
	resp, err := client.PostForm(base+path, form)
	if err != nil {
		t.Fatalf("POST %s%s: %v", base, path, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST %s%s: status %d, want 303", base, path, resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

// wantLoggedIn checks GET / at base shows user logged in for client.
func wantLoggedIn(t testing.TB, client *http.Client, base, user string) {
	t.Helper()
	status, by, body, err := tryGet(client, base+"/", nil)
	if err != nil || status != http.StatusOK || !loggedIn(body, user) {
		t.Errorf("GET %s/ as %s (served by %q): status %d, %v, logged in %v; want 200 logged in", base, user, by, status, err, loggedIn(body, user))
	}
}

// wantLoggedOut checks GET / at base shows client logged out.
func wantLoggedOut(t testing.TB, client *http.Client, base, who string) {
	t.Helper()
	status, by, body, err := tryGet(client, base+"/", nil)
	if err != nil || status != http.StatusOK || strings.Contains(body, "Hello, "+who) {
		t.Errorf("GET %s/ with %s's ended session (served by %q): status %d, %v, still logged in %v; want 200 logged out", base, who, by, status, err, strings.Contains(body, "Hello, "+who))
	}
}
