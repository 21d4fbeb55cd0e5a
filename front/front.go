// Package front is the Front agent: it registers with the core as a mesh
// hub, follows the routes of the installations it serves and hot-reloads them
// into the lb proxy, which dials Backs through the mesh. The last good routes
// are kept on disk (by the agent), so a Front restarted while the core is
// away serves what it served before.
package front

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"potluck/agent"
	"potluck/agentproto"
	"potluck/lb"
	"potluck/lb/metrics"
)

// DefaultPipeline is Config.Pipeline's default: one pipelined connection
// per instance was the fastest (docs/meshnet.md).
const DefaultPipeline = 1

// Config describes a Front.
type Config struct {
	Agent agent.Config
	// Proxy options; the Dialer is always the mesh node's (UnavailableAddr
	// answered in process).
	Proxy lb.Options
	// Pipeline is how many pipelined connections the proxy opens to each
	// instance on a Back that runs the HTTP gateway (agentproto.Backend's
	// Pipeline); 0 means DefaultPipeline, < 0 none (the keep-alive pool
	// only). Proxy.PipelineBackends would pipeline to every Back, raw
	// relays too: it must stay 0.
	Pipeline int
	// Heartbeat is how often the Front reports itself alive.
	Heartbeat time.Duration
	// MetricsInterval is how often it reports its installations' load to
	// the core (default agent.DefaultMetricsInterval).
	MetricsInterval time.Duration
	// HTTPS serves the installations that ask for it over TLS (https.go);
	// nil: plain HTTP only.
	HTTPS  *HTTPSConfig
	Logger *slog.Logger
}

// Front is a running Front agent.
type Front struct {
	cfg         Config
	log         *slog.Logger
	agent       *agent.Agent
	proxy       *lb.Proxy
	liveness    *livenessWatch
	unavailable *unavailable
	usage       *usage
	https       *https // nil without Config.HTTPS
}

// Start registers (or restores the saved identity), brings up the mesh node
// and the proxy with no routes yet.
func Start(ctx context.Context, cfg Config) (*Front, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Pipeline == 0 {
		cfg.Pipeline = DefaultPipeline
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 5 * time.Second
	}
	cfg.Agent.Role = "front"
	cfg.Agent.Logger = cfg.Logger
	ag, err := agent.Start(ctx, cfg.Agent)
	if err != nil {
		return nil, err
	}
	u := newUnavailable(cfg.Logger)
	opts := cfg.Proxy
	opts.Dialer = u.dialer(ag.Node().DialContext)
	if opts.Logger == nil {
		opts.Logger = cfg.Logger
	}
	var tlsFront *https
	if cfg.HTTPS != nil {
		tlsFront = newHTTPS(*cfg.HTTPS, ag.Identity().HostID, ag.Call, reportTLS(ag.Call, cfg.Logger), cfg.Logger)
		opts.Wrap = tlsFront.wrap
	}
	f := &Front{cfg: cfg, log: cfg.Logger, agent: ag, proxy: lb.New(opts), unavailable: u, https: tlsFront}
	f.usage = newUsage(f.proxy)
	f.liveness = &livenessWatch{node: ag.Node(), log: cfg.Logger,
		gone: func(h netip.Addr) { f.proxy.BackendUnreachable(h.String()) },
		back: func(h netip.Addr) { f.proxy.BackendReachable(h.String()) }}
	return f, nil
}

// Agent is the host agent underneath.
func (f *Front) Agent() *agent.Agent { return f.agent }

// Proxy is the data plane.
func (f *Front) Proxy() *lb.Proxy { return f.proxy }

// Serve serves client traffic on ln until Shutdown.
func (f *Front) Serve(ln net.Listener) error { return f.proxy.Serve(ln) }

// ServeTLS serves HTTPS clients on ln (raw TCP: the Front does the TLS)
// until Shutdown: HTTP/1.1 through the proxy, h2 through the HTTP/2 server
// HTTPSConfig.H2Server picks, into the proxy's handler.
func (f *Front) ServeTLS(ln net.Listener) error {
	if f.https == nil {
		return errors.New("front: HTTPS is not configured")
	}
	return f.https.srv.Serve(ln, f.proxy)
}

// CertificateAttempts is how many ACME orders this Front started for
// domain (0 without HTTPS).
func (f *Front) CertificateAttempts(domain string) int {
	if f.https == nil {
		return 0
	}
	return f.https.Attempts(domain)
}

// Run follows the core and heartbeats until ctx ends, or until the host is
// decommissioned (agent.ErrDecommissioned; the routes are gone by then).
func (f *Front) Run(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { f.agent.Heartbeats(ctx, f.cfg.Heartbeat, nil) })
	wg.Go(func() { f.liveness.run(ctx) })
	wg.Go(func() {
		f.agent.ReportMetricsEvery(ctx, cmp.Or(f.cfg.MetricsInterval, agent.DefaultMetricsInterval), f.usage.report)
	})
	err := f.agent.Follow(ctx, f.apply)
	stop()
	wg.Wait()
	return err
}

func (f *Front) apply(_ context.Context, d *agentproto.DesiredState) error {
	routes := Routes(d.Routes, max(f.cfg.Pipeline, 0))
	if err := f.proxy.Update(routes); err != nil {
		return fmt.Errorf("routes refused, the previous ones keep serving: %w", err)
	}
	f.liveness.setHosts(backHosts(routes))
	if f.https != nil {
		f.https.update(d.Routes)
	}
	f.log.Info("routes updated", "index", d.Index, "routes", len(routes))
	return nil
}

// Routes turns the core's routes into proxy routes: one route per
// installation, named after it, for its domain, over the Backs whose instance
// the Back reported running (healthy). Instances still starting, failed
// (unhealthy) or draining after a newer release are left out, so the
// passive health check does not mark them down for fail_timeout before they
// ever served, and clients never reach one the Back found unhealthy. An
// installation with no instance ready keeps its route, to UnavailableAddr:
// its clients get 503 with Retry-After, not the 404 of an unknown site.
// Health uses NGINX's defaults: max_fails=1, fail_timeout=20s. Instances
// on Backs that parse requests themselves get pipeline pipelined
// connections.
func Routes(in []agentproto.Route, pipeline int) []lb.Route {
	out := make([]lb.Route, 0, len(in))
	for _, r := range in {
		var running []lb.Backend
		for _, b := range r.Backends {
			if b.State != agentproto.InstanceRunning {
				continue
			}
			lbb := lb.Backend{Addr: b.Address}
			if b.Pipeline {
				lbb.Pipeline = pipeline
			}
			running = append(running, lbb)
		}
		if len(running) == 0 {
			running = []lb.Backend{{Addr: UnavailableAddr}}
		}
		out = append(out, lb.Route{Name: r.Installation, Hosts: []string{r.Domain}, Backends: running})
	}
	return out
}

// backHosts are the tunnel addresses of the Backs the routes use.
func backHosts(routes []lb.Route) []netip.Addr {
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	for _, r := range routes {
		for _, b := range r.Backends {
			ap, err := netip.ParseAddrPort(b.Addr)
			if err != nil || seen[ap.Addr()] {
				continue
			}
			seen[ap.Addr()] = true
			out = append(out, ap.Addr())
		}
	}
	return out
}

// AdminHandler serves /metrics (proxy, agent and mesh), /status (JSON) and
// /healthz.
func (f *Front) AdminHandler() http.Handler {
	return f.agent.AdminHandler(func(mw *metrics.Writer) { f.proxy.WriteMetrics(mw) },
		func() map[string]any { return map[string]any{"proxy": f.proxy.Status()} })
}

// Shutdown drains the proxy and brings the mesh down.
func (f *Front) Shutdown(ctx context.Context) error {
	if f.https != nil {
		f.https.srv.CloseListeners()
	}
	err := f.proxy.Shutdown(ctx)
	if f.https != nil {
		f.https.srv.Close(ctx)
		f.https.close()
	}
	return errors.Join(err, f.unavailable.close(), f.agent.Close())
}
