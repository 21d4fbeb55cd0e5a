// Package metrics keeps the core's Prometheus metrics: API request counts
// and a latency histogram per route, plus gauges read at scrape time. The
// exposition format, counters and histograms are lb/metrics', shared by every
// Potluck binary.
package metrics

import (
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	pm "potluck/lb/metrics"
)

type reqKey struct {
	route, method string
	code          int
}

// Gauge is one sample read at scrape time.
type Gauge struct {
	Name   string
	Help   string
	Labels map[string]string
	Value  float64
}

// Registry holds API request metrics and a gauge callback.
type Registry struct {
	mu       sync.Mutex // guards the maps; the values count atomically
	requests map[reqKey]*pm.Counter
	latency  map[string]*pm.Histogram
	gauges   func() []Gauge
	more     []func(io.Writer) // other parts' metrics, written after these
}

// New returns an empty registry; gauges may be nil.
func New(gauges func() []Gauge) *Registry {
	return &Registry{requests: map[reqKey]*pm.Counter{}, latency: map[string]*pm.Histogram{}, gauges: gauges}
}

// Also adds a part's own metrics (Prometheus text, names of its own) to
// every scrape, after the core's.
func (r *Registry) Also(write func(io.Writer)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.more = append(r.more, write)
}

// Observe records one finished API request.
func (r *Registry) Observe(route, method string, code int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	k := reqKey{route, method, code}
	r.mu.Lock()
	c := r.requests[k]
	if c == nil {
		c = &pm.Counter{}
		r.requests[k] = c
	}
	h := r.latency[route]
	if h == nil {
		h = &pm.Histogram{}
		r.latency[route] = h
	}
	r.mu.Unlock()
	c.Inc()
	h.Observe(d)
}

// ServeHTTP writes the Prometheus text exposition.
func (r *Registry) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	r.Write(w)
}

// Write writes every metric to w, in a stable order.
func (r *Registry) Write(w io.Writer) {
	type counted struct {
		reqKey
		c *pm.Counter
	}
	type timed struct {
		route string
		h     *pm.Histogram
	}
	r.mu.Lock()
	reqs := make([]counted, 0, len(r.requests))
	for k, c := range r.requests {
		reqs = append(reqs, counted{k, c})
	}
	lat := make([]timed, 0, len(r.latency))
	for route, h := range r.latency {
		lat = append(lat, timed{route, h})
	}
	more := r.more
	r.mu.Unlock()
	defer func() {
		for _, write := range more {
			write(w)
		}
	}()
	sort.Slice(reqs, func(i, j int) bool {
		a, b := reqs[i], reqs[j]
		if a.route != b.route {
			return a.route < b.route
		}
		if a.method != b.method {
			return a.method < b.method
		}
		return a.code < b.code
	})
	sort.Slice(lat, func(i, j int) bool { return lat[i].route < lat[j].route })

	pw := pm.NewWriter(w)
	for _, q := range reqs {
		pw.Counter("potluck_core_api_requests_total", "API requests by route, method and status code.",
			pm.Labels("route", q.route, "method", q.method, "code", strconv.Itoa(q.code)), q.c.Load())
	}
	for _, l := range lat {
		pw.Histogram("potluck_core_api_request_duration_seconds", "API request latency.", pm.Labels("route", l.route), l.h)
	}
	if r.gauges == nil {
		return
	}
	for _, g := range r.gauges() {
		kv := make([]string, 0, 2*len(g.Labels))
		names := make([]string, 0, len(g.Labels))
		for n := range g.Labels {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			kv = append(kv, n, g.Labels[n])
		}
		pw.Gauge(g.Name, g.Help, pm.Labels(kv...), g.Value)
	}
}
