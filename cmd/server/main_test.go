package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// TestMain removes the server binary that testkit.ServerBinary built, once
// every test has run.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := testkit.RemoveBuilt(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// A configuration mistake must stop the process with exit code 2 and one
// line on stderr that names what to fix, before anything starts.
func TestBadConfigurationExitsWithCode2(t *testing.T) {
	t.Parallel()
	bin := testkit.ServerBinary(t)
	tests := []struct {
		args   []string
		vars   []string
		naming string
	}{
		{vars: []string{"ADDR=8080"}, naming: "ADDR"},
		{vars: []string{"REDIS_URL=http://x"}, naming: "REDIS_URL"},
		{vars: []string{"SESSION_LIFETIME=abc"}, naming: "SESSION_LIFETIME"},
		{vars: []string{"SESSION_IDLE_TIMEOUT=x"}, naming: "SESSION_IDLE_TIMEOUT"},
		{vars: []string{"SESSION_COOKIE_NAME=a;b"}, naming: "SESSION_COOKIE_NAME"},
		{vars: []string{"COOKIE_SECURE=yes please"}, naming: "COOKIE_SECURE"},
		{vars: []string{"LOG_LEVEL=loud"}, naming: "LOG_LEVEL"},
		{vars: []string{"TRUSTED_PROXIES=10.0.0.0/33"}, naming: "TRUSTED_PROXIES"},
		{vars: []string{"SHUTDOWN_DRAIN=soon"}, naming: "SHUTDOWN_DRAIN"},
		{vars: []string{"BOOTSTRAP_USER=admin"}, naming: "BOOTSTRAP_PASSWORD"},
		{args: []string{"frobnicate"}, naming: `"frobnicate"`},
		{args: []string{"-addr", ":0", "extra"}, naming: `"extra"`},
		{args: []string{"-no-such-flag"}, naming: "-no-such-flag"},
		{args: []string{"user"}, naming: "usage: server user"},
		{args: []string{"user", "frobnicate", "alice"}, naming: "usage: server user"},
		{args: []string{"user", "list", "extra"}, naming: "usage: server user"},
		{args: []string{"user", "add"}, naming: "usage: server user"},
		{args: []string{"user", "list"}, naming: "REDIS_URL"},
		{args: []string{"user", "unlock"}, naming: "usage: server user"},
		{args: []string{"sessions"}, naming: "usage: server sessions"},
		{args: []string{"sessions", "list", "extra"}, naming: "usage: server sessions"},
		{args: []string{"sessions", "count", "--no-such-flag"}, naming: "-no-such-flag"},
		{args: []string{"sessions", "list"}, naming: "REDIS_URL"},
		{args: []string{"healthcheck", "extra"}, naming: `"extra"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(append(tt.vars, tt.args...), " "), func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(bin, tt.args...)
			// Only what the case sets: the developer's own REDIS_URL or
			// ADDR must not leak in.
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tt.vars...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("got %v, want the process to exit with code 2", err)
			}
			if got := exit.ExitCode(); got != 2 {
				t.Errorf("exit code: got %d, want 2 (stderr %q)", got, stderr.String())
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if len(lines) != 1 || !strings.HasSuffix(stderr.String(), "\n") {
				t.Errorf("stderr: got %q, want exactly one line", stderr.String())
			}
			if !strings.Contains(lines[0], tt.naming) {
				t.Errorf("stderr: got %q, want it to name %s", lines[0], tt.naming)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: got %q, want nothing", stdout.String())
			}
		})
	}
}

// An unknown user or session id stops the process with exit code 1 and
// one line on stderr naming it.
func TestUnknownNamesExitWithCode1(t *testing.T) {
	t.Parallel()
	bin := testkit.ServerBinary(t)
	rs := redistest.Start(t)
	tests := []struct {
		args   []string
		naming string
	}{
		{[]string{"sessions", "show", "AAAAAAAAAAAAAAAA"}, `session "AAAAAAAAAAAAAAAA"`},
		{[]string{"sessions", "revoke", "AAAAAAAAAAAAAAAA"}, `session "AAAAAAAAAAAAAAAA"`},
		{[]string{"sessions", "revoke", "--user", "ghost"}, `"ghost"`},
		{[]string{"sessions", "list", "--user", "ghost"}, `"ghost"`},
		{[]string{"user", "unlock", "ghost"}, `"ghost"`},
		{[]string{"user", "delete", "ghost"}, `"ghost"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(bin, tt.args...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "REDIS_URL=" + rs.URL()}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("got %v (stderr %q), want the process to exit with code 1", err, stderr.String())
			}
			if got := stderr.String(); strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") ||
				!strings.HasPrefix(got, "server: ") || !strings.Contains(got, tt.naming) {
				t.Errorf("stderr: got %q, want one line \"server: ...\" naming %s", got, tt.naming)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: got %q, want nothing", stdout.String())
			}
		})
	}
}
