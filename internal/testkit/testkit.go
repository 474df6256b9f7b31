package testkit

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"loginsvc/internal/store"
)

// WaitTimeout bounds every wait for something a server does by itself
// (start, connect, shut down, answer), so a broken server fails the test
// instead of hanging it. It is a safety net, not a performance goal.
const WaitTimeout = 20 * time.Second

// Buffer is an io.Writer for logs that servers write from several
// goroutines while the test reads them.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Client returns an HTTP client that does not follow redirects, so every
// 303 of a login or logout is visible, with jar as its cookie jar (nil:
// none, to send cookies exactly as written) and WaitTimeout per request.
// Its idle connections are closed when the test ends.
func Client(tb testing.TB, jar http.CookieJar) *http.Client {
	tb.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Jar:           jar,
		Transport:     tr,
		Timeout:       WaitTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Browser is Client with a fresh cookie jar, as a browser would have. The
// jar keys cookies by host, not port, so a cookie got through a load
// balancer on 127.0.0.1 is also sent to every replica there.
func Browser(tb testing.TB) *http.Client {
	tb.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		tb.Fatalf("cookiejar.New: %v", err)
	}
	return Client(tb, jar)
}

// TokenHash is what the service stores for a cookie token:
// base64url(sha256(token)) without padding (scs's HashTokenInStore).
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// SessionKey is the Redis key of the session a cookie token names.
func SessionKey(token string) string { return store.SessionKey(TokenHash(token)) }

// FreeAddrs returns n distinct 127.0.0.1:PORT addresses that were free a
// moment ago. They are held open together before any is released, so
// unlike n calls of FreeAddr they can never repeat one another (the kernel
// may hand a just-closed port out again).
func FreeAddrs(tb testing.TB, n int) []string {
	tb.Helper()
	addrs := make([]string, 0, n)
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			_ = ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("find a free port: %v", err)
		}
		held = append(held, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

// FreeAddr returns 127.0.0.1:PORT for a port that was free a moment ago.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("find a free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatalf("close probe listener: %v", err)
	}
	return addr
}

// Eventually polls cond every 20ms until it reports true, and fails the
// test with the last reason cond gave if that takes longer than timeout
// (WaitTimeout when 0).
func Eventually(tb testing.TB, what string, timeout time.Duration, cond func() (bool, string)) {
	tb.Helper()
	if timeout <= 0 {
		timeout = WaitTimeout
	}
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: still not the case after %v: %s", what, timeout, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Exists reports whether key is in the Redis that c talks to.
func Exists(tb testing.TB, c redis.Cmdable, key string) bool {
	tb.Helper()
	n, err := c.Exists(context.Background(), key).Result()
	if err != nil {
		tb.Fatalf("EXISTS %s: %v", key, err)
	}
	return n == 1
}
