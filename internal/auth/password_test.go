package auth

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"loginsvc/internal/session"
)

// BenchmarkVerify prints what one login's argon2id comparison costs with
// the production parameters.
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	h, err := newHasher(1, 0)
	if err != nil {
		b.Fatalf("newHasher: %v", err)
	}
	hash, err := h.hash(ctx, "correct horse battery staple")
	if err != nil {
		b.Fatalf("hash: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ok, err := h.verify(ctx, "correct horse battery staple", hash)
		if err != nil || !ok {
			b.Fatalf("verify: got %v, %v; want true, nil", ok, err)
		}
	}
}

// TestConcurrentLoginsUseBoundedMemory checks that a burst of logins queues
// for hashing slots instead of allocating 19 MiB each at once, even on a
// large machine, and prints the heap it took (a figure, not a threshold:
// uncapped on 32 cores it was 1.2 GiB). Not parallel: the heap it measures
// must be its own.
func TestConcurrentLoginsUseBoundedMemory(t *testing.T) {
	const logins = 100
	ctx := context.Background()
	// A large machine must not get a larger burst: the default concurrency
	// is capped, not just GOMAXPROCS.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(32))
	// The whole burst queues (under -race a hash takes a while): this test
	// is about memory, not about the queue's bound (TestFullHashingQueue...).
	f := newFixtureWith(t, session.Config{Lifetime: 12 * time.Hour}, Config{HashWait: time.Minute})
	f.addUser(t, "alice", "correct horse battery staple")
	if got := cap(f.svc.hasher.slots); got != maxHashConcurrency {
		t.Fatalf("hashing slots with GOMAXPROCS=32: got %d, want %d", got, maxHashConcurrency)
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseline := ms.HeapInuse

	var peak, busiest atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			if n := uint64(len(f.svc.hasher.slots)); n > busiest.Load() {
				busiest.Store(n)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	start := time.Now()
	errs := make([]error, logins)
	var wg sync.WaitGroup
	for i := range logins {
		password := "correct horse battery staple"
		if i%2 == 1 {
			password = "wrong password" // failures cost the same work
		}
		wg.Go(func() {
			who, err := f.svc.Authenticate(ctx, "alice", password)
			name := who.Name
			switch {
			case i%2 == 0 && (err != nil || name != "alice"):
				errs[i] = fmt.Errorf("right password: got %q, %v; want alice, nil", name, err)
			case i%2 == 1 && err != ErrInvalidCredentials:
				errs[i] = fmt.Errorf("wrong password: got %q, %v; want %v", name, err, ErrInvalidCredentials)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-sampled

	for i, err := range errs {
		if err != nil {
			t.Errorf("Authenticate %d: %v", i, err)
		}
	}
	t.Logf("%d concurrent Authenticate calls, GOMAXPROCS=%d: %v; at most %d hashing at once; HeapInuse baseline %.1f MiB, peak %.1f MiB",
		logins, runtime.GOMAXPROCS(0), time.Since(start).Round(time.Millisecond), busiest.Load(), mib(baseline), mib(peak.Load()))
	if busiest.Load() == 0 {
		t.Errorf("no hash was seen running during the burst: the sampler saw nothing to bound")
	}
}

func mib(bytes uint64) float64 { return float64(bytes) / (1 << 20) }
