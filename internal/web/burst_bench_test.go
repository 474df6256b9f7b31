package web

import (
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// BenchmarkLoginBurst is the 200-client burst: 200 correct logins
// at the same moment, each for its own user from its own address (behind
// a trusted proxy), so that neither the per-account nor the per-address
// limits (whose reservations also cap logins in flight) decide, only the
// hashing queue; one replica wired as serve wires it (default hashing
// slots, wait and limits). It
// prints the median and p99 latency and how many answers were 303
// (logged in), 503 (hashing queue full) and 429 (attempts per address).
// Figures, not a threshold:
//
//	go test -run '^$' -bench LoginBurst -benchtime 1x ./internal/web
func BenchmarkLoginBurst(b *testing.B) {
	const clients = 200
	ta := newTestApp(b, redistest.Start(b), withTrustedProxies(netip.MustParsePrefix("127.0.0.1/32")))
	for b.Loop() {
		b.StopTimer()
		if err := ta.check.FlushDB(b.Context()).Err(); err != nil {
			b.Fatal(err)
		}
		hash, err := aliceHash()
		if err != nil {
			b.Fatal(err)
		}
		for i := range clients {
			// The record as store.Users writes it (keys.go), alice's hash.
			if err := ta.check.HSet(b.Context(), "user:{burst-"+strconv.Itoa(i)+"}", "password", hash).Err(); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()

		took := make([]time.Duration, clients)
		status := make([]int, clients)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range clients {
			wg.Go(func() {
				<-start
				t0 := time.Now()
				form := url.Values{"username": {"burst-" + strconv.Itoa(i)}, "password": {alicePassword}}
				req := newRequest(b, http.MethodPost, ta.url("/login/"), form)
				req.Header.Set("X-Forwarded-For", "198.51."+strconv.Itoa(i/250)+"."+strconv.Itoa(i%250+1))
				p, err := fetch(ta.client, req)
				status[i] = p.status // 0: no answer within the client's timeout
				if err != nil {
					status[i] = 0
				}
				took[i] = time.Since(t0)
			})
		}
		t0 := time.Now()
		close(start)
		wg.Wait()
		all := time.Since(t0)

		slices.Sort(took)
		count := map[int]int{}
		for _, s := range status {
			count[s]++
		}
		b.Logf("%d concurrent logins: median %v, p99 %v, max %v, all done in %v; 303: %d, 503: %d, 429: %d, no answer in %v or other: %d",
			clients, took[clients/2].Round(time.Millisecond), took[clients*99/100-1].Round(time.Millisecond), took[clients-1].Round(time.Millisecond),
			all.Round(time.Millisecond), count[http.StatusSeeOther], count[http.StatusServiceUnavailable], count[http.StatusTooManyRequests], testkit.WaitTimeout,
			clients-count[http.StatusSeeOther]-count[http.StatusServiceUnavailable]-count[http.StatusTooManyRequests])
		b.ReportMetric(float64(took[clients/2].Milliseconds()), "median-ms")
		b.ReportMetric(float64(took[clients*99/100-1].Milliseconds()), "p99-ms")
		b.ReportMetric(float64(count[http.StatusServiceUnavailable]), "503s")
	}
}
