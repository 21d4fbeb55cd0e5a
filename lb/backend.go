package lb

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"potluck/lb/health"
	"potluck/lb/metrics"
)

// backendState is one Backend of one route as served: its health, its connection
// pool and its counters. It survives reloads while its spec is unchanged.
type backendState struct {
	spec     Backend
	host     string // spec.Addr without the port, for BackendUnreachable
	health   *health.State
	client   *fasthttp.HostClient
	pipe     *pipeClient // nil unless the backend is pipelined (pipelineConns)
	dial     Dialer
	timeouts Timeouts

	// conns are the open connections, pooled, pipelined or tunnelled, so
	// that BackendUnreachable can close them; dialCtx bounds dials under
	// way, and is cancelled and replaced by BackendUnreachable.
	connsMu     sync.Mutex
	conns       map[*backendConn]struct{}
	dialCtx     context.Context
	cancelDials context.CancelFunc

	inflight  atomic.Int64
	downSince atomic.Int64 // clock reading when it last went down
	m         backendMetrics
}

type backendMetrics struct {
	requests   metrics.Counter // attempts sent to this backend
	failures   metrics.Counter // unsuccessful attempts (NGINX's sense)
	markDowns  metrics.Counter
	recoveries metrics.Counter
	probes     metrics.Counter
	stalled    metrics.Counter // requests sent over the pool because every pipelined connection was stalled
	bytesIn    metrics.Counter // request body bytes sent to the backend
	bytesOut   metrics.Counter // response body bytes received (when known)
	latency    metrics.Histogram
}

func newBackendState(spec Backend, o *Options) *backendState {
	b := &backendState{
		spec:     spec,
		health:   health.NewState(healthParams(spec)),
		dial:     o.Dialer,
		timeouts: o.Timeouts,
		conns:    map[*backendConn]struct{}{},
	}
	b.host = spec.Addr
	if h, _, err := net.SplitHostPort(spec.Addr); err == nil {
		b.host = h
	}
	b.dialCtx, b.cancelDials = context.WithCancel(context.Background())
	b.client = &fasthttp.HostClient{
		Addr:                spec.Addr,
		Dial:                func(string) (net.Conn, error) { return b.connect(true) },
		MaxConns:            o.MaxConnsPerBackend,
		MaxIdleConnDuration: o.IdleConnTimeout,
		// The balancer retries, on another backend; the only same-backend
		// re-send, for a pooled connection found closed, is Proxy.send's,
		// which can tell a reused connection from a fresh one.
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		NoDefaultUserAgentHeader:  true,
		DisablePathNormalizing:    true,
		StreamResponseBody:        true,
		ReadBufferSize:            16 << 10,
		WriteBufferSize:           16 << 10,
		ConnPoolStrategy:          fasthttp.LIFO,
	}
	if n := pipelineConns(spec, o); n > 0 {
		b.pipe = newPipeClient(spec.Addr, b.client.Dial, n, o.PipelineDepth, o.IdleConnTimeout, o.PipelineStall)
	}
	return b
}

// pipelineConns is how many pipelined connections spec gets under o; 0:
// none, the keep-alive pool only.
func pipelineConns(spec Backend, o *Options) int {
	if spec.Pipeline > 0 {
		return spec.Pipeline
	}
	return o.PipelineBackends
}

func healthParams(s Backend) health.Params {
	p := health.Params{MaxFails: s.MaxFails, FailTimeout: s.FailTimeout}
	switch {
	case p.MaxFails == DisableHealth:
		p.MaxFails = 0
	case p.MaxFails == 0:
		p.MaxFails = DefaultMaxFails
	}
	if p.FailTimeout == 0 {
		p.FailTimeout = DefaultFailTimeout
	}
	return p
}

func (b *backendState) weight() int { return weightOf(b.spec) }

func weightOf(s Backend) int {
	if s.Weight <= 0 {
		return DefaultWeight
	}
	return s.Weight
}

// sameSpec reports whether b can be kept as is for spec.
func (b *backendState) sameSpec(spec Backend) bool {
	return b.spec.Addr == spec.Addr && b.weight() == weightOf(spec) &&
		b.health.Params() == healthParams(spec) && b.spec.Pipeline == spec.Pipeline
}

// drain closes the pool once in-flight requests are done, bounded by limit.
func (b *backendState) drain(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for b.inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	b.closeIdle()
}

func (b *backendState) closeIdle() {
	b.client.CloseIdleConnections()
	if b.pipe != nil {
		b.pipe.closeIdle()
	}
}

// forget drops a closed connection from b's set.
func (b *backendState) forget(c *backendConn) {
	b.connsMu.Lock()
	delete(b.conns, c)
	b.connsMu.Unlock()
}

// abort closes every open connection to b and cancels the dials under way,
// so that requests in flight fail now; it returns how many connections it
// closed.
func (b *backendState) abort() int {
	// Idle pooled connections leave the pool, so that none is reused
	// once the backend is reachable again.
	b.client.CloseIdleConnections()
	b.connsMu.Lock()
	b.cancelDials()
	b.dialCtx, b.cancelDials = context.WithCancel(context.Background())
	conns := make([]*backendConn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.connsMu.Unlock()
	for _, c := range conns {
		c.aborted.Store(true)
		_ = c.Conn.Close() // its user's Close forgets it
	}
	return len(conns)
}

// matches reports whether addr names b: its host:port, or its host alone.
func (b *backendState) matches(addr string) bool {
	return addr == b.spec.Addr || addr == b.host || strings.Trim(addr, "[]") == b.host
}
