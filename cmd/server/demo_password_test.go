package main

import (
	"strings"
	"testing"

	"loginsvc/internal/redistest"
)

// The compose file's demo password is published: a service started with it
// says so loudly, and one started with another password does not.
func TestServeWarnsAboutTheDemoPassword(t *testing.T) {
	t.Parallel()
	const warning = "BOOTSTRAP_PASSWORD is the demo default of docker-compose.yml"
	redis := redistest.Start(t)
	for _, tc := range []struct {
		user, password string
		warns          bool
	}{
		{"demo", composeDemoPassword, true},
		{"owner", "a-password-nobody-has-read-anywhere", false},
	} {
		vars := env{"REDIS_URL": redis.URL(), "BOOTSTRAP_USER": tc.user, "BOOTSTRAP_PASSWORD": tc.password}
		s := startServer(t, vars)
		s.waitLog(t, "msg=\"bootstrap user created\"")
		out := s.out.String()
		if got := strings.Contains(out, "level=WARN") && strings.Contains(out, warning); got != tc.warns {
			t.Errorf("password %q: warned %v, want %v\n%s", tc.password, got, tc.warns, out)
		}
		if strings.Contains(out, tc.password) {
			t.Errorf("the log shows the password %q", tc.password)
		}
	}
}
