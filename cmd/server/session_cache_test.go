package main

import (
	"net/http"
	"testing"

	"loginsvc/internal/redistest"
)

// The start-up log says whether sessions are cached and, when not, why.
func TestServeSaysWhetherTheSessionCacheIsOn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		vars func(t *testing.T) env
		want string
	}{
		{"real Redis, default", func(t *testing.T) env { return env{"REDIS_URL": redistest.Start(t).URL()} },
			`msg="session cache on" max_age=2s`},
		{"SESSION_CACHE=off", func(t *testing.T) env {
			return env{"REDIS_URL": redistest.Start(t).URL(), "SESSION_CACHE": "off"}
		}, `msg="session cache off" reason="SESSION_CACHE=off"`},
		{"embedded Redis", func(t *testing.T) env { return env{} },
			`msg="session cache off" reason="the embedded Redis has no CLIENT TRACKING"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, tc.vars(t))
			s.waitStatus(t, "/readyz", http.StatusOK)
			s.waitLog(t, tc.want)
		})
	}
}
