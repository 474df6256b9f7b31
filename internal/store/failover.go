package store

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// What the store does while Sentinel or Cluster promotes a replica
// (docs/decisions/0005-failover.md says why):
//
//   - Every call that needs the master (writes, and the reads of a login or
//     a settings page) waits for it: a failure that a promotion ends
//     (connection refused or reset, a timeout, READONLY, LOADING,
//     MASTERDOWN, TRYAGAIN, CLUSTERDOWN, a MOVED past go-redis's redirects) is retried with backoff until
//     Timeouts.FailoverWait has passed since the call began. At most
//     maxFailoverWaiters calls wait at once; the next one fails at once
//     (503 with Retry-After, as without a failover).
//   - A session read (Find, the hot path of every page view and check)
//     does not wait when it need not: while the master does not answer, it
//     is served by the replica with the highest replication offset, which
//     holds every write any replica has acknowledged, so a revocation
//     confirmed by a replica (WAIT) never comes back. Only if every replica
//     answers can one be chosen; else the read waits for the master too.
//   - On standalone Redis FailoverWait is 0: nothing fails over to wait for.

// maxFailoverWaiters bounds the calls of one process that may wait for a
// new master at once. Each holds a request, a goroutine and, at most, one
// connection attempt; past it a request fails as it would without a
// failover, so an outage never grows memory without bound.
const maxFailoverWaiters = 256

// failoverProbeEvery is how often, while the master does not answer, one
// goroutine pings it to learn when session reads may go back to it.
const failoverProbeEvery = 200 * time.Millisecond

// failover is the state shared by the client's hook, the session reads and
// the readiness check.
type failover struct {
	// wait is Timeouts.FailoverWait: 0 turns waiting and replica reads off.
	wait  time.Duration
	slots chan struct{}
	// downSince is when (UnixNano) the master was first seen failing in
	// the current outage; 0 while it answers.
	downSince atomic.Int64
	probing   atomic.Bool
	// seenUp is set once the master has answered: a Redis never reached
	// is an outage, not a failover.
	seenUp atomic.Bool
	// replicaReads counts sessions read from a replica.
	replicaReads atomic.Uint64
	replicas     *replicaReader // nil: no replicas to read (standalone)
	ping         func(ctx context.Context) error
	// refresh, if set, makes the client learn the topology again while
	// it waits: a Cluster client learns a new primary only from a node
	// that answers, and the one it asks is the dead one.
	refresh   func(ctx context.Context)
	refreshAt atomic.Int64
}

// refreshEvery bounds how often a waiting call asks for the topology.
const refreshEvery = 250 * time.Millisecond

func (f *failover) maybeRefresh(ctx context.Context) {
	now := time.Now().UnixNano()
	last := f.refreshAt.Load()
	if f.refresh == nil || now-last < int64(refreshEvery) || !f.refreshAt.CompareAndSwap(last, now) {
		return
	}
	f.refresh(noWait(ctx))
}

func newFailover(wait time.Duration, replicas *replicaReader) *failover {
	return &failover{wait: wait, slots: make(chan struct{}, maxFailoverWaiters), replicas: replicas}
}

// noWaitKey marks a context whose calls must not wait for a new master:
// the first try of a session read, readiness, and the tries inside
// retry's own loop.
type noWaitKey struct{}

func noWait(ctx context.Context) context.Context { return context.WithValue(ctx, noWaitKey{}, true) }

func mayWait(ctx context.Context) bool { return ctx.Value(noWaitKey{}) == nil }

// opContext bounds one store operation: Op, plus FailoverWait where a
// failover is waited for. Every call keeps a deadline.
func (t Timeouts) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, t.Op+t.FailoverWait)
}

// markDown records that the master failed; markUp that it answered.
func (f *failover) markDown() {
	if f.downSince.CompareAndSwap(0, time.Now().UnixNano()) && f.ping != nil && f.probing.CompareAndSwap(false, true) {
		go f.probe()
	}
}

func (f *failover) markUp() {
	if !f.seenUp.Load() {
		f.seenUp.Store(true)
	}
	if f.downSince.Load() != 0 {
		f.downSince.Store(0)
	}
}

// down reports for how long the master has been failing (0: it answers).
func (f *failover) down(now time.Time) time.Duration {
	since := f.downSince.Load()
	if since == 0 {
		return 0
	}
	return max(now.Sub(time.Unix(0, since)), time.Nanosecond)
}

// probe pings the master until it answers, so that session reads, served
// by a replica meanwhile, go back to it as soon as the promotion is done
// even if no write comes to find out.
func (f *failover) probe() {
	defer f.probing.Store(false)
	for f.downSince.Load() != 0 {
		time.Sleep(failoverProbeEvery)
		ctx, cancel := context.WithTimeout(noWait(context.Background()), time.Second)
		if f.ping(ctx) == nil {
			f.markUp()
		}
		cancel()
	}
}

// retry runs attempt and, when it fails in a way a promotion ends, runs it
// again with backoff (25ms doubling to 250ms) until ctx's deadline, holding
// one of the waiter slots meanwhile. attempt must be safe to repeat.
func (f *failover) retry(ctx context.Context, attempt func(ctx context.Context) error) error {
	err := attempt(noWait(ctx))
	if err == nil {
		f.markUp()
		return nil
	}
	if !retryable(err) {
		return err
	}
	f.markDown()
	if f.wait <= 0 || !mayWait(ctx) {
		return err
	}
	select {
	case f.slots <- struct{}{}:
		defer func() { <-f.slots }()
	default:
		return err
	}
	backoff := 25 * time.Millisecond
	for {
		if d, ok := ctx.Deadline(); ok && time.Until(d) < backoff {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		f.maybeRefresh(ctx)
		err = attempt(noWait(ctx))
		if err == nil {
			f.markUp()
			return nil
		}
		if !retryable(err) {
			return err
		}
		backoff = min(backoff*2, 250*time.Millisecond)
	}
}

// retryable reports whether err is one a promotion ends: the master is
// unreachable, frozen, demoted, loading, or the cluster is electing.
func retryable(err error) bool {
	switch {
	case err == nil, errors.Is(err, redis.Nil), errors.Is(err, context.Canceled):
		return false
	}
	// A network operation that failed: refused, reset, or timed out. A
	// dial's timeout also says errors.Is context.DeadlineExceeded, and it
	// is what a master whose address stopped answering gives (a killed
	// container's address is a black hole, not a refusal): it must be
	// waited through like a refusal. retry still ends at the call's own
	// deadline.
	var op *net.OpError
	if errors.As(err, &op) {
		return true
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var re redis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		for _, p := range []string{"READONLY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS", "MOVED", "ASK"} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	// go-redis's own words for a Sentinel that cannot name a master yet.
	return strings.Contains(err.Error(), "sentinels") || strings.Contains(err.Error(), "no master")
}

// masterFailed reports whether a try bounded by its own deadline, under
// ctx, failed as a master that a promotion replaces does: retryable, or
// out of its own time (a frozen master answers nothing) while ctx is not.
func masterFailed(ctx context.Context, err error) bool {
	return retryable(err) || errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
}

// waitHook puts retry around every command and pipeline of the client, so
// that every store operation waits for a new master the same way.
type waitHook struct{ f *failover }

func (h waitHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h waitHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !mayWait(ctx) {
			return next(ctx, cmd)
		}
		return h.f.retry(ctx, func(ctx context.Context) error {
			cmd.SetErr(nil)
			return next(ctx, cmd)
		})
	}
}

func (h waitHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !mayWait(ctx) {
			return next(ctx, cmds)
		}
		return h.f.retry(ctx, func(ctx context.Context) error {
			for _, c := range cmds {
				c.SetErr(nil)
			}
			err := next(ctx, cmds)
			// The pipeline's error is its first command's: a GET's
			// redis.Nil must not hide a broken connection behind it.
			for _, c := range cmds {
				if retryable(c.Err()) {
					return c.Err()
				}
			}
			return err
		})
	}
}

// replicaReader reads a key from the most up-to-date replica that may
// hold it: on Sentinel the master's replicas as the Sentinels list them,
// on Cluster the replicas of the key's slot.
type replicaReader struct {
	cluster   bool
	listNodes func(ctx context.Context, key string) ([]string, error)
	nodeOpt   func(addr string) *redis.Options

	mu      sync.Mutex
	clients map[string]*redis.Client
	cacheAt time.Time
	cached  any // []string (Sentinel) or []redis.ClusterSlot (Cluster)
}

// replicaListTTL is how long a list of replicas (or the slot map) is used
// before it is asked for again.
const replicaListTTL = time.Second

func (rr *replicaReader) client(addr string) *redis.Client {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if c, ok := rr.clients[addr]; ok {
		return c
	}
	c := redis.NewClient(rr.nodeOpt(addr))
	rr.clients[addr] = c
	return c
}

func (rr *replicaReader) close() {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	for _, c := range rr.clients {
		_ = c.Close()
	}
	clear(rr.clients)
}

// errNoReplica means no replica could be chosen for a read: none listed,
// or one of them did not answer (it might be the one that holds a
// revocation the others lack).
var errNoReplica = errors.New("no replica to read from")

// replicaAnswer is one replica's reply to a read.
type replicaAnswer struct {
	offset int64
	data   []byte
	found  bool
	ttl    time.Duration
	err    error
}

// get reads key (GET and PTTL) from every replica listed for it at once,
// each with its replication offset in the same round trip, and returns
// the answer of the one with the highest offset. Every listed replica must
// answer, as a replica: the most advanced one is then among them.
func (rr *replicaReader) get(ctx context.Context, key string) (data []byte, found bool, ttl time.Duration, err error) {
	addrs, err := rr.listNodes(ctx, key)
	if err != nil {
		return nil, false, 0, err
	}
	if len(addrs) == 0 {
		return nil, false, 0, errNoReplica
	}
	answers := make([]replicaAnswer, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Go(func() { answers[i] = rr.read(ctx, addr, key) })
	}
	wg.Wait()
	best := -1
	for i, a := range answers {
		if a.err != nil {
			return nil, false, 0, a.err
		}
		if best < 0 || a.offset > answers[best].offset {
			best = i
		}
	}
	a := answers[best]
	return a.data, a.found, a.ttl, nil
}

func (rr *replicaReader) read(ctx context.Context, addr, key string) replicaAnswer {
	c := rr.client(addr)
	var info *redis.StringCmd
	var get *redis.StringCmd
	var pttl *redis.DurationCmd
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		if rr.cluster {
			p.ReadOnly(ctx)
		}
		info = p.Info(ctx, "replication")
		get = p.Get(ctx, key)
		pttl = p.PTTL(ctx, key)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return replicaAnswer{err: err}
	}
	off, ok := replicaOffset(info.Val())
	if !ok {
		return replicaAnswer{err: errors.New(addr + " is not a replica")}
	}
	b, gerr := get.Bytes()
	switch {
	case errors.Is(gerr, redis.Nil):
		return replicaAnswer{offset: off}
	case gerr != nil:
		return replicaAnswer{err: gerr}
	}
	return replicaAnswer{offset: off, data: b, found: true, ttl: pttl.Val()}
}

// replicaOffset is the replication offset a replica has processed, from
// INFO replication; ok is false for anything but a replica (a demoted
// master coming back still says role:master, with writes nobody has).
func replicaOffset(info string) (int64, bool) {
	if !strings.Contains(info, "role:slave") {
		return 0, false
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "slave_repl_offset:"); ok {
			var n int64
			for _, ch := range v {
				if ch < '0' || ch > '9' {
					return 0, false
				}
				n = n*10 + int64(ch-'0')
			}
			return n, true
		}
	}
	return 0, false
}

// sentinelReplicas lists the master's replicas as the first Sentinel that
// answers names them, leaving out those it holds down or disconnected.
func (rr *replicaReader) sentinelReplicas(o *redis.FailoverOptions) func(ctx context.Context, key string) ([]string, error) {
	return func(ctx context.Context, _ string) ([]string, error) {
		rr.mu.Lock()
		if l, ok := rr.cached.([]string); ok && time.Since(rr.cacheAt) < replicaListTTL {
			rr.mu.Unlock()
			return l, nil
		}
		rr.mu.Unlock()
		last := errNoReplica
		for _, s := range o.SentinelAddrs {
			sc := redis.NewSentinelClient(&redis.Options{
				Addr: s, Username: o.SentinelUsername, Password: o.SentinelPassword, TLSConfig: o.TLSConfig,
				DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
				MaxRetries: -1, PoolSize: 1,
			})
			list, err := sc.Replicas(ctx, o.MasterName).Result()
			_ = sc.Close()
			if err != nil {
				last = err
				continue
			}
			var addrs []string
			for _, r := range list {
				flags := r["flags"]
				if strings.Contains(flags, "s_down") || strings.Contains(flags, "o_down") || strings.Contains(flags, "disconnected") {
					continue
				}
				addrs = append(addrs, net.JoinHostPort(r["ip"], r["port"]))
			}
			rr.mu.Lock()
			rr.cached, rr.cacheAt = addrs, time.Now()
			rr.mu.Unlock()
			return addrs, nil
		}
		return nil, last
	}
}

// clusterReplicas lists the replicas of key's slot from the slot map,
// asked of the cluster at most once a replicaListTTL.
func (rr *replicaReader) clusterReplicas(cc *redis.ClusterClient) func(ctx context.Context, key string) ([]string, error) {
	return func(ctx context.Context, key string) ([]string, error) {
		rr.mu.Lock()
		slots, ok := rr.cached.([]redis.ClusterSlot)
		fresh := ok && time.Since(rr.cacheAt) < replicaListTTL
		rr.mu.Unlock()
		if !fresh {
			var err error
			for range 3 { // a random node answers: the dead one, maybe
				//lint:ignore SA1019 CLUSTER SHARDS, its replacement, is Redis 7+; the service runs on Redis 6 too
				//nolint:staticcheck // as above
				if slots, err = cc.ClusterSlots(noWait(ctx)).Result(); err == nil {
					break
				}
			}
			if err != nil {
				return nil, err
			}
			rr.mu.Lock()
			rr.cached, rr.cacheAt = slots, time.Now()
			rr.mu.Unlock()
		}
		slot := keySlot(key)
		for _, s := range slots {
			if slot >= s.Start && slot <= s.End && len(s.Nodes) > 0 {
				addrs := make([]string, 0, len(s.Nodes)-1)
				for _, n := range s.Nodes[1:] {
					addrs = append(addrs, n.Addr)
				}
				return addrs, nil
			}
		}
		return nil, errNoReplica
	}
}

// keySlot is Redis Cluster's hash slot of key: CRC16 (XMODEM) of the key,
// or of its hash tag, modulo 16384.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
