package lb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"potluck/lb/metrics"
)

// Proxy is the balancing reverse proxy. Create it with New, give it routes
// with Update (any time, from any goroutine), serve with Serve and stop with
// Shutdown.
type Proxy struct {
	opts   Options
	log    *slog.Logger
	table  atomic.Pointer[table]
	update sync.Mutex // serialises Update
	server *fasthttp.Server
	bufs   sync.Pool // *[]byte request bodies kept for retries
	relays sync.Pool // *relay

	// draining holds the *backendState removed by Update that still have
	// requests in flight, so that BackendUnreachable reaches them too.
	draining sync.Map

	tunnels   sync.WaitGroup // hijacked (WebSocket) connections
	tunnelsMu sync.Mutex
	open      map[net.Conn]struct{}

	m proxyMetrics
	// holdFailing is set while request bodies cannot be held on disk
	// (TempDir full or gone): logged when it starts and when it ends, not
	// for every request answered 500 meanwhile.
	holdFailing atomic.Bool
}

type proxyMetrics struct {
	unknownHost metrics.Counter
	reloads     metrics.Counter
	activeTun   atomic.Int64
}

// New returns a proxy with an empty routing table (every host gets 404).
func New(o Options) *Proxy {
	o = o.withDefaults()
	p := &Proxy{opts: o, log: o.Logger, open: map[net.Conn]struct{}{}}
	p.table.Store(&table{byHost: map[string]*routeState{}})
	p.server = &fasthttp.Server{
		Handler:                      p.handle,
		Name:                         "",
		NoDefaultServerHeader:        true,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		StreamRequestBody:            true,
		MaxRequestBodySize:           o.RetryBuffer, // pre-read size; the limit is enforced here
		DisablePreParseMultipartForm: true,
		// The client timeouts are clientConn's; fasthttp's deadline calls,
		// made with these settings, tell it the phase of the exchange.
		IdleTimeout:     o.ClientIdleTimeout,
		Concurrency:     o.MaxClientConns,
		ReadBufferSize:  16 << 10, // also the largest request header
		CloseOnShutdown: true,
		ExpectHandler:   p.expect,
		Logger:          fasthttpLogger{p.log},
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			var tooBig *fasthttp.ErrSmallBuffer
			if errors.As(err, &tooBig) {
				ctx.Error("431 Request Header Fields Too Large\n", fasthttp.StatusRequestHeaderFieldsTooLarge)
				return
			}
			if errors.Is(err, fasthttp.ErrTimeout) || isTimeout(err) {
				ctx.Error(msgClientTimeout, fasthttp.StatusRequestTimeout)
				return
			}
			ctx.Error("400 Bad Request: malformed request\n", fasthttp.StatusBadRequest)
		},
	}
	if o.Wrap != nil {
		p.server.Handler = o.Wrap(p.handle)
	}
	p.bufs.New = func() any { b := make([]byte, 0, o.RetryBuffer); return &b }
	p.relays.New = func() any { return &relay{pool: &p.relays} }
	p.server.HeaderReceived = p.headerReceived
	return p
}

// Update validates routes and atomically replaces the routing table.
// Backends whose address and parameters are unchanged keep their health
// state, counters and idle connections; removed backends drain in the
// background. In-flight requests finish on the table they started with.
func (p *Proxy) Update(routes []Route) error {
	if err := ValidateRoutes(routes); err != nil {
		return fmt.Errorf("invalid routes: %w", err)
	}
	p.update.Lock()
	defer p.update.Unlock()
	old := p.table.Load()
	reuse := map[string]*backendState{}
	for _, rt := range old.routes {
		for _, b := range rt.backends {
			reuse[rt.name+"\x00"+b.spec.Addr] = b
		}
	}
	nt := &table{byHost: map[string]*routeState{}}
	for _, r := range routes {
		rt := &routeState{name: r.name(), hosts: lowerAll(r.Hosts)}
		weights := make([]int, 0, len(r.Backends))
		for _, spec := range r.Backends {
			key := rt.name + "\x00" + spec.Addr
			b, ok := reuse[key]
			if ok && b.sameSpec(spec) {
				delete(reuse, key)
			} else {
				b = newBackendState(spec, &p.opts)
			}
			rt.backends = append(rt.backends, b)
			weights = append(weights, b.weight())
		}
		rt.schedule = smoothWRR(weights)
		rt.single = len(rt.backends) == 1
		if prev := old.find(rt.name); prev != nil {
			rt.m = prev.m // route counters survive reloads
			rt.next.Store(prev.next.Load())
		} else {
			rt.m = &routeMetrics{}
		}
		for _, h := range rt.hosts {
			nt.byHost[h] = rt
		}
		if r.Default {
			nt.def = rt
		}
		nt.routes = append(nt.routes, rt)
	}
	p.table.Store(nt)
	p.m.reloads.Inc()
	drainLimit := p.opts.Timeouts.Read + p.opts.Timeouts.Send
	for _, b := range reuse {
		p.draining.Store(b, struct{}{})
		go func() {
			b.drain(drainLimit)
			p.draining.Delete(b)
		}()
	}
	p.log.Info("routing table updated", "routes", len(nt.routes), "removed_backends", len(reuse))
	return nil
}

// Serve accepts connections on ln until Shutdown. It may be called for
// several listeners.
func (p *Proxy) Serve(ln net.Listener) error {
	err := p.server.Serve(clientListener{Listener: ln, o: &p.opts})
	if err != nil {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// Shutdown stops accepting, lets in-flight requests and WebSocket tunnels
// finish until ctx ends, then closes what is left.
func (p *Proxy) Shutdown(ctx context.Context) error {
	err := p.server.ShutdownWithContext(ctx)
	done := make(chan struct{})
	go func() { p.tunnels.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		p.tunnelsMu.Lock()
		for c := range p.open {
			_ = c.Close()
		}
		p.tunnelsMu.Unlock()
		<-done
	}
	t := p.table.Load()
	for _, rt := range t.routes {
		for _, b := range rt.backends {
			b.closeIdle()
		}
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// Handler returns the proxy's fasthttp handler (with Options.Wrap), for
// embedding in another server.
func (p *Proxy) Handler() fasthttp.RequestHandler { return p.server.Handler }

func (t *table) find(name string) *routeState {
	for _, rt := range t.routes {
		if rt.name == name {
			return rt
		}
	}
	return nil
}

// lookup finds the route for a Host header value without allocating.
func (t *table) lookup(host []byte) *routeState {
	if rt, ok := LookupHost(t.byHost, host); ok {
		return rt
	}
	return t.def
}

// LookupHost finds a Host header value's entry in m, whose keys are host
// names in lower case without port or trailing dot, as the proxy routes
// requests: per request, so without allocating.
func LookupHost[V any](m map[string]V, host []byte) (V, bool) {
	host = stripPort(host)
	if n := len(host); n > 1 && host[n-1] == '.' {
		host = host[:n-1] // the absolute form app.test. names app.test, as in NGINX
	}
	if v, ok := m[string(host)]; ok {
		return v, true
	}
	if hasUpper(host) && len(host) <= 255 {
		var buf [255]byte
		lower := buf[:len(host)]
		for i, c := range host {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			lower[i] = c
		}
		if v, ok := m[string(lower)]; ok {
			return v, true
		}
	}
	var zero V
	return zero, false
}

func stripPort(h []byte) []byte {
	if len(h) > 0 && h[0] == '[' { // [v6]:port
		for i := len(h) - 1; i > 0; i-- {
			if h[i] == ']' {
				return h[1:i]
			}
		}
		return h
	}
	for i := len(h) - 1; i >= 0; i-- {
		if h[i] == ':' {
			return h[:i]
		}
		if h[i] < '0' || h[i] > '9' {
			break
		}
	}
	return h
}

func hasUpper(b []byte) bool {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

// expect answers Expect: 100-continue: refuse bodies over the limit before
// the client sends them.
func (p *Proxy) expect(ctx *fasthttp.RequestCtx) int {
	if p.opts.MaxBodySize >= 0 && int64(ctx.Request.Header.ContentLength()) > p.opts.MaxBodySize {
		return fasthttp.StatusRequestEntityTooLarge
	}
	return fasthttp.StatusContinue
}

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("fasthttp: " + fmt.Sprintf(format, args...))
}
