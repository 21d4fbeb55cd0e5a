// Package metrics keeps the core's few Prometheus metrics (API request counts
// and latency, plus gauges read at scrape time) and writes them in the
// Prometheus text format without a client library.
package metrics

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

type reqKey struct {
	route, method string
	code          int
}

type latency struct {
	sum   float64
	count uint64
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
	mu       sync.Mutex
	requests map[reqKey]uint64
	latency  map[string]*latency
	gauges   func() []Gauge
}

// New returns an empty registry; gauges may be nil.
func New(gauges func() []Gauge) *Registry {
	return &Registry{requests: map[reqKey]uint64{}, latency: map[string]*latency{}, gauges: gauges}
}

// Observe records one finished API request.
func (r *Registry) Observe(route, method string, code int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests[reqKey{route, method, code}]++
	l := r.latency[route]
	if l == nil {
		l = &latency{}
		r.latency[route] = l
	}
	l.sum += d.Seconds()
	l.count++
}

// ServeHTTP writes the Prometheus text exposition.
func (r *Registry) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	r.Write(w)
}

// Write writes every metric to w.
func (r *Registry) Write(w io.Writer) {
	r.mu.Lock()
	keys := make([]reqKey, 0, len(r.requests))
	for k := range r.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.route != b.route {
			return a.route < b.route
		}
		if a.method != b.method {
			return a.method < b.method
		}
		return a.code < b.code
	})
	fmt.Fprintln(w, "# HELP potluck_core_api_requests_total API requests by route, method and status code.")
	fmt.Fprintln(w, "# TYPE potluck_core_api_requests_total counter")
	for _, k := range keys {
		fmt.Fprintf(w, "potluck_core_api_requests_total{route=%q,method=%q,code=\"%d\"} %d\n", k.route, k.method, k.code, r.requests[k])
	}
	routes := make([]string, 0, len(r.latency))
	for k := range r.latency {
		routes = append(routes, k)
	}
	sort.Strings(routes)
	fmt.Fprintln(w, "# HELP potluck_core_api_request_duration_seconds API request latency.")
	fmt.Fprintln(w, "# TYPE potluck_core_api_request_duration_seconds summary")
	for _, route := range routes {
		l := r.latency[route]
		fmt.Fprintf(w, "potluck_core_api_request_duration_seconds_sum{route=%q} %g\n", route, l.sum)
		fmt.Fprintf(w, "potluck_core_api_request_duration_seconds_count{route=%q} %d\n", route, l.count)
	}
	r.mu.Unlock()

	if r.gauges == nil {
		return
	}
	helped := map[string]bool{}
	for _, g := range r.gauges() {
		if !helped[g.Name] {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", g.Name, g.Help, g.Name)
			helped[g.Name] = true
		}
		fmt.Fprintf(w, "%s%s %g\n", g.Name, labels(g.Labels), g.Value)
	}
}

func labels(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, m[k]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}
