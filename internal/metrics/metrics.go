// Package metrics holds the service's Prometheus metrics and serves them,
// with net/http/pprof's profiles when asked (PPROF=on), on a listener of
// their own that is never the public one: what is in them (routes, counts,
// heap profiles) is for operators.
//
// Everything lives in one Registry owned by a Metrics value; nothing is
// registered with the client library's process-wide default registerer, so
// tests and several servers in one process never collide.
package metrics

import (
	"net/http"
	"net/http/pprof" // also registers on http.DefaultServeMux, which the service never serves
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every metric of the service's own.
const namespace = "loginsvc"

// Login results, the values of loginsvc_logins_total's result label.
const (
	LoginSuccess     = "success"
	LoginInvalid     = "invalid"
	LoginThrottled   = "throttled"
	LoginUnavailable = "unavailable"
	LoginError       = "error"
	// LoginSecondStep is a right password whose second step is due.
	LoginSecondStep = "second_step"
)

// Second-step results and methods, the labels of
// loginsvc_second_steps_total.
const (
	SecondStepSuccess = "success"
	SecondStepFailure = "failure"
)

// Reasons a session ends, the values of loginsvc_sessions_ended_total's
// reason label.
const (
	EndLogout  = "logout"
	EndRevoke  = "revoke"
	EndExpired = "expired"
	EndCap     = "cap"
)

// Metrics is the service's registry and the collectors the HTTP and session
// layers report to. Its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	logins          *prometheus.CounterVec
	sessionsStarted prometheus.Counter
	sessionsEnded   *prometheus.CounterVec
	secondSteps     *prometheus.CounterVec
	events          *prometheus.CounterVec
	eventsDropped   *prometheus.CounterVec

	// routes holds each route's and status's series once found, keyed
	// by routeStatus: finding them by label values hashes and looks up
	// the labels on every request, which the check's hot path paid.
	// Routes are patterns and statuses few, so it stays small.
	routes sync.Map
}

type routeStatus struct {
	route  string
	status int
}

// routeSeries are the series one route and status count into.
type routeSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// New returns the metrics of one replica, named replica in the constant
// loginsvc_replica_info series, with the Go runtime and process collectors
// (heap, goroutines, RSS, open files) already registered.
func New(replica string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help: "Time from receiving a request to its handler returning, by route pattern.",
			// From a cached page view (well under a millisecond) to an
			// argon2id login (around 100ms) and a Redis timeout (about 1s).
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "logins_total",
			Help: "Login attempts, by result: success, invalid, throttled, unavailable (Redis), error, second_step (right password, second step due).",
		}, []string{"result"}),
		sessionsStarted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "sessions_started_total",
			Help: "Sessions started by a login.",
		}),
		sessionsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "sessions_ended_total",
			Help: "Sessions this replica ended, by reason: logout, revoke (one or all of a user's, password change, delete), expired (found past its deadline), cap (oldest ended by MAX_SESSIONS_PER_USER). Sessions Redis expires unseen are not counted.",
		}, []string{"reason"}),
		secondSteps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "second_steps_total",
			Help: "Second-factor checks (login, step-up, re-authentication, enrolment), by method (totp, recovery; code when a wrong code matched neither) and result (success, failure).",
		}, []string{"method", "result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "security_events_total",
			Help: "Security events written to Redis Streams, by kind.",
		}, []string{"kind"}),
		eventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "security_events_dropped_total",
			Help: "Security events lost (queue full, or Redis unreachable or too slow; never retried on the request path), by kind.",
		}, []string{"kind"}),
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "replica_info",
		Help:        "Always 1; its replica label is the INSTANCE_ID of the replica that exports it.",
		ConstLabels: prometheus.Labels{"replica": replica},
	})
	info.Set(1)
	m.reg.MustRegister(m.requests, m.duration, m.logins, m.sessionsStarted, m.sessionsEnded, m.secondSteps, m.events, m.eventsDropped, info,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every result and reason is exported from the start, at 0, so that
	// rate() and increase() see the first one too.
	for _, r := range []string{LoginSuccess, LoginInvalid, LoginThrottled, LoginUnavailable, LoginError, LoginSecondStep} {
		m.logins.WithLabelValues(r)
	}
	for _, r := range []string{EndLogout, EndRevoke, EndExpired, EndCap} {
		m.sessionsEnded.WithLabelValues(r)
	}
	return m
}

// Register adds collectors of other packages (the Redis client's, the
// session cache's) to the registry.
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Request counts one answered request. route is the pattern that served it
// (never the raw path, whose values are unbounded).
func (m *Metrics) Request(route string, status int, elapsed time.Duration) {
	key := routeStatus{route, status}
	s, ok := m.routes.Load(key)
	if !ok {
		s, _ = m.routes.LoadOrStore(key, &routeSeries{
			requests: m.requests.WithLabelValues(route, strconv.Itoa(status)),
			duration: m.duration.WithLabelValues(route),
		})
	}
	series := s.(*routeSeries)
	series.requests.Inc()
	series.duration.Observe(elapsed.Seconds())
}

// Login counts one login attempt with its result (LoginSuccess...).
func (m *Metrics) Login(result string) { m.logins.WithLabelValues(result).Inc() }

// EventRecorded counts a security event written.
func (m *Metrics) EventRecorded(kind string) { m.events.WithLabelValues(kind).Inc() }

// EventDropped counts a security event lost.
func (m *Metrics) EventDropped(kind string) { m.eventsDropped.WithLabelValues(kind).Inc() }

// SecondStep counts one second-factor check by method and result.
func (m *Metrics) SecondStep(method, result string) {
	m.secondSteps.WithLabelValues(method, result).Inc()
}

// SessionStarted counts a session started by a login.
func (m *Metrics) SessionStarted() { m.sessionsStarted.Inc() }

// SessionsEnded counts n sessions ended for reason (EndLogout...).
func (m *Metrics) SessionsEnded(reason string, n int) {
	if n > 0 {
		m.sessionsEnded.WithLabelValues(reason).Add(float64(n))
	}
}

// Handler serves GET /metrics (the Prometheus text format) and, when
// profiles is set (PPROF=on), /debug/pprof/ (CPU, heap, goroutine...
// profiles, for `go tool pprof`). /debug/pprof/cmdline is never served:
// the command line can hold a Redis password (--redis-url). Serve it on the
// metrics listener only.
func (m *Metrics) Handler(profiles bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	// Registered even when the profiles are off, so that it stays a 404
	// rather than falling to pprof.Index should the profiles be on.
	mux.Handle("/debug/pprof/cmdline", http.NotFoundHandler())
	if profiles {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
