package store

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// The session cache keeps sessions this replica read recently in memory,
// only while Redis promises to say when they change (CLIENT TRACKING in
// BCAST mode, see cache_channel.go), so that a steady page view costs no
// Redis round trip. docs/decisions/0003-session-cache.md says why it is
// built this way; the rules it keeps:
//
//   - A write this replica makes to a session key evicts it here before
//     the write returns, so the replica that logs out, revokes or changes a
//     password never reads the old session again.
//   - A reply that crossed an invalidation is never stored: every read
//     from Redis takes a fill token first, and an invalidation or a flush
//     cancels the token.
//   - Nothing is served unless the invalidation channel answered a health
//     ping sent at most cacheInDoubtAfter ago; a lost or silent channel
//     flushes the cache, and reads go to Redis until it is back.
//   - No entry is served past CacheMaxAge after it was read, nor past the
//     key's own expiry.

const (
	// CacheMaxAge is the longest a cached session is served without
	// reading Redis again, whatever the invalidation channel says.
	CacheMaxAge = 2 * time.Second
	// CacheMaxEntries bounds how many sessions one replica keeps.
	CacheMaxEntries = 10_000
	// CacheMaxBytes bounds the cached documents and their keys together
	// (8 MiB); past either bound a random entry makes room.
	CacheMaxBytes = 8 << 20
)

// ErrCacheUnsupported means the session cache cannot be kept honest on
// this Redis: a Cluster, or a server that refuses CLIENT TRACKING (the
// embedded Redis, Redis before 6, an ACL without CLIENT). Sessions are
// then always read from Redis.
var ErrCacheUnsupported = errors.New("session cache unsupported")

// CacheStats are the session cache's counters since Open, for metrics.
type CacheStats struct {
	// State is "off" (not started), "live" (serving from memory), "down"
	// (invalidation channel lost or in doubt: every read goes to Redis)
	// or "unsupported" (Redis refused CLIENT TRACKING).
	State string
	// Hits counts finds answered from memory.
	Hits uint64
	// Misses counts finds read from Redis while the cache was live.
	Misses uint64
	// Bypassed counts finds read from Redis because the channel was down
	// or in doubt.
	Bypassed uint64
	// Invalidations counts session keys Redis reported changed.
	Invalidations uint64
	// Flushes counts times the whole cache was dropped: channel lost or
	// in doubt, FLUSHALL or FLUSHDB.
	Flushes uint64
	// Entries is how many sessions are cached now.
	Entries int
}

// Live reports whether the cache serves from memory now.
func (s CacheStats) Live() bool { return s.State == "live" }

// cacheEntry is one cached session document.
type cacheEntry struct {
	data    []byte
	expires time.Time
}

// sessionCache is the memory side of the cache; the channel that keeps it
// honest lives in cache_channel.go. The zero value is not usable: see
// newSessionCache.
type sessionCache struct {
	maxAge     time.Duration
	maxEntries int
	maxBytes   int

	// enabled is set once StartSessionCache runs; until then Find goes
	// straight to Redis and counts nothing.
	enabled     atomic.Bool
	unsupported atomic.Bool
	// confirmed is when (UnixNano) the newest health ping that the
	// channel answered was sent: every invalidation of a write Redis ran
	// before it has arrived.
	confirmed atomic.Int64

	mu      sync.RWMutex
	live    bool
	entries map[string]cacheEntry // by session hash
	bytes   int
	// pending holds the fill token of each read in flight; a reply is
	// stored only if its token is still there.
	pending  map[string]uint64
	nextFill uint64

	hits, misses, bypassed, invalidations, flushes atomic.Uint64
}

func newSessionCache() *sessionCache {
	return &sessionCache{
		maxAge:     CacheMaxAge,
		maxEntries: CacheMaxEntries,
		maxBytes:   CacheMaxBytes,
		entries:    map[string]cacheEntry{},
		pending:    map[string]uint64{},
	}
}

// lookup returns the cached document of hash (a copy callers may keep,
// or, when shared, the entry's own bytes, to be read only), or else a fill token for reading it from Redis. A zero token means
// the cache may not be filled now: read Redis and keep nothing.
func (c *sessionCache) lookup(hash string, now time.Time, shared bool) (data []byte, hit bool, fill uint64) {
	if !c.enabled.Load() {
		return nil, false, 0
	}
	if !c.trusted(now) {
		c.bypassed.Add(1)
		return nil, false, 0
	}
	c.mu.RLock()
	e, ok := c.entries[hash]
	live := c.live
	c.mu.RUnlock()
	if !live {
		c.bypassed.Add(1)
		return nil, false, 0
	}
	if ok && now.Before(e.expires) {
		c.hits.Add(1)
		if shared {
			// An entry's bytes are never changed once filled (fill
			// stores a copy of its own): a reader may share them.
			return e.data, true, 0
		}
		return bytes.Clone(e.data), true, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live {
		c.bypassed.Add(1)
		return nil, false, 0
	}
	c.nextFill++
	c.pending[hash] = c.nextFill
	c.misses.Add(1)
	return nil, false, c.nextFill
}

// trusted reports whether the channel has recently enough proved that it
// delivers invalidations: a silent channel may be a partition in which
// other replicas' writes go unheard.
func (c *sessionCache) trusted(now time.Time) bool {
	return now.UnixNano()-c.confirmed.Load() < int64(cacheInDoubtAfter)
}

// fill completes the read that took token: data (nil: no such session,
// or the read failed) is kept until expires if no invalidation or flush
// came in between.
func (c *sessionCache) fill(hash string, token uint64, data []byte, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending[hash] != token {
		return
	}
	delete(c.pending, hash)
	size := len(hash) + len(data)
	if data == nil || !c.live || size > c.maxBytes {
		return
	}
	c.removeLocked(hash)
	for len(c.entries) > 0 && (len(c.entries) >= c.maxEntries || c.bytes+size > c.maxBytes) {
		for h := range c.entries { // map order is random: a random victim
			c.removeLocked(h)
			break
		}
	}
	c.entries[hash] = cacheEntry{data: data, expires: expires}
	c.bytes += size
}

// evict forgets hash and cancels any read of it in flight. The stores call
// it after every write to a session key, before the write returns.
func (c *sessionCache) evict(hash string) {
	if !c.enabled.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(hash)
	delete(c.pending, hash)
}

// invalidate is evict for keys Redis reported changed.
func (c *sessionCache) invalidate(hashes []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range hashes {
		c.removeLocked(h)
		delete(c.pending, h)
	}
	c.invalidations.Add(uint64(len(hashes)))
}

// flush forgets everything and cancels every read in flight.
func (c *sessionCache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked()
}

func (c *sessionCache) flushLocked() {
	clear(c.entries)
	clear(c.pending)
	c.bytes = 0
	c.flushes.Add(1)
}

// setLive switches serving from memory on (the channel is subscribed and
// tracking) or off (lost: flushed at once).
func (c *sessionCache) setLive(live bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if live {
		c.confirmed.Store(now.UnixNano())
	} else if c.live {
		c.flushLocked()
	}
	c.live = live
}

// sweep drops expired entries, so their memory does not wait for a
// random eviction.
func (c *sessionCache) sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, e := range c.entries {
		if !now.Before(e.expires) {
			c.removeLocked(h)
		}
	}
}

func (c *sessionCache) removeLocked(hash string) {
	if e, ok := c.entries[hash]; ok {
		c.bytes -= len(hash) + len(e.data)
		delete(c.entries, hash)
	}
}

// stats reads the counters.
func (c *sessionCache) stats() CacheStats {
	c.mu.RLock()
	n, live := len(c.entries), c.live
	c.mu.RUnlock()
	st := CacheStats{
		Hits:          c.hits.Load(),
		Misses:        c.misses.Load(),
		Bypassed:      c.bypassed.Load(),
		Invalidations: c.invalidations.Load(),
		Flushes:       c.flushes.Load(),
		Entries:       n,
	}
	switch {
	case c.unsupported.Load():
		st.State = "unsupported"
	case !c.enabled.Load():
		st.State = "off"
	case live:
		st.State = "live"
	default:
		st.State = "down"
	}
	return st
}
