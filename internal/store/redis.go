package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
	// ReplicaAck bounds how long a revocation (and, on Sentinel, a new
	// session) waits for a replica to confirm it, on Sentinel and Cluster
	// (see topology.go). Default 100ms.
	ReplicaAck time.Duration
	// FailoverWait bounds how long an operation that needs the master
	// waits for Sentinel or Cluster to promote a replica (failover.go),
	// on top of Op. Zero: DefaultFailoverWait on Sentinel and Cluster;
	// negative: no waiting. Standalone Redis never waits.
	FailoverWait time.Duration
}

// DefaultFailoverWait is REDIS_FAILOVER_WAIT's default: Sentinel's
// down-after-milliseconds of the README's setups (5s) plus an election
// with room to spare, and a Cluster's node timeout plus its election.
// It stays below the HTTP server's 15s write timeout.
const DefaultFailoverWait = 10 * time.Second

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
	if t.ReplicaAck <= 0 {
		t.ReplicaAck = 100 * time.Millisecond
	}
	return t
}

// Redis is the service's connection to Redis and every store on it. Open
// builds it once; the server, the command-line tools and the tests all use
// it, so the client's deadlines and retries are the same everywhere.
type Redis struct {
	client   redis.UniversalClient
	timeouts Timeouts
	topology string
	cache    *sessionCache
	failover *failover
	// stopCache ends the cache's invalidation channel; cacheDone closes
	// once it has ended. Both nil until StartSessionCache.
	stopCache context.CancelFunc
	cacheDone chan struct{}

	// Sessions holds the sessions and the per-user session index.
	Sessions *SessionStore
	// Users holds the user records.
	Users *Users
	// Throttle counts failed logins.
	Throttle *Throttle
	// Factors holds second factors and logins waiting for their second
	// step.
	Factors *Factors
	// Events holds the security event streams.
	Events *Events
}

// Open checks rawURL (see ParseURL) and returns the stores on a client
// for its topology (see topology.go), with NewClient's deadlines. It does
// not connect: use WaitReady or Ping.
func Open(rawURL string, t Timeouts) (*Redis, error) {
	ep, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	t = t.withDefaults()
	switch {
	case ep.Topology == Standalone || t.FailoverWait < 0:
		t.FailoverWait = 0
	case t.FailoverWait == 0:
		t.FailoverWait = DefaultFailoverWait
	}
	c := ep.newClient(t)
	fo := newFailover(t.FailoverWait, ep.replicaReader(c, t))
	fo.ping = func(ctx context.Context) error { return c.Ping(ctx).Err() }
	if cc, ok := c.(*redis.ClusterClient); ok {
		fo.refresh = cc.ReloadState
	}
	if ep.Topology != Standalone {
		c.AddHook(waitHook{fo})
	}
	cache := newSessionCache()
	return &Redis{
		client:   c,
		timeouts: t,
		topology: ep.Topology,
		cache:    cache,
		failover: fo,
		Sessions: &SessionStore{client: c, timeouts: t, ack: ackFor(ep.Topology, t), cache: cache, fo: fo},
		Users:    &Users{client: c, timeouts: t},
		Throttle: &Throttle{client: c, timeouts: t},
		Factors:  &Factors{client: c, timeouts: t},
		Events:   &Events{client: c, timeouts: t},
	}, nil
}

// Close stops the session cache, if started, and closes the client's
// connections.
func (r *Redis) Close() error {
	if r.stopCache != nil {
		r.stopCache()
		<-r.cacheDone
	}
	if r.failover.replicas != nil {
		r.failover.replicas.close()
	}
	return r.client.Close()
}

// StartSessionCache turns on the local session cache (see cache.go):
// Sessions.Find answers from memory what it read recently, as long as
// Redis reports every change on the invalidation channel, which this
// starts and keeps open until Close. It fails with ErrCacheUnsupported on
// a Redis Cluster; a server that refuses CLIENT TRACKING is found out
// once connected, logged, and leaves the cache off (CacheStats.State
// "unsupported"). Call it once, before serving.
func (r *Redis) StartSessionCache(log *slog.Logger) error {
	c, ok := r.client.(*redis.Client)
	if !ok {
		return fmt.Errorf("%w: Redis Cluster (invalidations would need a channel per node)", ErrCacheUnsupported)
	}
	if r.stopCache != nil {
		return errors.New("session cache already started")
	}
	d := newChannelDialer(c, r.timeouts)
	ctx, cancel := context.WithCancel(context.Background())
	r.stopCache, r.cacheDone = cancel, make(chan struct{})
	r.cache.enabled.Store(true)
	go func() {
		defer close(r.cacheDone)
		r.cache.runChannel(ctx, d, log)
	}()
	return nil
}

// CacheStats returns the session cache's state and counters, for
// metrics. Before StartSessionCache its State is "off".
func (r *Redis) CacheStats() CacheStats { return r.cache.stats() }

// Ping reports whether this process can serve: Redis answers within the
// operation timeout or, on Sentinel and Cluster, the master that answered
// before has been failing for less than FailoverWait, during which session
// reads are served by a replica and writes wait for the new master
// (failover.go). It backs the readiness probe: a failover must not take
// every replica of the service out of the balancer at once.
func (r *Redis) Ping(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(noWait(ctx), r.timeouts.Op)
	defer cancel()
	err := r.client.Ping(pctx).Err()
	if err == nil {
		r.failover.markUp()
		return nil
	}
	if r.failover.wait > 0 && masterFailed(ctx, err) {
		r.failover.markDown()
		if d := r.failover.down(time.Now()); r.failover.seenUp.Load() && d < r.failover.wait {
			return nil
		}
	}
	return unavailable("ping", err)
}

// FailingOver reports for how long the master has not answered (0: it
// answers), for the log and metrics.
func (r *Redis) FailingOver() time.Duration { return r.failover.down(time.Now()) }

// WaitReady pings Redis until it answers or ctx ends; see WaitReady.
func (r *Redis) WaitReady(ctx context.Context, log *slog.Logger) error {
	return WaitReady(ctx, r.client, log)
}

// DiscardClientLogs stops go-redis from printing its own pool errors to
// stderr: the stores already report every failure they meet, once, through
// the service's log. It changes go-redis's process-wide logger, so only
// main calls it.
func DiscardClientLogs() { redis.SetLogger(discardLog{}) }

type discardLog struct{}

func (discardLog) Printf(context.Context, string, ...any) {}

// NewClient returns a client whose every call has a deadline. The pool
// checks connections before reuse and a failed call is retried once on a
// fresh connection, so the first request after a Redis restart succeeds.
func NewClient(opt *redis.Options, t Timeouts) *redis.Client {
	t = t.withDefaults()
	o := *opt
	knobsOf(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.DialerRetries, &o.DialerRetryTimeout,
		&o.ContextTimeoutEnabled, &o.MaxRetries, &o.MinRetryBackoff, &o.MaxRetryBackoff).set(t)
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

// clientKnobs points at the deadline and retry fields of one go-redis
// options struct: Options, FailoverOptions and ClusterOptions name them
// alike but share no type, and every client of the service, whatever its
// topology, must get the same values (set).
type clientKnobs struct {
	dial, read, write, pool, dialerRetryTimeout, minBackoff, maxBackoff *time.Duration
	dialerRetries, maxRetries                                           *int
	contextTimeout                                                      *bool
}

func knobsOf(dial, read, write, pool *time.Duration, dialerRetries *int, dialerRetryTimeout *time.Duration,
	contextTimeout *bool, maxRetries *int, minBackoff, maxBackoff *time.Duration) clientKnobs {
	return clientKnobs{dial: dial, read: read, write: write, pool: pool, dialerRetries: dialerRetries, dialerRetryTimeout: dialerRetryTimeout,
		contextTimeout: contextTimeout, maxRetries: maxRetries, minBackoff: minBackoff, maxBackoff: maxBackoff}
}

// set gives the fields t's deadlines and the service's retry policy.
func (k clientKnobs) set(t Timeouts) {
	*k.dial, *k.read, *k.write, *k.pool = t.Dial, t.IO, t.IO, t.Op
	// go-redis retries a failed dial 5 times, 100ms apart, by default: while
	// Redis is down that spends the whole operation budget on each request.
	// One quick retry answers an outage with 503 at once.
	*k.dialerRetries, *k.dialerRetryTimeout = 1, 20*time.Millisecond
	*k.contextTimeout = true
	*k.maxRetries, *k.minBackoff, *k.maxBackoff = 1, 10*time.Millisecond, 50*time.Millisecond
}

// unavailable wraps a Redis failure with what the store was doing.
func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}

// scanBatches calls fn with each batch of keys matching pattern, on every
// primary when the client is a Cluster client, together with the node
// that holds them. It uses SCAN with a count, never KEYS, so it does not
// block Redis on a large keyspace, and holds one batch at a time.
func scanBatches(ctx context.Context, c redis.UniversalClient, pattern string, fn func(ctx context.Context, node redis.Cmdable, keys []string) error) error {
	one := func(ctx context.Context, node redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, pattern, scanCount).Result()
			if err != nil {
				return unavailable("scan", err)
			}
			if len(keys) > 0 {
				if err := fn(ctx, node, keys); err != nil {
					return err
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	if cc, ok := c.(*redis.ClusterClient); ok {
		// ForEachMaster calls its function on every primary at once; fn
		// is not safe for that (it counts, and stops at a match), so the
		// primaries are walked one after another.
		var mu sync.Mutex
		var primaries []*redis.Client
		err := cc.ForEachMaster(ctx, func(_ context.Context, node *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			primaries = append(primaries, node)
			return nil
		})
		if err != nil {
			return unavailable("list primaries", err)
		}
		for _, node := range primaries {
			if err := one(ctx, node); err != nil {
				return err
			}
		}
		return nil
	}
	return one(ctx, c)
}

// scanCount is SCAN's COUNT: keys looked at per call, a few milliseconds
// of Redis time at most.
const scanCount = 500
