package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// reserve is a sliding-window counter on one sorted set: entries older than
// the window are dropped; if the rest reach the limit the call is refused
// with the milliseconds until a slot frees up; otherwise the attempt is
// recorded in advance. Recording before the password check makes the limit
// exact even when replicas check the same account at the same moment. It
// touches one key, so it works unchanged on Redis Cluster; the PEXPIRE
// keeps an idle counter from outliving its window.
var reserve = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n >= limit then
  local e = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
  local wait = tonumber(e[2]) + window - now
  if wait < 1 then wait = 1 end
  return wait
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 0`)

// Throttle counts attempts in sliding windows, one sorted set per counted
// thing (see ThrottleUserKey and ThrottleIPKey).
type Throttle struct {
	client   redis.UniversalClient
	timeouts Timeouts
}

// Reserve records attempt id under key unless limit attempts already lie
// within window; then it records nothing and returns how long until one
// leaves the window.
func (t *Throttle) Reserve(ctx context.Context, key, id string, limit int, window time.Duration) (time.Duration, error) {
	ctx, cancel := t.timeouts.opContext(ctx)
	defer cancel()
	ms, err := reserve.Run(ctx, t.client, []string{key}, window.Milliseconds(), limit, id).Int64()
	if err != nil {
		return 0, unavailable("reserve attempt", err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// Release removes attempt id from key: it did not count after all.
func (t *Throttle) Release(ctx context.Context, key, id string) error {
	ctx, cancel := t.timeouts.opContext(ctx)
	defer cancel()
	if err := t.client.ZRem(ctx, key, id).Err(); err != nil {
		return unavailable("release attempt", err)
	}
	return nil
}

// Reset forgets every attempt under key.
func (t *Throttle) Reset(ctx context.Context, key string) error {
	ctx, cancel := t.timeouts.opContext(ctx)
	defer cancel()
	if err := t.client.Del(ctx, key).Err(); err != nil {
		return unavailable("reset attempts", err)
	}
	return nil
}

// NoteOnce reports whether key was not set, setting it for ttl: the
// first of many refusals in a window is the one worth an event.
func (t *Throttle) NoteOnce(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeouts.Op)
	defer cancel()
	ok, err := t.client.SetNX(ctx, key, "1", ttl).Result()
	if err != nil {
		return false, unavailable("note lockout", err)
	}
	return ok, nil
}
