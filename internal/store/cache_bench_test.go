package store_test

import (
	"context"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"loginsvc/internal/redistest"
)

// BenchmarkSessionFind measures a steady Find of one session, the read of
// every logged-in page view, with the session cache on and off, and
// reports the Redis commands each Find costs (INFO commandstats deltas,
// the channel's health pings included) and the share answered from
// memory.
//
//	go test -run '^$' -bench SessionFind ./internal/store
func BenchmarkSessionFind(b *testing.B) {
	for _, bc := range []struct {
		name  string
		cache bool
	}{{"cache_on", true}, {"cache_off", false}} {
		b.Run(bc.name, func(b *testing.B) {
			srv := redistest.Start(b)
			admin := srv.Client(b)
			rdb := open(b, srv.URL())
			if bc.cache {
				rdb = openCached(b, srv.URL())
			}
			h := newSession(b, rdb, "alice", `{"deadline":"2026-12-02T19:34:21Z","values":{"username":"alice"}}`)
			find(b, rdb, h)
			time.Sleep(10 * time.Millisecond) // the invalidation of Create
			find(b, rdb, h)

			before, stats := totalCalls(b, admin), rdb.CacheStats()
			for b.Loop() {
				if _, ok, err := rdb.Sessions.Find(context.Background(), h); err != nil || !ok {
					b.Fatalf("Find: got found %v, %v; want the session", ok, err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(totalCalls(b, admin)-before-1)/float64(b.N), "redis-cmds/op")
			if bc.cache {
				after := rdb.CacheStats()
				b.ReportMetric(float64(after.Hits-stats.Hits)/float64(b.N), "hit-rate")
			}
		})
	}
}

// BenchmarkCacheInvalidationDelay measures how long after a logout on
// replica b (Delete returned) replica a stops serving the session it had
// cached, and prints the distribution. Each op is one try; run 500:
//
//	go test -run '^$' -bench CacheInvalidationDelay -benchtime 500x ./internal/store
func BenchmarkCacheInvalidationDelay(b *testing.B) {
	srv := redistest.Start(b)
	a, other := openCached(b, srv.URL()), openCached(b, srv.URL())
	ctx := context.Background()
	var delays []time.Duration
	for b.Loop() {
		b.StopTimer()
		h := newSession(b, a, "alice", "doc")
		cached(b, a, h, "doc")
		b.StartTimer()
		if err := other.Sessions.Delete(ctx, h, "alice"); err != nil {
			b.Fatalf("Delete: %v", err)
		}
		done := time.Now()
		for {
			_, ok, err := a.Sessions.Find(ctx, h)
			if err != nil {
				b.Fatalf("Find: %v", err)
			}
			if !ok {
				break
			}
			runtime.Gosched()
		}
		delays = append(delays, time.Since(done))
	}
	slices.Sort(delays)
	q := func(p float64) time.Duration { return delays[min(len(delays)-1, int(p*float64(len(delays))))] }
	b.ReportMetric(float64(q(0.50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(q(0.99).Microseconds()), "p99-µs")
	b.ReportMetric(float64(delays[len(delays)-1].Microseconds()), "max-µs")
	b.Logf("invalidation delay over %d tries: p50 %v, p99 %v, max %v", len(delays), q(0.50), q(0.99), delays[len(delays)-1])
}

// totalCalls is the number of commands Redis has run so far (the INFO
// that reads it counts itself).
func totalCalls(b *testing.B, admin *redis.Client) int64 {
	b.Helper()
	info, err := admin.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatalf("INFO commandstats: %v", err)
	}
	var n int64
	for _, m := range regexp.MustCompile(`(?m)^cmdstat_[^:]+:calls=(\d+)`).FindAllStringSubmatch(info, -1) {
		c, _ := strconv.ParseInt(m[1], 10, 64)
		n += c
	}
	return n
}
