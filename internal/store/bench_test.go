package store_test

import (
	"context"
	"testing"
	"time"

	"loginsvc/internal/redistest"
	"loginsvc/internal/store"
)

// benchDoc is the size of a typical encoded session (see package
// session's BenchmarkCodec).
var benchDoc = []byte(`{"deadline":"2026-12-02T19:34:21.546831322Z","values":{"__rememberMe":false,"expires_at":"2026-12-02T19:34:21.546831993Z","last_seen_at":"2026-12-01T19:34:21.546831993Z","login_at":"2026-12-01T19:34:21.546831993Z","login_ip":"203.0.113.7","user_agent":"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0","username":"alice"}}`)

// BenchmarkSessionStore measures the store's session operations against a
// real redis-server on loopback, one at a time (the round trip is most of
// it), and reports Redis's memory per stored session.
//
//	go test -run '^$' -bench SessionStore ./internal/store
func BenchmarkSessionStore(b *testing.B) {
	srv := redistest.Start(b)
	rdb, err := store.Open(srv.URL(), store.Timeouts{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rdb.Close() })
	check := srv.Client(b)
	ctx := context.Background()
	until := time.Now().Add(24 * time.Hour)
	if err := rdb.Users.Create(ctx, "alice", hashA); err != nil {
		b.Fatal(err)
	}
	owner := store.Owner{User: "alice", Stamp: hashA, Until: until}
	hash := newHash()
	if _, err := rdb.Sessions.Create(ctx, hash, benchDoc, until, owner, 1_000_000); err != nil {
		b.Fatal(err)
	}

	b.Run("find", func(b *testing.B) {
		for b.Loop() {
			if _, found, err := rdb.Sessions.Find(ctx, hash); err != nil || !found {
				b.Fatalf("Find: found %v, err %v", found, err)
			}
		}
	})
	b.Run("update", func(b *testing.B) {
		for b.Loop() {
			if err := rdb.Sessions.Update(ctx, hash, benchDoc, until); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("create", func(b *testing.B) {
		for b.Loop() {
			if _, err := rdb.Sessions.Create(ctx, newHash(), benchDoc, until, owner, 1_000_000); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("memory", func(b *testing.B) {
		var n int64
		for b.Loop() {
			n, err = check.MemoryUsage(ctx, store.SessionKey(hash), 0).Result()
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n), "bytes/session")
		b.ReportMetric(float64(len(benchDoc)), "doc-bytes")
	})
}
