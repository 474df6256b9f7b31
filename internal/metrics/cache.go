package metrics

import "github.com/prometheus/client_golang/prometheus"

// CacheCounters are the running totals of a local session cache, as the
// cache itself counts them.
type CacheCounters struct {
	// Hits are reads answered from the cache.
	Hits uint64
	// Misses are reads that went to Redis.
	Misses uint64
	// Invalidations are entries dropped because Redis said they changed.
	Invalidations uint64
	// Flushes are whole-cache drops (invalidation channel lost or in doubt).
	Flushes uint64
	// Bypassed are reads that went to Redis because the cache could not
	// vouch for its copies (channel down or in doubt).
	Bypassed uint64
	// Entries is how many sessions the cache holds now.
	Entries int
	// Live is whether the cache serves from memory now: the invalidation
	// channel is up and answering.
	Live bool
}

// WatchCache exports the counters read returns, read afresh at every
// scrape, as loginsvc_session_cache_{hits,misses,invalidations,flushes,bypassed}_total
// and the gauges loginsvc_session_cache_entries and loginsvc_session_cache_live.
// The cache keeps its own counters (it must not depend on this package);
// this only shows them.
func (m *Metrics) WatchCache(read func() CacheCounters) error {
	return m.reg.Register(cacheCollector{read: read, descs: [...]*prometheus.Desc{
		prometheus.NewDesc(namespace+"_session_cache_hits_total", "Session reads answered from the local cache.", nil, nil),
		prometheus.NewDesc(namespace+"_session_cache_misses_total", "Session reads that went to Redis.", nil, nil),
		prometheus.NewDesc(namespace+"_session_cache_invalidations_total", "Cached sessions dropped because Redis said they changed.", nil, nil),
		prometheus.NewDesc(namespace+"_session_cache_flushes_total", "Whole-cache flushes: the invalidation channel was lost or in doubt.", nil, nil),
		prometheus.NewDesc(namespace+"_session_cache_bypassed_total", "Session reads sent to Redis because the cache could not vouch for its copies.", nil, nil),
		prometheus.NewDesc(namespace+"_session_cache_entries", "Sessions held in the local cache.", nil, nil),
		prometheus.NewDesc(namespace+"_session_cache_live", "1 while the cache serves from memory (its invalidation channel is up), else 0.", nil, nil),
	}})
}

// cacheCollector reads the cache's counters at scrape time.
type cacheCollector struct {
	read  func() CacheCounters
	descs [7]*prometheus.Desc // hits, misses, invalidations, flushes, bypassed; entries, live
}

func (c cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c cacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.read()
	for i, v := range [...]uint64{s.Hits, s.Misses, s.Invalidations, s.Flushes, s.Bypassed} {
		ch <- prometheus.MustNewConstMetric(c.descs[i], prometheus.CounterValue, float64(v))
	}
	live := 0.0
	if s.Live {
		live = 1
	}
	ch <- prometheus.MustNewConstMetric(c.descs[5], prometheus.GaugeValue, float64(s.Entries))
	ch <- prometheus.MustNewConstMetric(c.descs[6], prometheus.GaugeValue, live)
}
