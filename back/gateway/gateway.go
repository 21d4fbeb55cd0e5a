// Package gateway is a Back's HTTP gateway for one forwarded instance port:
// it reads the HTTP/1.1 requests a Front sends on a tunnel connection,
// pipelined or not, sends up to MaxInFlight of them at a time to the
// container over a pool of keep-alive connections (plain HTTP/1.1, one
// request per connection at a time), and writes the responses back in
// request order. The Front can then pipeline safely: the gateway, not an
// unknown app, is what parses its pipelined requests.
//
// Messages pass through as received (heads byte for byte, bodies streamed
// with their framing), an Upgrade request turns the rest of its connection
// into a raw relay, and a container that refuses the connection or dies
// before answering makes the gateway close the tunnel connection after the
// earlier responses, which the Front sees as the raw relay's failure: an
// error before any response, so it tries the next instance.
package gateway

import (
	"log/slog"
	"net"
	"sync/atomic"
	"time"
)

// Config bounds a gateway. Zero values mean the defaults.
type Config struct {
	// MaxInFlight bounds the requests of one tunnel connection sent to the
	// container and not yet answered to the Front; default 64 (lb's
	// DefaultPipelineDepth).
	MaxInFlight int
	// MaxConns bounds the connections to the container, busy and idle;
	// default 1024. A request finding all busy waits for one.
	MaxConns int
	// MaxIdle bounds the idle keep-alive connections kept; default 256.
	MaxIdle int
	// MaxHeadSize bounds a request or response head and a chunked body's
	// trailers; default 64 KiB (lb accepts request heads up to 16 KiB).
	MaxHeadSize int
	// MaxReplayBody: a request body up to this size (declared by
	// Content-Length) is read whole before the request is sent, so it can
	// be sent again when a pooled connection turns out closed; larger and
	// chunked bodies are streamed. Default 64 KiB.
	MaxReplayBody int
	// IdleTimeout closes a tunnel connection when no request starts within
	// it; default 5 minutes (the Front closes idle ones after 30 s).
	IdleTimeout time.Duration
	// HeaderTimeout bounds reading a request head from its first byte;
	// default 60 s.
	HeaderTimeout time.Duration
	// IOTimeout bounds every other read and write on either side (bodies,
	// a response head: the Front's own proxy_read_timeout of 60 s passes
	// first); default 10 minutes.
	IOTimeout time.Duration
	// UpstreamIdleTimeout closes pooled connections idle this long;
	// default 30 s.
	UpstreamIdleTimeout time.Duration
	// Logger receives state transitions; nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	set := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	setD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	set(&c.MaxInFlight, 64)
	set(&c.MaxConns, 1024)
	set(&c.MaxIdle, 256)
	set(&c.MaxHeadSize, 64<<10)
	set(&c.MaxReplayBody, 64<<10)
	setD(&c.IdleTimeout, 5*time.Minute)
	setD(&c.HeaderTimeout, time.Minute)
	setD(&c.IOTimeout, 10*time.Minute)
	setD(&c.UpstreamIdleTimeout, 30*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Gateway serves the tunnel connections of one forwarded port.
type Gateway struct {
	cfg  Config
	log  *slog.Logger
	pool *pool

	requests, failed, malformed, upgrades atomic.Uint64
	inFlight                              atomic.Int64
	// failing is set while the container refuses or drops requests: the
	// change is logged once, not per request.
	failing atomic.Bool
}

// Stats are a gateway's counters.
type Stats struct {
	Requests  uint64 // requests sent to the container (an upgrade counts once)
	InFlight  int64  // sent and not yet answered
	Failed    uint64 // the container refused the connection or failed before its response ended
	Malformed uint64 // requests answered 400/408/431 here
	Upgrades  uint64 // connections relayed raw after an Upgrade request
}

// New returns a gateway; Serve it each tunnel connection.
func New(cfg Config) *Gateway {
	cfg = cfg.withDefaults()
	g := &Gateway{cfg: cfg, log: cfg.Logger}
	g.pool = newPool(&g.cfg)
	return g
}

// Stats returns the counters.
func (g *Gateway) Stats() Stats {
	return Stats{
		Requests: g.requests.Load(), InFlight: g.inFlight.Load(), Failed: g.failed.Load(),
		Malformed: g.malformed.Load(), Upgrades: g.upgrades.Load(),
	}
}

// CloseIdle closes the idle connections to the container: its address
// changed, or the forward was parked.
func (g *Gateway) CloseIdle() { g.pool.closeIdle(false) }

// Close closes the idle connections and refuses new ones. Connections being
// served end when their tunnel connections are closed (the forward does).
func (g *Gateway) Close() { g.pool.closeIdle(true) }

// Serve serves one tunnel connection until it ends, and closes it. dial
// connects to the container.
func (g *Gateway) Serve(c net.Conn, dial Dial) {
	s := newSession(g, c, dial)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.writeLoop()
	}()
	s.readLoop()
	<-writerDone
	s.abort()
	s.finish()
}

// upstreamFailed records a request the container did not answer.
func (g *Gateway) upstreamFailed(err error) {
	g.failed.Add(1)
	if g.failing.CompareAndSwap(false, true) {
		g.log.Warn("gateway: the container refused or dropped a request; its tunnel connection is closed so the Front tries another instance", "err", err)
	}
}

func (g *Gateway) upstreamAnswered() {
	if g.failing.Load() && g.failing.CompareAndSwap(true, false) {
		g.log.Info("gateway: the container answers again")
	}
}
