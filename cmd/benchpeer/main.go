// Command benchpeer is the benchmark's yardstick, never part of the
// service: scripts/bench.sh runs it beside the server to measure what the
// machine can do without sessions and with exactly one Redis read per
// request, and to fire a burst of concurrent logins.
//
//	benchpeer serve -addr ADDR -body FILE                      the same bytes as the service's page, no session
//	benchpeer serve -addr ADDR -body FILE -redis URL -key HASH one session read (store.Sessions.Find) per request, then the same bytes
//	benchpeer serve -addr ADDR -body FILE -burn 40us           the same bytes after burning 40 µs of CPU, no session, no lock, no garbage
//	benchpeer burst -url URL -user-prefix P -n 50              n concurrent logins of users P1..Pn (password in BENCH_PASSWORD); prints BURST errors=.. p50_ms=.. max_ms=..
//	benchpeer seed -template FILE -n N -users U -tokens FILE   N sessions of U users as Redis protocol on stdout, for redis-cli --pipe; their tokens to FILE
//
// The Redis read goes through package store, as the service's does: same
// client, same deadlines, one GET.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"loginsvc/internal/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchpeer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: benchpeer serve|burst [flags]")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout)
	case "burst":
		return burst(ctx, args[1:], getenv, stdout)
	case "seed":
		return seed(args[1:], stdout)
	}
	return fmt.Errorf("unknown subcommand %q: want serve, burst or seed", args[0])
}

// serve answers every request with the page bytes, after one session read
// when -redis is set.
func serve(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	bodyFile := fs.String("body", "", "file holding the page to serve")
	redisURL := fs.String("redis", "", "redis:// URL: read the session -key on every request")
	key := fs.String("key", "", "stored session hash to read")
	burnFor := fs.Duration("burn", 0, "CPU time to burn per request before answering (no session)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		return fmt.Errorf("page: %w", err)
	}
	page := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(body)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { page(w) })
	if *burnFor > 0 {
		rounds := burnRounds(*burnFor)
		handler = func(w http.ResponseWriter, r *http.Request) {
			burn(rounds, uint64(len(r.URL.Path)))
			page(w)
		}
	}
	if *redisURL != "" {
		rdb, err := store.Open(*redisURL, store.Timeouts{})
		if err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		defer func() { _ = rdb.Close() }()
		handler = func(w http.ResponseWriter, r *http.Request) {
			if _, found, err := rdb.Sessions.Find(r.Context(), *key); err != nil || !found {
				http.Error(w, "no session", http.StatusServiceUnavailable)
				return
			}
			page(w)
		}
	}
	srv := &http.Server{Addr: *addr, Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	_, _ = fmt.Fprintf(stdout, "benchpeer listening on %s\n", *addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// The burning yardstick answers whether the service's p99 comes from
// something of its own (the collector, a lock, the log) or from its CPU per
// request alone: at -c50 on two cores shared with wrk and Redis, requests
// queue, and how long the queue's tail gets depends on how much CPU each
// one takes. A handler that spends the same CPU on nothing but arithmetic
// (no allocation, no lock, no system call) shows the tail that CPU alone
// gives.

// burnRounds is how many rounds of burn take d of CPU on this machine,
// measured at start: the fastest of a few timed runs, the others having
// been interrupted by whatever else runs.
func burnRounds(d time.Duration) int {
	const probe = 2_000_000
	best := time.Duration(1<<63 - 1)
	for range 5 {
		start := time.Now()
		burn(probe, 1)
		best = min(best, time.Since(start))
	}
	return max(1, int(float64(probe)*float64(d)/float64(max(best, 1))))
}

// burn runs n rounds of a linear congruential generator from seed: pure
// CPU, nothing the compiler can drop (the result is checked), nothing
// that allocates.
func burn(n int, seed uint64) {
	x := seed
	for range n {
		x = x*6364136223846793005 + 1442695040888963407
	}
	if x == 0 {
		runtime.KeepAlive(x)
	}
}

// burst logs in n times at once and reports errors (anything but 303 with
// a session cookie) and the latency distribution.
func burst(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("burst", flag.ContinueOnError)
	loginURL := fs.String("url", "", "the login form's URL")
	prefix := fs.String("user-prefix", "", "the users are PREFIX1 to PREFIXn")
	n := fs.Int("n", 50, "concurrent logins")
	cookie := fs.String("cookie", "session_id", "session cookie name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	client := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{MaxIdleConnsPerHost: *n},
	}
	var (
		mu     sync.Mutex
		took   []time.Duration
		errs   int
		start  = make(chan struct{})
		wg     sync.WaitGroup
		reason string
	)
	for i := range *n {
		form := url.Values{"username": {fmt.Sprint(*prefix, i+1)}, "password": {getenv("BENCH_PASSWORD")}}.Encode()
		wg.Go(func() {
			<-start
			t0 := time.Now()
			ok, why := login(ctx, client, *loginURL, form, *cookie)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			took = append(took, d)
			if !ok {
				errs++
				reason = why
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	wall := time.Since(t0)
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	_, _ = fmt.Fprintf(stdout, "BURST n=%d errors=%d p50_ms=%.1f max_ms=%.1f wall_ms=%.1f", *n, errs, ms(took[len(took)/2]), ms(took[len(took)-1]), ms(wall))
	if reason != "" {
		_, _ = fmt.Fprintf(stdout, " last_error=%q", reason)
	}
	_, _ = fmt.Fprintln(stdout)
	return nil
}

func login(ctx context.Context, c *http.Client, loginURL, form, cookie string) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, loginURL, strings.NewReader(form))
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := c.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer func() { _ = res.Body.Close() }()
	_, _ = io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusSeeOther {
		return false, res.Status
	}
	for _, c := range res.Cookies() {
		if c.Name == cookie && c.Value != "" {
			return true, ""
		}
	}
	return false, "no session cookie"
}
