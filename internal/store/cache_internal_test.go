package store

import (
	"testing"
	"time"
)

// liveCache is a started cache whose channel has just answered.
func liveCache(t *testing.T) *sessionCache {
	t.Helper()
	c := newSessionCache()
	c.enabled.Store(true)
	c.setLive(true, time.Now())
	return c
}

// A read from Redis that an invalidation, an own write or a flush
// overtook must not be cached: its reply may be the old session.
func TestCacheDropsAReadThatCrossedAChange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(c *sessionCache)
	}{
		{"invalidation from Redis", func(c *sessionCache) { c.invalidate([]string{"h"}) }},
		{"own write", func(c *sessionCache) { c.evict("h") }},
		{"flush", func(c *sessionCache) { c.flush() }},
		{"channel lost", func(c *sessionCache) { c.setLive(false, time.Now()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := liveCache(t)
			now := time.Now()
			_, _, token := c.lookup("h", now, false)
			if token == 0 {
				t.Fatal("lookup on a live, empty cache: got no fill token, want one")
			}
			tc.change(c)
			c.fill("h", token, []byte("old"), now.Add(time.Second))
			if c.stats().Entries != 0 {
				t.Fatalf("after %s then the reply: got %d entries, want 0", tc.name, c.stats().Entries)
			}
		})
	}
}

// Of two reads in flight, only the later one's reply may be kept: the
// earlier may have been read before a write whose invalidation has not
// arrived.
func TestCacheKeepsOnlyTheNewestRead(t *testing.T) {
	t.Parallel()
	c := liveCache(t)
	now := time.Now()
	_, _, first := c.lookup("h", now, false)
	_, _, second := c.lookup("h", now, false)
	c.fill("h", first, []byte("first"), now.Add(time.Second))
	if n := c.stats().Entries; n != 0 {
		t.Fatalf("fill of the older read: got %d entries, want 0", n)
	}
	c.fill("h", second, []byte("second"), now.Add(time.Second))
	b, hit, _ := c.lookup("h", now, false)
	if !hit || string(b) != "second" {
		t.Fatalf("lookup: got %q, hit %v; want \"second\", hit", b, hit)
	}
}

// The cache never holds more than its bounds, however many sessions are
// read.
func TestCacheStaysWithinItsBounds(t *testing.T) {
	t.Parallel()
	c := liveCache(t)
	c.maxEntries, c.maxBytes = 10, 300
	now := time.Now()
	for i := range 100 {
		h := string(rune('a'+i%26)) + string(rune('a'+i/26))
		_, _, token := c.lookup(h, now, false)
		c.fill(h, token, make([]byte, 20), now.Add(time.Second))
		if st := c.stats(); st.Entries > 10 || c.bytes > 300 {
			t.Fatalf("after %d fills: %d entries, %d bytes; want at most 10 and 300", i+1, st.Entries, c.bytes)
		}
	}
}

// A silent channel may be a partition that hides other replicas' writes:
// nothing is served once its last answer is older than cacheInDoubtAfter.
func TestCacheServesNothingWhileTheChannelIsInDoubt(t *testing.T) {
	t.Parallel()
	c := liveCache(t)
	now := time.Now()
	_, _, token := c.lookup("h", now, false)
	c.fill("h", token, []byte("doc"), now.Add(time.Hour))
	if _, hit, _ := c.lookup("h", now, false); !hit {
		t.Fatal("lookup right after the fill: got a miss, want a hit")
	}
	later := now.Add(cacheInDoubtAfter)
	if _, hit, token := c.lookup("h", later, false); hit || token != 0 {
		t.Fatalf("lookup %v after the last health answer: got hit %v, token %d; want a bypass", cacheInDoubtAfter, hit, token)
	}
	if st := c.stats(); st.Bypassed != 1 {
		t.Fatalf("Bypassed: got %d, want 1", st.Bypassed)
	}
}
