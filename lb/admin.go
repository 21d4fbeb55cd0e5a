package lb

import (
	"encoding/json"
	"net/http"

	"potluck/lb/metrics"
)

// Status is the JSON document served on /status.
type Status struct {
	Routes      []RouteStatus `json:"routes"`
	UnknownHost uint64        `json:"unknown_host_requests"`
	Reloads     uint64        `json:"reloads"`
	OpenTunnels int64         `json:"open_tunnels"`
}

// RouteStatus describes one route.
type RouteStatus struct {
	Name     string          `json:"name"`
	Hosts    []string        `json:"hosts"`
	Default  bool            `json:"default,omitempty"`
	Requests uint64          `json:"requests"`
	Errors   uint64          `json:"proxy_errors"`
	NoLive   uint64          `json:"no_live_backend"`
	Backends []BackendStatus `json:"backends"`
}

// BackendStatus describes one backend.
type BackendStatus struct {
	Addr        string `json:"addr"`
	Weight      int    `json:"weight"`
	MaxFails    int    `json:"max_fails"`
	FailTimeout string `json:"fail_timeout"`
	State       string `json:"state"` // "live" or "down"
	Fails       int    `json:"fails"`
	Requests    uint64 `json:"requests"`
	Failures    uint64 `json:"failures"`
	MarkDowns   uint64 `json:"mark_downs"`
	Recoveries  uint64 `json:"recoveries"`
	InFlight    int64  `json:"in_flight"`
	// Pipelined is how many pipelined connections the backend gets (0:
	// the keep-alive pool only); Stalled counts the requests that went
	// over the pool because every one waited on a slow response.
	Pipelined int    `json:"pipelined"`
	Stalled   uint64 `json:"pipeline_stalled"`
}

// Status returns a snapshot of routes and backends.
func (p *Proxy) Status() Status {
	t := p.table.Load()
	now := p.opts.Clock.Now()
	st := Status{UnknownHost: p.m.unknownHost.Load(), Reloads: p.m.reloads.Load(), OpenTunnels: p.m.activeTun.Load()}
	for _, rt := range t.routes {
		rs := RouteStatus{Name: rt.name, Hosts: rt.hosts, Default: t.def == rt, Requests: rt.m.requests.Load(),
			Errors: rt.m.errors.Load(), NoLive: rt.m.noLive.Load()}
		for _, b := range rt.backends {
			state := "live"
			if b.health.Down(now) {
				state = "down"
			}
			hp := b.health.Params()
			rs.Backends = append(rs.Backends, BackendStatus{
				Addr: b.spec.Addr, Weight: b.weight(), MaxFails: hp.MaxFails, FailTimeout: hp.FailTimeout.String(),
				State: state, Fails: b.health.Fails(), Requests: b.m.requests.Load(), Failures: b.m.failures.Load(),
				MarkDowns: b.m.markDowns.Load(), Recoveries: b.m.recoveries.Load(), InFlight: b.inflight.Load(),
				Pipelined: b.pipe.conns(), Stalled: b.m.stalled.Load(),
			})
		}
		st.Routes = append(st.Routes, rs)
	}
	return st
}

// AdminHandler serves /metrics (Prometheus text) and /status (JSON).
func (p *Proxy) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = p.WriteMetrics(metrics.NewWriter(w))
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(p.Status())
	})
	return mux
}

// WriteMetrics writes every proxy metric to w.
func (p *Proxy) WriteMetrics(w *metrics.Writer) error {
	t := p.table.Load()
	now := p.opts.Clock.Now()
	w.Counter("potluck_lb_unknown_host_requests_total", "Requests for a host no route serves (404).", "", p.m.unknownHost.Load())
	w.Counter("potluck_lb_reloads_total", "Routing table updates applied.", "", p.m.reloads.Load())
	w.Gauge("potluck_lb_open_tunnels", "Open WebSocket/Upgrade tunnels.", "", float64(p.m.activeTun.Load()))
	classes := [...]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}
	for _, rt := range t.routes {
		rl := metrics.Labels("route", rt.name)
		w.Counter("potluck_lb_route_requests_total", "Requests received per route.", rl, rt.m.requests.Load())
		for c, name := range classes {
			w.Counter("potluck_lb_route_responses_total", "Responses sent per route and status class.",
				metrics.Labels("route", rt.name, "class", name), rt.m.status[c].Load())
		}
		w.Counter("potluck_lb_route_proxy_errors_total", "502/504 responses made by the proxy.", rl, rt.m.errors.Load())
		w.Counter("potluck_lb_route_no_live_backend_total", "Requests answered 502 because no backend was live.", rl, rt.m.noLive.Load())
		w.Counter("potluck_lb_route_upgrades_total", "Upgrade (WebSocket) requests.", rl, rt.m.upgrades.Load())
		w.Counter("potluck_lb_route_bytes_in_total", "Request body bytes received from clients (declared length).", rl, rt.m.bytesIn.Load())
		w.Counter("potluck_lb_route_bytes_out_total", "Response body bytes sent to clients (declared length).", rl, rt.m.bytesOut.Load())
		w.Histogram("potluck_lb_route_duration_seconds", "Time to the response header per route.", rl, &rt.m.latency)
		for _, b := range rt.backends {
			bl := metrics.Labels("route", rt.name, "backend", b.spec.Addr)
			w.Counter("potluck_lb_backend_requests_total", "Attempts sent to a backend.", bl, b.m.requests.Load())
			w.Counter("potluck_lb_backend_failures_total", "Unsuccessful attempts (connect/send/read error, timeout, bad header, or a configured status).", bl, b.m.failures.Load())
			w.Counter("potluck_lb_backend_mark_downs_total", "Times the backend was taken out for fail_timeout.", bl, b.m.markDowns.Load())
			w.Counter("potluck_lb_backend_recoveries_total", "Times a probe brought the backend back.", bl, b.m.recoveries.Load())
			w.Counter("potluck_lb_backend_probes_total", "Probe requests sent after fail_timeout.", bl, b.m.probes.Load())
			w.Counter("potluck_lb_backend_pipeline_stalled_total", "Requests sent over the keep-alive pool because every pipelined connection waited on a slow response.", bl, b.m.stalled.Load())
			w.Counter("potluck_lb_backend_bytes_in_total", "Request body bytes sent to the backend.", bl, b.m.bytesIn.Load())
			w.Counter("potluck_lb_backend_bytes_out_total", "Response body bytes from the backend (declared length).", bl, b.m.bytesOut.Load())
			w.Histogram("potluck_lb_backend_response_seconds", "Time to the backend's response header.", bl, &b.m.latency)
			up := 1.0
			if b.health.Down(now) {
				up = 0
			}
			w.Gauge("potluck_lb_backend_up", "1 if the backend is live, 0 while it is out for fail_timeout.", bl, up)
			w.Gauge("potluck_lb_backend_in_flight", "Requests in flight to the backend.", bl, float64(b.inflight.Load()))
			w.Gauge("potluck_lb_backend_weight", "Configured weight.", bl, float64(b.weight()))
		}
	}
	return w.Err()
}
