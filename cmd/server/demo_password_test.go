package main

import (
	"strings"
	"testing"

	"loginsvc/internal/redistest"
)

// The compose file's demo password and device cookie key are published: a
// service started with either says so loudly, and one started with its own
// does not.
func TestServeWarnsAboutTheDemoPassword(t *testing.T) {
	t.Parallel()
	const (
		passwordWarning = "BOOTSTRAP_PASSWORD is the demo default of docker-compose.yml"
		keyWarning      = "DEVICE_COOKIE_KEY is or lists the demo default of docker-compose.yml"
	)
	redis := redistest.Start(t)
	for _, tc := range []struct {
		user, password, key string
		warnsPass, warnsKey bool
	}{
		{"demo", composeDemoPassword, composeDemoDeviceKey, true, true},
		{"owner", "a-password-nobody-has-read-anywhere", testDeviceCookieKey, false, false},
		// Rotating away from the demo key still accepts it: still a warning.
		{"rotating", "a-password-nobody-has-read-anywhere", testDeviceCookieKey + "," + composeDemoDeviceKey, false, true},
	} {
		vars := env{"REDIS_URL": redis.URL(), "BOOTSTRAP_USER": tc.user, "BOOTSTRAP_PASSWORD": tc.password, "DEVICE_COOKIE_KEY": tc.key}
		s := startServer(t, vars)
		s.waitLog(t, "msg=\"bootstrap user created\"")
		out := s.out.String()
		if got := strings.Contains(out, "level=WARN") && strings.Contains(out, passwordWarning); got != tc.warnsPass {
			t.Errorf("password %q: warned %v, want %v\n%s", tc.password, got, tc.warnsPass, out)
		}
		if got := strings.Contains(out, "level=WARN") && strings.Contains(out, keyWarning); got != tc.warnsKey {
			t.Errorf("device cookie key %q: warned %v, want %v\n%s", tc.key, got, tc.warnsKey, out)
		}
		for _, secret := range []string{tc.password, tc.key} {
			if strings.Contains(out, secret) {
				t.Errorf("the log shows the secret %q", secret)
			}
		}
	}
}
