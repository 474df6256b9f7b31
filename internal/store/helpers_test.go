package store_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"loginsvc/internal/redistest"
	"loginsvc/internal/store"
)

// startRedis starts a redis-server of the test's own and returns it with a
// client configured the way the service configures its client.
func startRedis(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	return srv, newClient(t, srv.URL())
}

// newClient is store.NewClient on the options store.ParseURL makes of url,
// with the production timeouts, closed when the test ends.
func newClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := store.ParseURL(url)
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", url, err)
	}
	c := store.NewClient(opt, store.Timeouts{})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newToken returns a fresh random stored token.
func newToken() string { return rand.Text() }

// hashedToken is what scs with HashTokenInStore hands the store for a
// cookie token: base64url(sha256(token)).
func hashedToken(cookieToken string) string {
	sum := sha256.Sum256([]byte(cookieToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// sessionDoc encodes a session of username that expires in an hour.
func sessionDoc(t *testing.T, username string) []byte {
	t.Helper()
	b, err := store.JSONCodec{}.Encode(time.Now().Add(time.Hour), map[string]any{
		store.FieldUsername: username,
		store.FieldLoginAt:  time.Now().UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		t.Fatalf("encode session of %q: %v", username, err)
	}
	return b
}

// keyExists reports whether key is in Redis.
func keyExists(t *testing.T, c *redis.Client, key string) bool {
	t.Helper()
	n, err := c.Exists(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("EXISTS %s: %v", key, err)
	}
	return n == 1
}
