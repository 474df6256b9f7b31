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

// Forward auth behind a proxy the service does not trust fails silently
// otherwise (logins cannot return to the app, every client is the proxy
// in the throttle): the start says so, once, naming TRUSTED_PROXIES.
func TestServeWarnsAboutForwardAuthWithoutTrustedProxies(t *testing.T) {
	t.Parallel()
	const warning = "but TRUSTED_PROXIES is empty"
	for _, tc := range []struct {
		name string
		vars env
		want bool
	}{
		{"no forward auth", env{}, false},
		{"allowed hosts", env{"AUTH_ALLOWED_HOSTS": "app.example.com"}, true},
		{"two-factor hosts", env{"AUTH_TWO_FACTOR_HOSTS": "admin.example.com"}, true},
		{"absolute login URL", env{"AUTH_LOGIN_URL": "https://auth.example.com/login/"}, true},
		{"a login path alone", env{"AUTH_LOGIN_URL": "/login/"}, false},
		{"allowed hosts behind a trusted proxy", env{"AUTH_ALLOWED_HOSTS": "app.example.com", "TRUSTED_PROXIES": "10.0.0.0/8"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig(nil, tc.vars.getenv)
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			if got := cfg.forwardAuthWithoutProxy(); got != tc.want {
				t.Errorf("forwardAuthWithoutProxy: got %v, want %v", got, tc.want)
			}
		})
	}

	redis := redistest.Start(t)
	for _, tc := range []struct {
		proxies string
		want    int
	}{{"", 1}, {"10.0.0.0/8", 0}} {
		s := startServer(t, env{"REDIS_URL": redis.URL(), "AUTH_ALLOWED_HOSTS": "app.example.com", "TRUSTED_PROXIES": tc.proxies})
		s.waitLog(t, `msg="redis topology"`)
		out := s.out.String()
		if got := strings.Count(out, warning); got != tc.want || got > 0 && !strings.Contains(out, "level=WARN") {
			t.Errorf("TRUSTED_PROXIES=%q with AUTH_ALLOWED_HOSTS: got %d warnings, want %d\n%s", tc.proxies, got, tc.want, out)
		}
	}
}
