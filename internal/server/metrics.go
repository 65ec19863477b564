package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/store"
)

// metrics are the server's Prometheus collectors, on a registry of their
// own (no global state, so several servers can run in one test binary).
type metrics struct {
	reg *prometheus.Registry

	validations *prometheus.CounterVec   // carrier, result
	refreshes   *prometheus.CounterVec   // result
	created     prometheus.Counter       //
	revocations *prometheus.CounterVec   // reason
	reuse       prometheus.Counter       //
	csrf        prometheus.Counter       //
	storeOps    *prometheus.HistogramVec // operation, result
	httpReqs    *prometheus.HistogramVec // route, code
	rateLimited *prometheus.CounterVec   // route

	subscribers     prometheus.Gauge     // open GET /v1/events streams
	eventsDelivered prometheus.Counter   //
	eventLag        prometheus.Histogram // commit to delivery

	// The children of the hottest label values, looked up once.
	sessionOK, accessOK lazyChild[prometheus.Counter]
	storeGetOK          lazyChild[prometheus.Observer]
	storeKeyringOK      lazyChild[prometheus.Observer] // keyring_version
	// routeOK is written once, by Server.routes, before serving: each
	// API route's request histograms for its success statuses.
	routeOK map[string]*routeChildren
}

// lazyChild is the child of a metric vector for fixed label values, made
// on first use (so /metrics lists exactly the series it would without it)
// and then reused: WithLabelValues hashes and validates the values and
// takes a lock on every call, a measurable share of a verify (BENCHMARKS.md,
// issue 15).
type lazyChild[T any] struct {
	once sync.Once
	v    T
}

func (l *lazyChild[T]) get(child func() T) T {
	l.once.Do(func() { l.v = child() })
	return l.v
}

// routeChildren are a route's request histograms for 200, 201 and 204.
type routeChildren struct {
	ok, created, noContent lazyChild[prometheus.Observer]
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		validations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latch_validations_total",
			Help: "Session validations by carrier (session token or access token) and result (ok or a problem code).",
		}, []string{"carrier", "result"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latch_refreshes_total",
			Help: "Refresh-token rotations by result (ok or a problem code).",
		}, []string{"result"}),
		created: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "latch_sessions_created_total",
			Help: "Sessions created.",
		}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latch_revocations_total",
			Help: "Session revocations by reason (logout, admin, revoke-all, evicted, replaced, refresh-reuse).",
		}, []string{"reason"}),
		reuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "latch_refresh_reuse_detections_total",
			Help: "Rotated refresh tokens presented again (treated as theft; the session is revoked).",
		}),
		csrf: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "latch_csrf_rejections_total",
			Help: "Requests rejected by CSRF protection.",
		}),
		storeOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "latch_store_operation_duration_seconds",
			Help:    "Latency of session store operations by operation and result (ok, not_found, conflict, error).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"operation", "result"}),
		httpReqs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "latch_http_request_duration_seconds",
			Help:    "HTTP request duration by route pattern and status code.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "code"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latch_rate_limited_total",
			Help: "Requests refused with 429 rate_limited, by route.",
		}, []string{"route"}),
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "latch_event_subscribers",
			Help: "Open GET /v1/events streams.",
		}),
		eventsDelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "latch_events_delivered_total",
			Help: "Events written to GET /v1/events streams (one per stream).",
		}),
		eventLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "latch_event_lag_seconds",
			Help:    "Time from an event's commit (the committing replica's clock) to its delivery on a stream of this replica.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30},
		}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.validations, m.refreshes, m.created, m.revocations, m.reuse, m.csrf, m.storeOps, m.httpReqs, m.rateLimited,
		m.subscribers, m.eventsDelivered, m.eventLag,
	)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Observe implements latch.Observer: it counts the Manager's events.
func (m *metrics) Observe(_ context.Context, e latch.Event) {
	switch e.Type {
	case latch.EventCreated:
		m.created.Inc()
	case latch.EventRevoked:
		m.revocations.WithLabelValues(e.Reason).Inc()
	case latch.EventRefreshReuse:
		m.reuse.Inc()
	case latch.EventCSRFRejected:
		m.csrf.Inc()
	}
}

// result labels an outcome: "ok" or the problem code the error maps to.
func result(err error) string {
	if err == nil {
		return "ok"
	}
	return problemFor(err).Code
}

// validated counts a validation by carrier ("session" or "access").
func (m *metrics) validated(carrier string, err error) {
	if err == nil {
		ok := &m.sessionOK
		if carrier == "access" {
			ok = &m.accessOK
		}
		ok.get(func() prometheus.Counter { return m.validations.WithLabelValues(carrier, "ok") }).Inc()
		return
	}
	m.validations.WithLabelValues(carrier, result(err)).Inc()
}

// monoNow reads only the monotonic clock, for durations: time.Since of
// a time with a monotonic reading takes one clock reading where time.Now
// takes two (on a VM's kvm-clock, each is tens of nanoseconds, and a
// verify times itself and its store read).
func monoNow() time.Duration { return time.Since(monoEpoch) }

var monoEpoch = time.Now()

// storeOp records a store operation that began at start (monoNow).
func (m *metrics) storeOp(op string, start time.Duration, err error) {
	if err == nil && (op == "get" || op == "keyring_version") {
		l := &m.storeGetOK
		if op == "keyring_version" {
			l = &m.storeKeyringOK
		}
		l.get(func() prometheus.Observer { return m.storeOps.WithLabelValues(op, "ok") }).Observe((monoNow() - start).Seconds())
		return
	}
	r := "ok"
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNotFound):
		r = "not_found"
	case errors.Is(err, store.ErrConflict):
		r = "conflict"
	default:
		r = "error"
	}
	m.storeOps.WithLabelValues(op, r).Observe((monoNow() - start).Seconds())
}

func (m *metrics) httpRequest(route string, code int, d time.Duration) {
	if rc := m.routeOK[route]; rc != nil {
		var l *lazyChild[prometheus.Observer]
		switch code {
		case http.StatusOK:
			l = &rc.ok
		case http.StatusCreated:
			l = &rc.created
		case http.StatusNoContent:
			l = &rc.noContent
		}
		if l != nil {
			l.get(func() prometheus.Observer { return m.httpReqs.WithLabelValues(route, strconv.Itoa(code)) }).Observe(d.Seconds())
			return
		}
	}
	m.httpReqs.WithLabelValues(route, strconv.Itoa(code)).Observe(d.Seconds())
}
