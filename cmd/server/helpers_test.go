package main

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/testkit"
)

// testDeviceCookieKey is a DEVICE_COOKIE_KEY for the tests (base64 of 32
// bytes), test-only.
const testDeviceCookieKey = "dGVzdC1vbmx5LWRldmljZS1jb29raWUta2V5LTMyYnk="

// env is a fake environment for run and parseConfig.
type env map[string]string

func (e env) getenv(name string) string { return e[name] }

// testServer is one in-process run of the service (run with no arguments).
type testServer struct {
	addr   string // 127.0.0.1:PORT
	base   string // http://127.0.0.1:PORT
	out    *testkit.Buffer
	cancel context.CancelFunc
	exited chan struct{} // closed when run has returned
	err    error         // run's result, read after exited is closed
}

// startServer runs the whole service in-process on a free loopback port
// with the given environment (ADDR is set here; SHUTDOWN_DRAIN defaults to
// 0s so tests that do not look at the drain stop at once, METRICS_ADDR to
// off). It is stopped
// in t.Cleanup, and its output is logged if the test failed.
func startServer(t *testing.T, vars env) *testServer {
	t.Helper()
	vars = maps.Clone(vars)
	if vars == nil {
		vars = env{}
	}
	addr := testkit.FreeAddr(t)
	vars["ADDR"] = addr
	if _, ok := vars["SHUTDOWN_DRAIN"]; !ok {
		vars["SHUTDOWN_DRAIN"] = "0s"
	}
	if _, ok := vars["DEVICE_COOKIE_KEY"]; !ok && vars["REDIS_URL"] != "" {
		vars["DEVICE_COOKIE_KEY"] = testDeviceCookieKey // required with REDIS_URL
	}
	if _, ok := vars["METRICS_ADDR"]; !ok {
		// Many test servers run at once: the default 127.0.0.1:9090
		// would go to one of them and warn in all the others.
		vars["METRICS_ADDR"] = "off"
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{addr: addr, base: "http://" + addr, out: &testkit.Buffer{}, cancel: cancel, exited: make(chan struct{})}
	go func() {
		defer close(s.exited)
		s.err = run(ctx, nil, vars.getenv, strings.NewReader(""), s.out)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.exited:
			if s.err != nil {
				t.Errorf("run returned %v, want nil after cancel", s.err)
			}
		case <-time.After(testkit.WaitTimeout):
			t.Errorf("run did not return %v after cancel", testkit.WaitTimeout)
		}
		if t.Failed() {
			t.Logf("server output:\n%s", s.out.String())
		}
	})
	return s
}

// stop cancels the server's context and returns run's result.
func (s *testServer) stop(t *testing.T) error {
	t.Helper()
	s.cancel()
	select {
	case <-s.exited:
		return s.err
	case <-time.After(testkit.WaitTimeout):
		t.Fatalf("run did not return %v after cancel", testkit.WaitTimeout)
		return nil
	}
}

// failIfExited stops the test when run has already returned: nothing the
// test waits for will happen then.
func (s *testServer) failIfExited(t *testing.T) {
	t.Helper()
	select {
	case <-s.exited:
		t.Fatalf("run returned early: %v", s.err)
	default:
	}
}

// waitStatus polls path until it answers want.
func (s *testServer) waitStatus(t *testing.T, path string, want int) {
	t.Helper()
	c := testkit.Browser(t)
	testkit.Eventually(t, "GET "+path+" answers "+http.StatusText(want), 0, func() (bool, string) {
		s.failIfExited(t)
		resp, err := c.Get(s.base + path)
		if err != nil {
			return false, err.Error()
		}
		_ = resp.Body.Close()
		return resp.StatusCode == want, "status " + resp.Status
	})
}

// waitLog waits until the server's output contains s.
func (s *testServer) waitLog(t *testing.T, want string) {
	t.Helper()
	testkit.Eventually(t, "server output contains "+want, 0, func() (bool, string) {
		s.failIfExited(t)
		return strings.Contains(s.out.String(), want), "not yet logged"
	})
}

// get returns the status and body of GET url.
func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// postLogin submits the login form and returns the response status.
func postLogin(t *testing.T, c *http.Client, base, user, password string) int {
	t.Helper()
	resp, err := c.PostForm(base+"/login/", url.Values{"username": {user}, "password": {password}})
	if err != nil {
		t.Fatalf("POST /login/: %v", err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// login logs in like a browser and checks the home page greets the user.
func login(t *testing.T, base, user, password string) *http.Client {
	t.Helper()
	c := testkit.Browser(t)
	if got := postLogin(t, c, base, user, password); got != http.StatusSeeOther {
		t.Fatalf("POST /login/ as %q: got status %d, want %d", user, got, http.StatusSeeOther)
	}
	status, body := get(t, c, base+"/")
	if status != http.StatusOK || !strings.Contains(body, "Hello, "+user) {
		t.Fatalf("GET / after login as %q: got status %d and body\n%s\nwant 200 and %q", user, status, body, "Hello, "+user)
	}
	return c
}

// startLoggedIn starts the service on redisURL with the bootstrap admin
// and returns it with a browser logged in as the admin.
func startLoggedIn(t *testing.T, redisURL string) (*testServer, *http.Client) {
	t.Helper()
	s := startServer(t, bootstrapEnv(redisURL))
	s.waitStatus(t, "/readyz", http.StatusOK)
	s.waitLog(t, `msg="bootstrap user created" user=admin`)
	return s, login(t, s.base, adminUser, adminPassword)
}
