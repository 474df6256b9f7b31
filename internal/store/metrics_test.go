package store_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gather returns the registry's families by name.
func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	return byName
}

// sampleOf is the value (a histogram's count) of family name's series
// whose command label is command; -1 when there is none.
func sampleOf(fams map[string]*dto.MetricFamily, name, command string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if command != "" && (l.GetName() != "command" || l.GetValue() != command) {
				continue
			}
			switch {
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			case m.Counter != nil:
				return m.Counter.GetValue()
			}
		}
		if command == "" && m.Gauge != nil {
			return m.Gauge.GetValue()
		}
		if command == "" && m.Counter != nil {
			return m.Counter.GetValue()
		}
	}
	return -1
}

// Every command the stores send is timed by name; a missing key is no
// error, a Redis that is gone is, and the pool shows its connections.
func TestInstrumentTimesCommandsAndCountsErrors(t *testing.T) {
	t.Parallel()
	srv, rdb, _ := openRedis(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(rdb.Instrument()...)
	ctx := context.Background()

	for range 3 {
		if _, found, err := rdb.Sessions.Find(ctx, newHash()); err != nil || found {
			t.Fatalf("Find of no session: got found %v, err %v; want neither", found, err)
		}
	}
	fams := gather(t, reg)
	if got := sampleOf(fams, "loginsvc_redis_command_duration_seconds", "get"); got != 3 {
		t.Errorf("timed GETs: got %v, want 3", got)
	}
	if got := sampleOf(fams, "loginsvc_redis_command_errors_total", "get"); got > 0 {
		t.Errorf("GET errors after three misses: got %v, want none", got)
	}
	// The first run of a script is an EVALSHA that Redis answers NOSCRIPT,
	// then an EVAL: an error reply is an answer, not an error.
	if err := rdb.Users.Create(ctx, "metrics-user", "not-a-real-hash"); err != nil {
		t.Fatalf("Users.Create: %v", err)
	}
	fams = gather(t, reg)
	if got := sampleOf(fams, "loginsvc_redis_command_duration_seconds", "evalsha"); got < 1 {
		t.Errorf("timed EVALSHAs: got %v, want at least 1", got)
	}
	if got := sampleOf(fams, "loginsvc_redis_command_errors_total", "evalsha"); got > 0 {
		t.Errorf("EVALSHA errors after a NOSCRIPT reply: got %v, want none (a reply is no error)", got)
	}
	if got := sampleOf(fams, "loginsvc_redis_pool_conns", ""); got < 1 {
		t.Errorf("pool connections: got %v, want at least 1", got)
	}

	srv.Stop(t)
	if _, _, err := rdb.Sessions.Find(ctx, newHash()); err == nil {
		t.Fatal("Find with Redis stopped: got no error")
	}
	if got := sampleOf(gather(t, reg), "loginsvc_redis_command_errors_total", "get"); got < 1 {
		t.Errorf("GET errors with Redis stopped: got %v, want at least 1", got)
	}
}
