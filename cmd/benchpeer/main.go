// Command benchpeer is the benchmark's yardstick, never part of the
// service: scripts/bench.sh runs it beside the server to measure what the
// machine can do without sessions and with exactly one Redis read per
// request, and to fire a burst of concurrent logins.
//
//	benchpeer serve -addr ADDR -body FILE                      the same bytes as the service's page, no session
//	benchpeer serve -addr ADDR -body FILE -redis URL -key HASH one session read (store.Sessions.Find) per request, then the same bytes
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
