package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultAddrIsLoopbackOnlyWithTheEmbeddedRedis(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		vars env
		want string
		// note is what the start-up line says of where addr came from:
		// REDIS_URL's wider default must not go unsaid.
		note string
	}{
		{"embedded", nil, env{}, "127.0.0.1:8080", "loopback only"},
		{"REDIS_URL set", nil, env{"REDIS_URL": "redis://redis:6379/0", "DEVICE_COOKIE_KEY": testDeviceCookieKey}, ":8080", "default with REDIS_URL: all interfaces"},
		{"--redis-url set", []string{"--redis-url=redis://redis:6379/0"}, env{"DEVICE_COOKIE_KEY": testDeviceCookieKey}, ":8080", "default with REDIS_URL: all interfaces"},
		{"explicit ADDR wins", nil, env{"ADDR": ":9000"}, ":9000", "ADDR"},
		{"explicit ADDR wins with REDIS_URL", nil, env{"ADDR": "127.0.0.1:9000", "REDIS_URL": "redis://redis:6379/0", "DEVICE_COOKIE_KEY": testDeviceCookieKey}, "127.0.0.1:9000", "ADDR"},
	} {
		cfg, err := parseConfig(tc.args, tc.vars.getenv)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if cfg.Addr != tc.want {
			t.Errorf("%s: Addr got %q, want %q", tc.name, cfg.Addr, tc.want)
		}
		if got, _ := attr(cfg.logAttrs(), "addr_from").(string); !strings.Contains(got, tc.note) {
			t.Errorf("%s: addr_from in the start-up line: got %q, want it to contain %q", tc.name, got, tc.note)
		}
	}
}

func TestHelpPrintsEveryFlagAndSucceeds(t *testing.T) {
	var out strings.Builder
	// The flags' defaults are the environment's values: a password in
	// REDIS_URL is masked there as in the start-up line.
	vars := env{"REDIS_URL": "redis://app:help-must-not-show@redis:6379/0?sentinel_password=nor-this"}
	if err := run(t.Context(), []string{"--help"}, vars.getenv, strings.NewReader(""), &out); err != nil {
		t.Fatalf("run --help: got error %v, want nil", err)
	}
	for _, want := range []string{"-addr", "-redis-url", "-session-lifetime", "-session-idle-timeout", "-login-window", "SESSION_LIFETIME", "user add", "unlock", "sessions list", "--by-user", "revoke --user NAME", "user mfa status NAME", "user mfa reset NAME [--yes]", "redis://app:***@redis:6379/0", "-pprof", "PPROF"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help output lacks %q:\n%s", want, out.String())
		}
	}
	for _, secret := range []string{"help-must-not-show", "nor-this"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("--help output shows the password %q:\n%s", secret, out.String())
		}
	}
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, env{}.getenv)
	if err != nil {
		t.Fatalf("parseConfig with an empty environment: %v", err)
	}
	checkFields(t, []field{
		{"Addr", cfg.Addr, "127.0.0.1:8080"}, // embedded Redis: loopback only
		{"RedisURL", cfg.RedisURL, ""},
		{"SessionLifetime", cfg.SessionLifetime, 24 * time.Hour},
		{"SessionIdle", cfg.SessionIdle, 30 * time.Minute},
		{"CookieName", cfg.CookieName, "session_id"},
		{"CookieSecure", cfg.CookieSecure, false},
		{"LogLevel", cfg.LogLevel, slog.LevelInfo},
		{"ShutdownDrain", cfg.ShutdownDrain, 5 * time.Second},
		{"TrustedProxies", len(cfg.TrustedProxies), 0},
		{"LoginMaxFailures", cfg.LoginMaxFailures, 10},
		{"LoginMaxFailuresPerIP", cfg.LoginMaxFailuresPerIP, 50},
		{"LoginWindow", cfg.LoginWindow, 15 * time.Minute},
		{"BootstrapUser", cfg.BootstrapUser, ""},
		{"BootstrapPassword", cfg.BootstrapPassword, ""},
		{"SessionCache", cfg.SessionCache, true},
		{"LogFormat", cfg.LogFormat, "text"},
		{"MetricsAddr", cfg.MetricsAddr, "127.0.0.1:9090"},
		{"MetricsAddrSet", cfg.MetricsAddrSet, false},
		{"Pprof", cfg.Pprof, false},
	})
	if got := attr(cfg.logAttrs(), "pprof"); got != "off" {
		t.Errorf("pprof in the start-up line: got %v, want off", got)
	}
	if cfg.InstanceID == "" {
		t.Errorf("InstanceID: got empty, want the host name")
	}
}

// field is one config field and the value a test wants in it.
type field struct {
	name      string
	got, want any
}

func checkFields(t *testing.T, fields []field) {
	t.Helper()
	for _, f := range fields {
		if f.got != f.want {
			t.Errorf("%s: got %v, want %v", f.name, f.got, f.want)
		}
	}
}

func TestParseConfigValues(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		vars  env
		check func(t *testing.T, c config)
	}{
		{
			name: "environment sets every field",
			vars: env{
				"ADDR": "127.0.0.1:9000", "REDIS_URL": "redis://redis:6379/1", "SESSION_LIFETIME": "2h",
				"SESSION_IDLE_TIMEOUT": "10m", "SESSION_COOKIE_NAME": "sid", "LOG_LEVEL": "debug",
				"INSTANCE_ID": "app-1", "TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7", "SHUTDOWN_DRAIN": "1s",
				"LOGIN_MAX_FAILURES": "5", "LOGIN_MAX_FAILURES_PER_IP": "20", "LOGIN_WINDOW": "5m",
				"BOOTSTRAP_USER": "admin", "BOOTSTRAP_PASSWORD": "change-me-now",
				"LOGIN_MAX_ATTEMPTS_PER_IP": "120", "DEVICE_COOKIE_KEY": testDeviceCookieKey + ", " + hex.EncodeToString([]byte("the-key-before-the-rotation-32by")),
				"SESSION_CACHE": "off", "PPROF": "on",
			},
			check: func(t *testing.T, c config) {
				checkFields(t, []field{
					{"Addr", c.Addr, "127.0.0.1:9000"},
					{"RedisURL", c.RedisURL, "redis://redis:6379/1"},
					{"SessionLifetime", c.SessionLifetime, 2 * time.Hour},
					{"SessionIdle", c.SessionIdle, 10 * time.Minute},
					{"CookieName", c.CookieName, "sid"},
					{"LogLevel", c.LogLevel, slog.LevelDebug},
					{"InstanceID", c.InstanceID, "app-1"},
					{"TrustedProxies", fmt.Sprint(c.TrustedProxies), "[10.0.0.0/8 192.168.1.7/32]"},
					{"ShutdownDrain", c.ShutdownDrain, time.Second},
					{"LoginMaxFailures", c.LoginMaxFailures, 5},
					{"LoginMaxFailuresPerIP", c.LoginMaxFailuresPerIP, 20},
					{"LoginWindow", c.LoginWindow, 5 * time.Minute},
					{"BootstrapUser", c.BootstrapUser, "admin"},
					{"BootstrapPassword", c.BootstrapPassword, "change-me-now"},
					{"LoginMaxAttemptsPerIP", c.LoginMaxAttemptsPerIP, 120},
					{"DeviceCookieKey", string(c.DeviceCookieKey), "test-only-device-cookie-key-32by"},
					{"OldDeviceCookieKeys", fmt.Sprintf("%q", c.OldDeviceCookieKeys), `["the-key-before-the-rotation-32by"]`},
					{"SessionCache", c.SessionCache, false},
					{"Pprof", c.Pprof, true},
				})
			},
		},
		{
			name: "flags override the environment",
			args: []string{"-addr", "127.0.0.1:7000", "-session-lifetime", "90m", "-session-cookie-name", "from_flag", "-log-level", "warn"},
			vars: env{"ADDR": ":9000", "SESSION_LIFETIME": "2h", "SESSION_COOKIE_NAME": "from_env", "LOG_LEVEL": "debug"},
			check: func(t *testing.T, c config) {
				if c.Addr != "127.0.0.1:7000" || c.SessionLifetime != 90*time.Minute || c.CookieName != "from_flag" || c.LogLevel != slog.LevelWarn {
					t.Errorf("got addr %q lifetime %v cookie %q level %v, want the flags' 127.0.0.1:7000 1h30m0s from_flag WARN",
						c.Addr, c.SessionLifetime, c.CookieName, c.LogLevel)
				}
			},
		},
		{
			name: "a good flag overrides a bad variable",
			args: []string{"-session-lifetime", "1h"},
			vars: env{"SESSION_LIFETIME": "abc"},
			check: func(t *testing.T, c config) {
				if c.SessionLifetime != time.Hour {
					t.Errorf("SessionLifetime: got %v, want 1h", c.SessionLifetime)
				}
			},
		},
		{
			name: "SESSION_IDLE_TIMEOUT=0 disables the idle timeout",
			vars: env{"SESSION_IDLE_TIMEOUT": "0"},
			check: func(t *testing.T, c config) {
				if c.SessionIdle != 0 {
					t.Errorf("SessionIdle: got %v, want 0", c.SessionIdle)
				}
			},
		},
		{
			name: "COOKIE_SECURE=true adds the __Host- prefix",
			vars: env{"COOKIE_SECURE": "true"},
			check: func(t *testing.T, c config) {
				if !c.CookieSecure || c.CookieName != "__Host-session_id" {
					t.Errorf("got secure %v cookie %q, want true and __Host-session_id", c.CookieSecure, c.CookieName)
				}
			},
		},
		{
			name: "COOKIE_SECURE=true keeps a name that already has the prefix",
			vars: env{"COOKIE_SECURE": "true", "SESSION_COOKIE_NAME": "__Host-sid"},
			check: func(t *testing.T, c config) {
				if c.CookieName != "__Host-sid" {
					t.Errorf("CookieName: got %q, want __Host-sid", c.CookieName)
				}
			},
		},
		{
			name: "COOKIE_SECURE=false leaves the name alone",
			vars: env{"COOKIE_SECURE": "false", "SESSION_COOKIE_NAME": "sid"},
			check: func(t *testing.T, c config) {
				if c.CookieSecure || c.CookieName != "sid" {
					t.Errorf("got secure %v cookie %q, want false and sid", c.CookieSecure, c.CookieName)
				}
			},
		},
		{
			name: "SHUTDOWN_DRAIN=0s turns the drain off",
			vars: env{"SHUTDOWN_DRAIN": "0s"},
			check: func(t *testing.T, c config) {
				if c.ShutdownDrain != 0 {
					t.Errorf("ShutdownDrain: got %v, want 0", c.ShutdownDrain)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig(tt.args, tt.vars.getenv)
			if err != nil {
				t.Fatalf("parseConfig(%q): %v", tt.args, err)
			}
			tt.check(t, cfg)
		})
	}
}

func TestForwardAuthConfig(t *testing.T) {
	for _, tc := range []struct {
		name       string
		vars       env
		wantCookie string
		wantDomain string
		wantHosts  string
		wantLogin  string
	}{
		{"defaults", env{}, "session_id", "", "", "/login/"},
		{"TLS, host-only", env{"COOKIE_SECURE": "true"}, "__Host-session_id", "", "", "/login/"},
		{"TLS with a domain: __Secure-, as __Host- forbids Domain", env{"COOKIE_SECURE": "true", "COOKIE_DOMAIN": ".Example.COM"}, "__Secure-session_id", "example.com", "", "/login/"},
		{"a domain without TLS", env{"COOKIE_DOMAIN": "example.com"}, "session_id", "example.com", "", "/login/"},
		{"allowed hosts and login URL", env{"AUTH_ALLOWED_HOSTS": " App.example.com, wiki.example.com:8443,127.0.0.1:8080", "AUTH_LOGIN_URL": "https://auth.example.com/login/"},
			"session_id", "", "app.example.com,wiki.example.com:8443,127.0.0.1:8080", "https://auth.example.com/login/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(nil, tc.vars.getenv)
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			checkFields(t, []field{
				{"CookieName", c.CookieName, tc.wantCookie},
				{"CookieDomain", c.CookieDomain, tc.wantDomain},
				{"AuthAllowedHosts", strings.Join(c.AuthAllowedHosts, ","), tc.wantHosts},
				{"AuthLoginURL", c.AuthLoginURL, tc.wantLogin},
			})
		})
	}
}

func TestParseConfigRejectsBadVariables(t *testing.T) {
	tests := []struct {
		vars   env
		args   []string
		naming string // what the message must name
	}{
		{vars: env{"ADDR": "8080"}, naming: "ADDR"},
		{vars: env{"ADDR": "localhost:"}, naming: "ADDR"},
		{vars: env{"REDIS_URL": "http://x"}, naming: "REDIS_URL"},
		{vars: env{"REDIS_URL": "redis://"}, naming: "REDIS_URL"},
		{vars: env{"REDIS_URL": "redis:///0"}, naming: "REDIS_URL"},
		{vars: env{"REDIS_URL": "redis+sentinel://h1:26379,h2:26379"}, naming: "REDIS_URL"},               // no master name
		{vars: env{"REDIS_URL": "redis+sentinel://h1:26379/mymaster/x"}, naming: "REDIS_URL"},             // db not a number
		{vars: env{"REDIS_URL": "redis+sentinel://h1:26379/mymaster?master_name=x"}, naming: "REDIS_URL"}, // unknown parameter
		{vars: env{"REDIS_URL": "redis+sentinel://h1:26379,,h2/mymaster"}, naming: "REDIS_URL"},           // empty host
		{vars: env{"REDIS_URL": "redis+cluster://h1:7000,h2:notaport"}, naming: "REDIS_URL"},
		{vars: env{"REDIS_URL": "redis+cluster://h1:7000/1"}, naming: "REDIS_URL"}, // Cluster has db 0 only
		{vars: env{"REDIS_URL": "redis+cluster://"}, naming: "REDIS_URL"},
		{vars: env{"REDIS_URL": "redis+ring://h1:7000"}, naming: "REDIS_URL"},
		{vars: env{"SESSION_LIFETIME": "abc"}, naming: "SESSION_LIFETIME"},
		{vars: env{"SESSION_LIFETIME": "0"}, naming: "SESSION_LIFETIME"},
		{vars: env{"SESSION_LIFETIME": "-1h"}, naming: "SESSION_LIFETIME"},
		{vars: env{"SESSION_IDLE_TIMEOUT": "x"}, naming: "SESSION_IDLE_TIMEOUT"},
		{vars: env{"SESSION_IDLE_TIMEOUT": "-5m"}, naming: "SESSION_IDLE_TIMEOUT"},
		{vars: env{"SESSION_COOKIE_NAME": "a b"}, naming: "SESSION_COOKIE_NAME"},
		{vars: env{"SESSION_COOKIE_NAME": "a;b"}, naming: "SESSION_COOKIE_NAME"},
		{vars: env{"SESSION_COOKIE_NAME": "a\nb"}, naming: "SESSION_COOKIE_NAME"},
		{vars: env{"SESSION_COOKIE_NAME": strings.Repeat("c", 65)}, naming: "SESSION_COOKIE_NAME"},
		{vars: env{"COOKIE_SECURE": "yes please"}, naming: "COOKIE_SECURE"},
		{vars: env{"LOG_LEVEL": "loud"}, naming: "LOG_LEVEL"},
		{vars: env{"TRUSTED_PROXIES": "10.0.0.0/33"}, naming: "TRUSTED_PROXIES"},
		{vars: env{"TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"}, naming: "TRUSTED_PROXIES"},
		{vars: env{"SHUTDOWN_DRAIN": "soon"}, naming: "SHUTDOWN_DRAIN"},
		{vars: env{"SHUTDOWN_DRAIN": "-1s"}, naming: "SHUTDOWN_DRAIN"},
		{vars: env{"LOGIN_MAX_FAILURES": "0"}, naming: "LOGIN_MAX_FAILURES"},
		{vars: env{"LOGIN_MAX_FAILURES": "101"}, naming: "LOGIN_MAX_FAILURES"},
		{vars: env{"LOGIN_MAX_FAILURES_PER_IP": "many"}, naming: "LOGIN_MAX_FAILURES_PER_IP"},
		{vars: env{"LOGIN_WINDOW": "2h"}, naming: "LOGIN_WINDOW"},
		{vars: env{"LOGIN_WINDOW": "500ms"}, naming: "LOGIN_WINDOW"},
		{vars: env{"LOGIN_MAX_FAILURES": "10", "LOGIN_WINDOW": "1m"}, naming: "LOGIN_MAX_FAILURES"}, // 600 an hour
		{vars: env{"BOOTSTRAP_USER": "admin", "BOOTSTRAP_PASSWORD": "short"}, naming: "BOOTSTRAP_PASSWORD"},
		{vars: env{"BOOTSTRAP_USER": "ad{min}", "BOOTSTRAP_PASSWORD": "long enough password"}, naming: "BOOTSTRAP_USER"},
		{vars: env{"SESSION_COOKIE_NAME": "__Host-sid"}, naming: "SESSION_COOKIE_NAME"}, // not Secure: browsers drop it
		{vars: env{"BOOTSTRAP_USER": "admin"}, naming: "BOOTSTRAP_PASSWORD"},
		{vars: env{"BOOTSTRAP_PASSWORD": "change-me-now"}, naming: "BOOTSTRAP_USER"},
		{vars: env{"LOGIN_MAX_ATTEMPTS_PER_IP": "0"}, naming: "LOGIN_MAX_ATTEMPTS_PER_IP"},
		{vars: env{"REDIS_URL": "redis://redis:6379/0"}, naming: "DEVICE_COOKIE_KEY"},                                                         // required outside the embedded mode
		{vars: env{"REDIS_URL": "redis://redis:6379/0", "DEVICE_COOKIE_KEY": "c2hvcnQ="}, naming: "DEVICE_COOKIE_KEY"},                        // 5 bytes
		{vars: env{"REDIS_URL": "redis://redis:6379/0", "DEVICE_COOKIE_KEY": strings.Repeat("not a key! ", 6)}, naming: "DEVICE_COOKIE_KEY"},  // neither hex nor base64 of 32 bytes
		{vars: env{"DEVICE_COOKIE_KEY": "00ff"}, naming: "DEVICE_COOKIE_KEY"},                                                                 // set, even embedded: must be right
		{vars: env{"REDIS_URL": "redis://redis:6379/0", "DEVICE_COOKIE_KEY": testDeviceCookieKey + ",c2hvcnQ="}, naming: "DEVICE_COOKIE_KEY"}, // the old key of a rotation, 5 bytes
		{vars: env{"REDIS_URL": "redis://redis:6379/0", "DEVICE_COOKIE_KEY": testDeviceCookieKey + ","}, naming: "DEVICE_COOKIE_KEY"},         // an empty old key
		{vars: env{"SESSION_COOKIE_NAME": "__Secure-sid"}, naming: "SESSION_COOKIE_NAME"},                                                     // not Secure: browsers drop it
		{vars: env{"COOKIE_DOMAIN": "com"}, naming: "COOKIE_DOMAIN"},                                                                          // a whole top-level domain
		{vars: env{"COOKIE_DOMAIN": "example.com:8080"}, naming: "COOKIE_DOMAIN"},
		{vars: env{"COOKIE_DOMAIN": "exa mple.com"}, naming: "COOKIE_DOMAIN"},
		{vars: env{"COOKIE_DOMAIN": "192.168.1.7"}, naming: "COOKIE_DOMAIN"},
		{vars: env{"COOKIE_DOMAIN": "bücher.example"}, naming: "COOKIE_DOMAIN"}, // IDNs in their xn-- form
		{vars: env{"COOKIE_DOMAIN": "example.com", "SESSION_COOKIE_NAME": "__Host-sid", "COOKIE_SECURE": "true"}, naming: "SESSION_COOKIE_NAME"},
		{vars: env{"AUTH_ALLOWED_HOSTS": "app.example.com,https://wiki.example.com"}, naming: "AUTH_ALLOWED_HOSTS"},
		{vars: env{"AUTH_ALLOWED_HOSTS": "app.example.com/"}, naming: "AUTH_ALLOWED_HOSTS"},
		{vars: env{"AUTH_ALLOWED_HOSTS": "*.example.com"}, naming: "AUTH_ALLOWED_HOSTS"},
		{vars: env{"AUTH_ALLOWED_HOSTS": "app.example.com:99999"}, naming: "AUTH_ALLOWED_HOSTS"},
		{vars: env{"AUTH_LOGIN_URL": "//evil.example/login/"}, naming: "AUTH_LOGIN_URL"},
		{vars: env{"AUTH_LOGIN_URL": "login"}, naming: "AUTH_LOGIN_URL"},
		{vars: env{"AUTH_LOGIN_URL": "javascript:alert(1)"}, naming: "AUTH_LOGIN_URL"},
		{vars: env{"LOG_FORMAT": "yaml"}, naming: "LOG_FORMAT"},
		{vars: env{"METRICS_ADDR": "9090"}, naming: "METRICS_ADDR"},
		{vars: env{"METRICS_ADDR": "on"}, naming: "METRICS_ADDR"},
		{args: []string{"-session-lifetime", "abc"}, naming: "SESSION_LIFETIME"},
		{vars: env{"SESSION_CACHE": "yes"}, naming: "SESSION_CACHE"},
		{vars: env{"SESSION_CACHE": "true"}, naming: "SESSION_CACHE"},
		{vars: env{"PPROF": "true"}, naming: "PPROF"},
		{vars: env{"PPROF": "1"}, naming: "PPROF"},
		{args: []string{"-pprof", "yes"}, naming: "PPROF"},
		{args: []string{"-no-such-flag"}, naming: "-no-such-flag"},
		{args: []string{"extra"}, naming: `"extra"`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v%q", map[string]string(tt.vars), tt.args), func(t *testing.T) {
			_, err := parseConfig(tt.args, tt.vars.getenv)
			checkUsageError(t, err, tt.naming)
		})
	}
}

// checkUsageError checks err is a usageError whose message is one line
// naming want.
func checkUsageError(t *testing.T, err error, want string) {
	t.Helper()
	var ue usageError
	if !errors.As(err, &ue) {
		t.Fatalf("got error %v (%T), want a usageError", err, err)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("got message %q, want one line", msg)
	}
	if !strings.Contains(msg, want) {
		t.Errorf("got message %q, want it to name %s", msg, want)
	}
}

// A Redis password must stay out of error messages and the start-up log
// line, whatever shape the URL around it has.
func TestRedisPasswordIsNeverShown(t *testing.T) {
	const secret = "hunter2-s3cret"
	t.Run("in the error for a bad REDIS_URL", func(t *testing.T) {
		for _, tt := range []struct{ name, raw string }{
			{"not redis scheme", "http://user:" + secret + "@x"},
			{"no host", "redis://:" + secret + "@"},
			{"bad port", "redis://user:" + secret + "@host:port/0"},
			{"bad db", "redis://user:" + secret + "@host:6379/notadb"},
			{"one slash short", "redis:/user:" + secret + "@host:6379/0"},
			{"colon forgotten", "redis//user:" + secret + "@host:6379/0"},
			{"sentinel without master", "redis+sentinel://user:" + secret + "@h1:26379,h2:26379"},
			{"sentinel password, bad parameter", "redis+sentinel://h1/m?sentinel_password=" + secret + "&x=1"},
			{"cluster with a db", "rediss+cluster://user:" + secret + "@h1:7000,h2:7001/3"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := parseConfig(nil, env{"REDIS_URL": tt.raw}.getenv)
				checkUsageError(t, err, "REDIS_URL")
				if strings.Contains(err.Error(), secret) {
					t.Errorf("got message %q, want the password masked", err.Error())
				}
			})
		}
	})
	t.Run("in logAttrs", func(t *testing.T) {
		for _, tt := range []struct{ raw, want string }{
			{"redis://user:" + secret + "@redis.internal:6379/0", "redis://user:***@redis.internal:6379/0"},
			{"redis://:" + secret + "@redis.internal:6379/0", "redis://:***@redis.internal:6379/0"},
			{"rediss://default:" + secret + "@redis.internal:6380/2", "rediss://default:***@redis.internal:6380/2"},
			{"redis://redis.internal:6379/0", "redis://redis.internal:6379/0"},
			{"redis+sentinel://app:" + secret + "@s1:26379,s2:26379/mymaster/0?sentinel_username=sent&sentinel_password=" + secret,
				"redis+sentinel://app:***@s1:26379,s2:26379/mymaster/0?sentinel_username=sent&sentinel_password=***"},
			{"rediss+sentinel://s1,s2/mymaster?sentinel_password=" + secret, "rediss+sentinel://s1,s2/mymaster?sentinel_password=***"},
			{"redis+cluster://:" + secret + "@n1:7000,n2:7001,n3:7002", "redis+cluster://:***@n1:7000,n2:7001,n3:7002"},
		} {
			cfg, err := parseConfig(nil, env{"REDIS_URL": tt.raw, "BOOTSTRAP_USER": "admin", "BOOTSTRAP_PASSWORD": secret, "DEVICE_COOKIE_KEY": testDeviceCookieKey}.getenv)
			if err != nil {
				t.Fatalf("parseConfig with REDIS_URL %q: %v", tt.raw, err)
			}
			attrs := cfg.logAttrs()
			if got := attr(attrs, "redis_url"); got != tt.want {
				t.Errorf("redis_url: got %q, want %q", got, tt.want)
			}
			if got := attr(attrs, "bootstrap_password"); got != "***" {
				t.Errorf("bootstrap_password: got %q, want ***", got)
			}
			if got := attr(attrs, "device_cookie_key"); got != "***" {
				t.Errorf("device_cookie_key: got %q, want ***", got)
			}
			if line := fmt.Sprint(attrs...); strings.Contains(line, secret) {
				t.Errorf("logAttrs shows the password: %s", line)
			}
		}
	})
	t.Run("embedded Redis in logAttrs", func(t *testing.T) {
		cfg, err := parseConfig(nil, env{}.getenv)
		if err != nil {
			t.Fatal(err)
		}
		if got := attr(cfg.logAttrs(), "redis_url"); got != "(embedded)" {
			t.Errorf("redis_url: got %q, want (embedded)", got)
		}
	})
}

// attr returns the value after key in slog-style key/value pairs.
func attr(kv []any, key string) any {
	i := slices.Index(kv, any(key))
	if i < 0 || i%2 != 0 || i+1 >= len(kv) {
		return nil
	}
	return kv[i+1]
}

// --help names each flag's kind (a duration as duration, a number as int,
// a boolean bare, as the flag package shows its own), states one default
// per flag, and --version prints the module and revision; both exit 0.
func TestHelpShowsKindsAndVersion(t *testing.T) {
	var out strings.Builder
	if err := run(t.Context(), []string{"--help"}, env{}.getenv, strings.NewReader(""), &out); err != nil {
		t.Fatalf("run --help: %v", err)
	}
	help := out.String()
	for _, want := range []string{
		"\n  -session-lifetime duration\n", "\n  -session-idle-timeout duration\n", "\n  -shutdown-drain duration\n",
		"\n  -login-window duration\n", "\n  -reauth-max-age duration\n", "\n  -login-max-failures int\n",
		"\n  -max-sessions-per-user int\n", "\n  -addr host:port\n", "\n  -cookie-secure\n", "\n  -require-two-factor\n", "\n  -version\n",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q:\n%s", want, help)
		}
	}
	if strings.Contains(help, " string\n") {
		t.Errorf("--help still shows a flag as string:\n%s", help)
	}
	_, addrLine, _ := strings.Cut(help, "\n  -addr host:port\n")
	addrLine, _, _ = strings.Cut(addrLine, "\n")
	if n := strings.Count(addrLine, "default"); n != 1 {
		t.Errorf("-addr's description states %d defaults, want 1: %q", n, addrLine)
	}
	// A boolean may be given alone; the check is still parseConfig's.
	if cfg, err := parseConfig([]string{"--cookie-secure", "--require-two-factor"}, env{}.getenv); err != nil || !cfg.CookieSecure || !cfg.RequireTwoFactor {
		t.Errorf("--cookie-secure --require-two-factor: got secure %v, two factor %v, err %v; want both true", cfg.CookieSecure, cfg.RequireTwoFactor, err)
	}
	checkUsageError(t, func() error { _, err := parseConfig([]string{"--session-lifetime=soon"}, env{}.getenv); return err }(), "SESSION_LIFETIME")

	out.Reset()
	if err := run(t.Context(), []string{"--version"}, env{}.getenv, strings.NewReader(""), &out); err != nil {
		t.Fatalf("run --version: %v", err)
	}
	if got := out.String(); !strings.Contains(got, " revision ") || !strings.Contains(got, "go1.") {
		t.Errorf("--version: got %q, want the module, its version, the VCS revision and Go's version", got)
	}
}
