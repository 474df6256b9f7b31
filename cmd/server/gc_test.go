package main

import "testing"

// TestGCDefaults: the server runs the collector at GOGC=400 and, under a
// cgroup memory limit, with GOMEMLIMIT at 80% of it; an operator's GOGC
// or GOMEMLIMIT wins, and without a limit none is set.
func TestGCDefaults(t *testing.T) {
	for _, tc := range []struct {
		name        string
		env         map[string]string
		cgroupMax   string
		wantPercent int
		wantLimit   int64
	}{
		{"no environment, no cgroup limit", nil, "", 400, 0},
		{"unlimited cgroup", nil, "max\n", 400, 0},
		{"cgroup limit of 512 MiB", nil, "536870912\n", 400, 429496729},
		{"operator's GOGC", map[string]string{"GOGC": "100"}, "", 0, 0},
		{"operator's GOMEMLIMIT", map[string]string{"GOMEMLIMIT": "1GiB"}, "536870912\n", 400, 0},
	} {
		g := gcDefaults(func(k string) string { return tc.env[k] }, tc.cgroupMax)
		if g.percent != tc.wantPercent || g.memoryLimit != tc.wantLimit {
			t.Errorf("%s: got GOGC %d and a limit of %d bytes set, want %d and %d (0: the runtime's)", tc.name, g.percent, g.memoryLimit, tc.wantPercent, tc.wantLimit)
		}
	}
}
