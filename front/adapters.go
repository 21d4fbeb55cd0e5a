package front

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Glue between the Front's three HTTP worlds: lb (fasthttp), certmagic
// (net/http handlers, zap logs) and Go's HTTP/2 server (net/http).

// fasthttpHandler runs a net/http handler that may decline a request
// (certmagic's HandleHTTPChallenge) inside a fasthttp server.
func fasthttpHandler(h func(http.ResponseWriter, *http.Request) bool) func(*fasthttp.RequestCtx) bool {
	return func(ctx *fasthttp.RequestCtx) bool {
		handled := false
		fasthttpadaptor.NewFastHTTPHandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			handled = h(w, r)
		})(ctx)
		if !handled {
			ctx.Response.Reset()
		}
		return handled
	}
}

// h2Adapter serves HTTP/2 requests with lb's fasthttp handler: each
// request becomes a fasthttp.RequestCtx on a connection that says it is
// TLS, so lb applies the same routing, balancing, retries, passive health
// and X-Forwarded-* as for HTTP/1.1; the request body streams in and the
// response body streams out.
type h2Adapter struct {
	handler fasthttp.RequestHandler
	log     *slog.Logger
	// ctxs are reused as fasthttp's server reuses its own: lb holds no
	// RequestCtx after its handler returned.
	ctxs sync.Pool
}

// hopHeaders are connection-specific; HTTP/2 forbids them in responses.
var hopHeaders = map[string]bool{"Connection": true, "Keep-Alive": true, "Proxy-Connection": true,
	"Transfer-Encoding": true, "Upgrade": true}

// maxBatchedHeaders bounds the response headers copyResponseHeader copies
// with two allocations; a response with more takes one or two per header.
const maxBatchedHeaders = 32

// copyResponseHeader copies a response's end-to-end headers into h (Go's
// HTTP/2 server wants strings): every value is a slice of one string, and
// every name's value list a slice of one array, two allocations instead of
// two per header.
func copyResponseHeader(h http.Header, from *fasthttp.ResponseHeader) {
	var names [maxBatchedHeaders]string
	var ends [maxBatchedHeaders]int
	var stack [1024]byte
	values, n := stack[:0], 0
	for k, v := range from.All() {
		name := responseHeaderName(k)
		if hopHeaders[name] {
			continue
		}
		if n == maxBatchedHeaders {
			n = -1
			break
		}
		values = append(values, v...)
		names[n], ends[n] = name, len(values)
		n++
	}
	if n < 0 { // many headers: one by one
		for k, v := range from.All() {
			if name := responseHeaderName(k); !hopHeaders[name] {
				h[name] = append(h[name], string(v))
			}
		}
		return
	}
	all := string(values)
	slots := make([]string, n)
	start := 0
	for i := range n {
		slots[i] = all[start:ends[i]]
		start = ends[i]
		if prev := h[names[i]]; prev != nil {
			h[names[i]] = append(prev, slots[i])
		} else {
			h[names[i]] = slots[i : i+1 : i+1]
		}
	}
}

// responseHeaderName is a response header's canonical name; the common
// ones (fasthttp hands them canonical already) without allocating a copy.
func responseHeaderName(k []byte) string {
	switch string(k) {
	case "Content-Type":
		return "Content-Type"
	case "Content-Length":
		return "Content-Length"
	case "Date":
		return "Date"
	case "Server":
		return "Server"
	case "Cache-Control":
		return "Cache-Control"
	case "Set-Cookie":
		return "Set-Cookie"
	case "Etag":
		return "Etag"
	case "Last-Modified":
		return "Last-Modified"
	case "Location":
		return "Location"
	case "Vary":
		return "Vary"
	case "Content-Encoding":
		return "Content-Encoding"
	}
	return http.CanonicalHeaderKey(string(k))
}

// ServeHTTP serves a request knowing its connection from the request only.
func (a *h2Adapter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	a.serve(w, r, &h2Conn{local: local, remote: parseAddr(r.RemoteAddr), state: r.TLS})
}

// forConn serves the streams of one TLS connection: what a RequestCtx
// knows of it is worked out once for the connection, not per request.
// The streams share it: h2Conn is only read.
func (a *h2Adapter) forConn(tc *tls.Conn) http.Handler {
	state := tc.ConnectionState()
	conn := &h2Conn{local: tc.LocalAddr(), remote: tc.RemoteAddr(), state: &state}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.serve(w, r, conn) })
}

func (a *h2Adapter) serve(w http.ResponseWriter, r *http.Request, conn *h2Conn) {
	growStack(false)
	ctx, _ := a.ctxs.Get().(*fasthttp.RequestCtx)
	if ctx == nil {
		ctx = new(fasthttp.RequestCtx)
	}
	defer func() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.ResetUserValues()
		a.ctxs.Put(ctx)
	}()
	ctx.Init2(conn, fasthttpLog{a.log}, false)
	req := &ctx.Request
	req.Header.SetMethod(r.Method)
	req.SetRequestURI(r.URL.RequestURI())
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.SetHost(r.Host)
	switch {
	case r.ContentLength > 0:
		req.SetBodyStream(r.Body, int(r.ContentLength))
	case r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody:
		req.SetBodyStream(r.Body, -1)
	}
	a.handler(ctx)
	resp := &ctx.Response
	h := w.Header()
	copyResponseHeader(h, &resp.Header)
	if resp.IsBodyStream() && resp.Header.ContentLength() < 0 {
		h.Del("Content-Length")
	}
	w.WriteHeader(resp.StatusCode())
	if r.Method != http.MethodHead {
		if err := resp.BodyWriteTo(w); err != nil {
			a.log.Debug("h2: response body", "err", err)
		}
	} else {
		_ = resp.CloseBodyStream()
	}
}

// h2Conn is what a RequestCtx knows of an HTTP/2 stream's connection: its
// addresses and that it is TLS. It is never read or written.
type h2Conn struct {
	net.Conn // nil: never used
	local    net.Addr
	remote   net.Addr
	state    *tls.ConnectionState
}

func (c *h2Conn) LocalAddr() net.Addr  { return c.local }
func (c *h2Conn) RemoteAddr() net.Addr { return c.remote }
func (c *h2Conn) Handshake() error     { return nil }
func (c *h2Conn) ConnectionState() tls.ConnectionState {
	if c.state == nil {
		return tls.ConnectionState{}
	}
	return *c.state
}
func (c *h2Conn) Close() error                     { return nil }
func (c *h2Conn) SetDeadline(time.Time) error      { return nil }
func (c *h2Conn) SetReadDeadline(time.Time) error  { return nil }
func (c *h2Conn) SetWriteDeadline(time.Time) error { return nil }

func parseAddr(s string) net.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return &net.TCPAddr{}
}

type fasthttpLog struct{ log *slog.Logger }

func (l fasthttpLog) Printf(format string, args ...any) {
	l.log.Debug("fasthttp", "msg", format, "args", args)
}

// zapLogger is a zap logger writing to slog (certmagic logs through zap):
// its info and above, debug dropped.
func zapLogger(log *slog.Logger) *zap.Logger {
	return zap.New(&slogCore{log: log, level: zapcore.InfoLevel})
}

type slogCore struct {
	log    *slog.Logger
	level  zapcore.Level
	fields []zapcore.Field
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= c.level }
func (c *slogCore) With(f []zapcore.Field) zapcore.Core {
	return &slogCore{log: c.log, level: c.level, fields: append(append([]zapcore.Field(nil), c.fields...), f...)}
}
func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}
func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(append([]zapcore.Field(nil), c.fields...), fields...) {
		f.AddTo(enc)
	}
	attrs := make([]any, 0, 2*len(enc.Fields))
	for k, v := range enc.Fields {
		attrs = append(attrs, k, v)
	}
	level := slog.LevelInfo
	switch {
	case e.Level >= zapcore.ErrorLevel:
		level = slog.LevelError
	case e.Level == zapcore.WarnLevel:
		level = slog.LevelWarn
	}
	c.log.Log(context.Background(), level, strings.TrimSpace(e.Message), attrs...)
	return nil
}
func (c *slogCore) Sync() error { return nil }

// handlerStack is about the stack an h2 request takes through lb and
// fasthttp's client.
const handlerStack = 12 << 10

// growStack grows the calling goroutine's stack to fit handlerStack while
// the stack is still shallow. Go's HTTP/2 server runs every stream in a
// new goroutine whose stack starts small; without this it grows deep inside
// fasthttp's request writer, and copying a deep stack (adjusting every
// frame) took 8-11 % of the Front's CPU under h2load. Grown here, the copy
// has a few frames to adjust.
//
// The frame is reserved (the stack check at entry grows the stack) but
// the array is never zeroed: deep is false at every call.
//
//go:noinline
func growStack(deep bool) {
	if deep {
		var pad [handlerStack]byte
		keepStack(pad[:])
	}
}

//go:noinline
func keepStack(b []byte) { _ = b[len(b)-1] }
