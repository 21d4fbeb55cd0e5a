// Package h2 is the Front's own HTTP/2 server: it serves the streams of
// HTTP/2 connections (TLS, ALPN h2) with a fasthttp.RequestHandler, lb's,
// without net/http in between.
//
// One goroutine per connection reads frames (x/net/http2's Framer) and
// decodes header blocks (its hpack) straight into a fasthttp.RequestCtx; a
// bounded pool of reusable worker goroutines runs the handler and writes
// the response; a second goroutine per connection writes out, as one
// batch, every frame queued while the previous write was in the kernel.
// Go's HTTP/2 server instead starts a goroutine per stream, hands every
// frame read and written through its serve goroutine and builds a
// net/http request per stream, which the Front then converted to a
// fasthttp one.
//
// The server is meant to be a correct HTTP/2 server (RFC 9113) for a
// reverse proxy: SETTINGS, PING, GOAWAY (graceful shutdown), RST_STREAM,
// flow control both ways, CONTINUATION, MAX_CONCURRENT_STREAMS, request
// bodies streamed to the handler and response bodies streamed from it.
// It has no server push, no priorities (all streams are equal), no
// extended CONNECT (so no WebSockets over HTTP/2, as before), and answers
// CONNECT with 405.
package h2

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Defaults of Config's zero fields.
const (
	DefaultMaxStreams        = 250
	DefaultMaxHeaderListSize = 64 << 10
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultReadTimeout       = 10 * time.Second
	DefaultBodyTimeout       = 60 * time.Second
	DefaultSendTimeout       = 60 * time.Second
	DefaultMaxWorkers        = 8192
)

// Config are a Server's settings; zero fields take the defaults above.
type Config struct {
	Logger *slog.Logger
	// MaxStreams is SETTINGS_MAX_CONCURRENT_STREAMS: streams beyond it
	// are refused (REFUSED_STREAM).
	MaxStreams uint32
	// MaxHeaderListSize bounds a request's header list (RFC 9113's size:
	// names, values and 32 bytes per field); larger requests get 431.
	MaxHeaderListSize uint32
	// IdleTimeout closes (GOAWAY) a connection without streams this long.
	IdleTimeout time.Duration
	// ReadTimeout bounds the client's preface and first SETTINGS.
	ReadTimeout time.Duration
	// BodyTimeout bounds the wait for the next piece of a request body
	// (NGINX's client_body_timeout).
	BodyTimeout time.Duration
	// SendTimeout bounds a response's wait for the client's flow-control
	// window or for the connection to take its bytes (NGINX's
	// send_timeout); past it the connection is closed.
	SendTimeout time.Duration
	// MaxWorkers bounds the handler goroutines of the whole server;
	// streams beyond wait for one.
	MaxWorkers int
}

func (c *Config) fill() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.MaxHeaderListSize == 0 {
		c.MaxHeaderListSize = DefaultMaxHeaderListSize
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.BodyTimeout <= 0 {
		c.BodyTimeout = DefaultBodyTimeout
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = DefaultSendTimeout
	}
	if c.MaxWorkers <= 0 {
		c.MaxWorkers = DefaultMaxWorkers
	}
}

// Server serves HTTP/2 connections. Its zero value is not usable: see New.
type Server struct {
	cfg     Config
	pool    *workerPool
	streams sync.Pool // *stream, with their RequestCtx and buffers
	dates   atomic.Pointer[dateCache]

	mu       sync.Mutex
	conns    map[*conn]struct{}
	shutdown bool
	open     sync.WaitGroup // ServeConn calls
}

// New returns a Server with cfg; Close stops its worker pool.
func New(cfg Config) *Server {
	cfg.fill()
	return &Server{cfg: cfg, pool: newWorkerPool(cfg.MaxWorkers), conns: map[*conn]struct{}{}}
}

// ErrServerClosed is ServeConn's answer once Shutdown or Close was called.
var ErrServerClosed = errors.New("h2: server closed")

// ServeConn serves nc, whose client speaks HTTP/2 (ALPN h2, the preface
// not yet read), with handler until the connection ends; it closes nc.
// The handler sees a connection that is TLS when nc is a *tls.Conn (or
// has its ConnectionState), with nc's addresses.
func (s *Server) ServeConn(nc net.Conn, handler fasthttp.RequestHandler) error {
	c := newConn(s, nc, handler)
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		nc.Close()
		return ErrServerClosed
	}
	s.conns[c] = struct{}{}
	s.open.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.open.Done()
	}()
	return c.serve()
}

// Shutdown sends every connection a GOAWAY, lets their streams finish
// and closes each when it has none; it returns when all are closed or,
// closing what is left, when ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.goAway()
	}
	done := make(chan struct{})
	go func() { s.open.Wait(); close(done) }()
	select {
	case <-done:
		s.pool.stop()
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close closes every connection at once (streams in flight are cut) and
// stops the worker pool.
func (s *Server) Close() {
	s.mu.Lock()
	s.shutdown = true
	for c := range s.conns {
		c.abort()
	}
	s.mu.Unlock()
	s.pool.stop()
}

// tlsInfo is what a RequestCtx knows of a TLS connection: its addresses
// and its state (fasthttp's IsTLS looks for ConnectionState). It is never
// read or written.
type tlsInfo struct {
	plainInfo
	state tls.ConnectionState
}

func (c *tlsInfo) Handshake() error                     { return nil }
func (c *tlsInfo) ConnectionState() tls.ConnectionState { return c.state }

// plainInfo is what a RequestCtx knows of a connection without TLS.
type plainInfo struct {
	net.Conn // nil: never used
	local    net.Addr
	remote   net.Addr
}

func (c *plainInfo) LocalAddr() net.Addr              { return c.local }
func (c *plainInfo) RemoteAddr() net.Addr             { return c.remote }
func (c *plainInfo) Close() error                     { return nil }
func (c *plainInfo) SetDeadline(time.Time) error      { return nil }
func (c *plainInfo) SetReadDeadline(time.Time) error  { return nil }
func (c *plainInfo) SetWriteDeadline(time.Time) error { return nil }

func connInfo(nc net.Conn) net.Conn {
	p := plainInfo{local: nc.LocalAddr(), remote: nc.RemoteAddr()}
	if t, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return &tlsInfo{plainInfo: p, state: t.ConnectionState()}
	}
	return &p
}

type fasthttpLog struct{ log *slog.Logger }

func (l fasthttpLog) Printf(format string, args ...any) {
	l.log.Debug("fasthttp", "msg", format, "args", args)
}
