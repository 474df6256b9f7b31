package store

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Instrument times every command the client sends from now on and returns
// the Prometheus collectors that show it, with the connection pool's
// statistics: loginsvc_redis_command_duration_seconds and
// loginsvc_redis_command_errors_total by command (a pipeline or script
// transaction counts as "pipeline"; a missing key or an error reply is an
// answer, not an error), and the
// loginsvc_redis_pool_* series. Call it once, before serving.
//
// The pool collector is written here because go-redis's own
// (extra/redisprometheus) is not published on the module proxy this
// project builds from.
func (r *Redis) Instrument() []prometheus.Collector {
	h := &commandHook{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "loginsvc", Subsystem: "redis", Name: "command_duration_seconds",
			Help: "Time of one Redis command (or pipeline) as the client sees it, retries included, by command.",
			// A local round trip is ~100µs; the operation timeout is 800ms.
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"command"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "loginsvc", Subsystem: "redis", Name: "command_errors_total",
			Help: "Redis commands that got no answer (timeouts, refused or broken connections; not a missing key, not an error reply), by command.",
		}, []string{"command"}),
	}
	r.client.AddHook(h)
	return []prometheus.Collector{h.duration, h.errors, newPoolCollector(r.client)}
}

// commandHook is the go-redis hook behind Instrument.
type commandHook struct {
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

func (h *commandHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *commandHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.observe(cmd.Name(), start, err)
		return err
	}
}

func (h *commandHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.observe("pipeline", start, err)
		return err
	}
}

func (h *commandHook) observe(name string, start time.Time, err error) {
	h.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
	// Only failures to get an answer count: a missing key (redis.Nil) and
	// an error reply (NOSCRIPT before a script is loaded, a refused CLIENT
	// TRACKING) are Redis answering, and the stores handle them; counted,
	// they would make an alert on this series fire at every start.
	var reply redis.Error
	if err != nil && !errors.Is(err, redis.Nil) && !errors.As(err, &reply) {
		h.errors.WithLabelValues(name).Inc()
	}
}

// poolCollector reads the client's pool statistics at scrape time.
type poolCollector struct {
	client                           redis.UniversalClient
	hits, misses, timeouts, waits    *prometheus.Desc
	waitSeconds, stale, total, idles *prometheus.Desc
}

func newPoolCollector(c redis.UniversalClient) poolCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("loginsvc_redis_pool_"+name, help, nil, nil)
	}
	return poolCollector{
		client:      c,
		hits:        d("hits_total", "Times a free connection was found in the pool."),
		misses:      d("misses_total", "Times no free connection was in the pool (a new one was dialled or waited for)."),
		timeouts:    d("timeouts_total", "Times waiting for a pool connection timed out."),
		waits:       d("waits_total", "Times a request waited for a connection."),
		waitSeconds: d("wait_seconds_total", "Time spent waiting for a connection."),
		stale:       d("stale_conns_total", "Stale connections removed from the pool."),
		total:       d("conns", "Connections in the pool, idle or in use."),
		idles:       d("idle_conns", "Idle connections in the pool."),
	}
}

func (p poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{p.hits, p.misses, p.timeouts, p.waits, p.waitSeconds, p.stale, p.total, p.idles} {
		ch <- d
	}
}

func (p poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := p.client.PoolStats()
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(p.hits, float64(s.Hits))
	counter(p.misses, float64(s.Misses))
	counter(p.timeouts, float64(s.Timeouts))
	counter(p.waits, float64(s.WaitCount))
	counter(p.waitSeconds, time.Duration(s.WaitDurationNs).Seconds())
	counter(p.stale, float64(s.StaleConns))
	gauge(p.total, float64(s.TotalConns))
	gauge(p.idles, float64(s.IdleConns))
}
