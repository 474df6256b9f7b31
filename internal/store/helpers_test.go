package store_test

import (
	"context"
	"crypto/rand"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"loginsvc/internal/redistest"
	"loginsvc/internal/store"
	"loginsvc/internal/testkit"
)

// Password hashes as the user records hold them; the stores treat them as
// opaque stamps.
const (
	hashA = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdEE$aGFzaEE"
	hashB = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdEI$aGFzaEI"
)

// openRedis starts a redis-server of the test's own and returns it, the
// stores opened on it exactly as the service opens them, and a plain client
// for looking at what the stores wrote.
func openRedis(t *testing.T) (*redistest.Server, *store.Redis, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	return srv, open(t, srv.URL()), srv.Client(t)
}

// open is store.Open with the production timeouts, closed when the test
// ends.
func open(t testing.TB, url string) *store.Redis {
	t.Helper()
	rdb, err := store.Open(url, store.Timeouts{})
	if err != nil {
		t.Fatalf("store.Open(%q): %v", url, err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// newHash is the stored token of a fresh cookie token.
func newHash() string { return testkit.TokenHash(rand.Text()) }

// addUser creates user name with password hash hashA and returns the owner
// of a session granted to it, ending at until.
func addUser(t *testing.T, rdb *store.Redis, name string, until time.Time) store.Owner {
	t.Helper()
	if err := rdb.Users.Create(context.Background(), name, hashA); err != nil {
		t.Fatalf("Users.Create(%q): %v", name, err)
	}
	return store.Owner{User: name, Stamp: hashA, Until: until}
}

// keyExists reports whether key is in Redis.
func keyExists(t *testing.T, c *redis.Client, key string) bool {
	t.Helper()
	return testkit.Exists(t, c, key)
}

// indexMembers returns the members of user's session index with their
// scores (absolute deadlines in ms).
func indexMembers(t *testing.T, c *redis.Client, user string) map[string]int64 {
	t.Helper()
	zs, err := c.ZRangeWithScores(context.Background(), store.UserSessionsKey(user), 0, -1).Result()
	if err != nil {
		t.Fatalf("ZRANGE %s: %v", store.UserSessionsKey(user), err)
	}
	m := map[string]int64{}
	for _, z := range zs {
		m[z.Member.(string)] = int64(z.Score)
	}
	return m
}

// pexpireTime is PEXPIRETIME of key: its expiry in Unix ms, -1 for none,
// -2 for no key.
func pexpireTime(t *testing.T, c *redis.Client, key string) int64 {
	t.Helper()
	ms, err := c.Do(context.Background(), "PEXPIRETIME", key).Int64()
	if err != nil {
		t.Fatalf("PEXPIRETIME %s: %v", key, err)
	}
	return ms
}

// commandCalls returns how often Redis ran command since the last
// CONFIG RESETSTAT.
func commandCalls(t *testing.T, c *redis.Client, command string) int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	m := regexp.MustCompile(`(?m)^cmdstat_` + command + `:calls=(\d+)`).FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// failsFast runs op and returns its error, failing the test if op is still
// blocked after a hang-detector bound far above the store's deadlines.
func failsFast(t *testing.T, name string, op func() error) error {
	t.Helper()
	const hang = 3 * time.Second
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- op() }()
	select {
	case err := <-done:
		t.Logf("%s returned after %v: %v", name, time.Since(start).Round(time.Millisecond), err)
		return err
	case <-time.After(hang):
		t.Fatalf("%s still blocked after %v", name, hang)
		return nil
	}
}
