package lb

import (
	"bytes"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// Client-side limits, NGINX's client_header_timeout, client_body_timeout,
// send_timeout and keepalive_timeout, applied by clientConn.

// clientListener wraps each accepted connection in a clientConn.
type clientListener struct {
	net.Listener
	o *Options
}

func (l clientListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	// An error here (the client already gone) must not reach fasthttp's
	// accept loop, which would stop serving: the first read will fail.
	_ = c.SetReadDeadline(time.Now().Add(l.o.ClientHeaderTimeout))
	return wrapClient(c, l.o), nil
}

type clientPhase uint8

const (
	phaseHeader  clientPhase = iota // reading a request header: one deadline for all of it
	phaseBody                       // reading the body: a deadline per read
	phaseRespond                    // writing the response: a deadline per write
	phaseIdle                       // waiting for the next request: one deadline
	phaseTunnel                     // hijacked (WebSocket): no deadline
)

// clientConn is a client's connection. It owns its deadlines and applies
// NGINX's client timeouts by phase:
//
//   - header: ClientHeaderTimeout for the whole header, not per line (from
//     accept for the first request, from its first byte for the next ones);
//   - body: ClientBodyTimeout between two successive reads;
//   - respond: ClientSendTimeout between two successive writes (a read then,
//     of a body after 100 Continue, keeps ClientBodyTimeout);
//   - idle: ClientIdleTimeout until the next request's first byte;
//   - tunnel: none.
//
// fasthttp's server calls the deadline setters at fixed points of its
// request loop (with ReadTimeout and WriteTimeout 0, IdleTimeout and
// Server.HeaderReceived set, as New configures it); those calls are the
// phase changes, and the deadlines they ask for are replaced by the above:
//
//   - SetReadDeadline(zero) after the idle wait: the next request's first
//     byte arrived → header;
//   - SetReadDeadline(t) while in header: HeaderReceived returned → body;
//   - SetReadDeadline(t) otherwise: the keep-alive wait begins → idle;
//   - a Write while in header or body: the response (or 100 Continue)
//     begins → respond;
//   - SetDeadline(zero): the connection is being hijacked → tunnel.
//
// A connection is served by one goroutine at a time (fasthttp's worker,
// then the hijack handler's), so the fields need no lock; in the tunnel
// phase Read and Write run concurrently and touch none of them.
type clientConn struct {
	net.Conn
	o                    *Options
	phase                clientPhase
	readUntil, sendUntil time.Time
}

func (c *clientConn) Read(b []byte) (int, error) {
	if c.phase == phaseBody || c.phase == phaseRespond {
		if err := slide(&c.readUntil, c.o.ClientBodyTimeout, c.Conn.SetReadDeadline); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(b)
}

func (c *clientConn) Write(b []byte) (int, error) {
	if c.phase == phaseHeader || c.phase == phaseBody {
		// sendUntil is kept from the last response: only slide sets the
		// write deadline, so it still is the socket's, and a keep-alive
		// connection answering often sets it once per 1/16 of the timeout,
		// not once per response.
		c.phase = phaseRespond
	}
	if c.phase == phaseRespond {
		if err := slide(&c.sendUntil, c.o.ClientSendTimeout, c.Conn.SetWriteDeadline); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(b)
}

// slide pushes a per-operation deadline forward once less than 15/16 of the
// timeout remains, so that most operations cost no deadline call.
func slide(until *time.Time, d time.Duration, set func(time.Time) error) error {
	now := time.Now()
	if until.Sub(now) >= d-d/16 {
		return nil
	}
	*until = now.Add(d)
	return set(*until)
}

func (c *clientConn) SetReadDeadline(t time.Time) error {
	switch {
	case t.IsZero():
		if c.phase != phaseIdle {
			return nil
		}
		c.phase = phaseHeader
		return c.Conn.SetReadDeadline(time.Now().Add(c.o.ClientHeaderTimeout))
	case c.phase == phaseHeader:
		c.phase = phaseBody
		c.readUntil = time.Time{}
		return nil
	case c.phase == phaseTunnel:
		return nil
	default:
		c.phase = phaseIdle
		return c.Conn.SetReadDeadline(time.Now().Add(c.o.ClientIdleTimeout))
	}
}

// SetWriteDeadline: write deadlines are the respond phase's own.
func (c *clientConn) SetWriteDeadline(time.Time) error { return nil }

func (c *clientConn) SetDeadline(t time.Time) error {
	if !t.IsZero() {
		return nil
	}
	c.phase = phaseTunnel
	return c.Conn.SetDeadline(time.Time{})
}

// oversizeMark marks a request whose declared body is over MaxBodySize. Its
// name has a space, which no header read from a client can have, so it
// cannot be forged; it goes away with the request. Such a request is also
// marked Connection: close (it is answered so), which is a flag: only then
// does declaredOversize scan the header for the mark, not for every request.
const oversizeMark = "Potluck oversize"

// headerReceived is fasthttp's Server.HeaderReceived. Asking for a read
// timeout makes fasthttp call SetReadDeadline, which moves the connection
// to the body phase. A declared body over MaxBodySize is refused before
// fasthttp starts reading it (it would otherwise wait for its first bytes):
// its length is set to 0 and the request marked, and the handler answers
// 413 and closes the connection.
func (p *Proxy) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if p.opts.MaxBodySize >= 0 && int64(h.ContentLength()) > p.opts.MaxBodySize &&
		!bytes.EqualFold(h.Peek(fasthttp.HeaderExpect), []byte("100-continue")) { // p.expect answers those
		h.SetContentLength(0)
		h.Set(oversizeMark, "1")
		h.SetConnectionClose()
	}
	return fasthttp.RequestConfig{ReadTimeout: p.opts.ClientBodyTimeout}
}

// declaredOversize reports a request headerReceived marked.
func declaredOversize(h *fasthttp.RequestHeader) bool {
	return h.ConnectionClose() && h.ContentLength() == 0 && len(h.Peek(oversizeMark)) > 0
}

// lengthAndChunked reports a request that declared both a Content-Length and
// a chunked Transfer-Encoding (fasthttp keeps only the latter). Such a
// message may be an attempt to smuggle a request: RFC 9112 §6.3 says it
// ought to be handled as an error and the connection closed after the
// response, and NGINX answers 400 and closes; so does lb.
func lengthAndChunked(h *fasthttp.RequestHeader) bool {
	if h.ContentLength() != -1 {
		return false
	}
	raw := h.RawHeaders()
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(line) > len("content-length") && bytes.EqualFold(line[:len("content-length")], []byte("content-length")) {
			if rest := bytes.TrimLeft(line[len("content-length"):], " \t"); len(rest) > 0 && rest[0] == ':' {
				return true
			}
		}
	}
	return false
}
