package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrUnavailable wraps every failure to reach Redis or to get an answer from
// it in time. The web layer turns it into 503: the request may succeed once
// Redis is back, and nothing about it is the user's fault.
var ErrUnavailable = errors.New("redis unavailable")

// Timeouts bound every Redis call, so a frozen or partitioned Redis makes a
// request fail fast instead of hanging it.
type Timeouts struct {
	// Dial bounds opening a connection. Default 500ms.
	Dial time.Duration
	// IO bounds each read and write on a connection. Default 500ms.
	IO time.Duration
	// Op bounds one store operation including retries and pool waits.
	// Default 800ms, so a page that needs Redis answers within a second.
	Op time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	if t.Dial <= 0 {
		t.Dial = 500 * time.Millisecond
	}
	if t.IO <= 0 {
		t.IO = 500 * time.Millisecond
	}
	if t.Op <= 0 {
		t.Op = 800 * time.Millisecond
	}
	return t
}

// ParseURL checks a redis:// or rediss:// URL and returns go-redis options
// for it. It is used at start, so a bad REDIS_URL is reported before anything
// connects.
func ParseURL(raw string) (*redis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return nil, errors.New("want redis://[user:pass@]host:port/db or rediss://[user:pass@]host:port/db")
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, errors.New("want redis://[user:pass@]host:port/db or rediss://[user:pass@]host:port/db")
	}
	return opt, nil
}

// NewClient returns a client whose every call has a deadline. The pool
// checks connections before reuse and a failed call is retried once on a
// fresh connection, so the first request after a Redis restart succeeds.
func NewClient(opt *redis.Options, t Timeouts) *redis.Client {
	t = t.withDefaults()
	o := *opt
	o.DialTimeout = t.Dial
	o.ReadTimeout = t.IO
	o.WriteTimeout = t.IO
	o.PoolTimeout = t.Op
	// go-redis retries a failed dial 5 times, 100ms apart, by default: while
	// Redis is down that spends the whole operation budget on each request.
	// One quick retry answers an outage with 503 at once.
	o.DialerRetries = 1
	o.DialerRetryTimeout = 20 * time.Millisecond
	o.ContextTimeoutEnabled = true
	o.MaxRetries = 1
	o.MinRetryBackoff = 10 * time.Millisecond
	o.MaxRetryBackoff = 50 * time.Millisecond
	return redis.NewClient(&o)
}

// WaitReady pings Redis until it answers or ctx ends, backing off from
// 100ms to 5s between tries and logging every failure, so a replica that
// starts before Redis waits visibly instead of crash-looping.
func WaitReady(ctx context.Context, c redis.UniversalClient, log *slog.Logger) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(pctx).Err()
		cancel()
		if err == nil {
			if attempt > 1 {
				log.Info("redis reachable", "attempts", attempt)
			}
			return nil
		}
		log.Warn("redis not reachable, retrying", "attempt", attempt, "retry_in", backoff.String(), "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for redis: %w", ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// Ping reports whether Redis answers within the operation timeout; it backs
// the readiness probe.
func Ping(ctx context.Context, c redis.UniversalClient, t Timeouts) error {
	ctx, cancel := context.WithTimeout(ctx, t.withDefaults().Op)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// unavailable wraps a Redis failure with what the store was doing.
func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}

// scan calls fn for every key matching pattern, on every primary when the
// client is a Cluster client. It uses SCAN with a count, never KEYS, so it
// does not block Redis on a large keyspace.
func scan(ctx context.Context, c redis.UniversalClient, pattern string, fn func(ctx context.Context, c redis.Cmdable, key string) error) error {
	one := func(ctx context.Context, node redis.Cmdable) error {
		iter := node.Scan(ctx, 0, pattern, 500).Iterator()
		for iter.Next(ctx) {
			if err := fn(ctx, node, iter.Val()); err != nil {
				return err
			}
		}
		return iter.Err()
	}
	if cc, ok := c.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return one(ctx, node)
		})
	}
	return one(ctx, c)
}
