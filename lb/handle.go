package lb

import (
	"bytes"
	"errors"
	"io"
	"iter"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// outcome classifies one attempt, following NGINX's proxy_next_upstream.
type outcome uint8

const (
	outcomeOK          outcome = iota
	outcomeConnect             // connect error: nothing sent
	outcomeConnTimeout         // connect timeout: nothing sent
	outcomeTimeout             // send or read timeout before the response header
	outcomeError               // send/read error or bad response header
	outcomeStatus              // a status counted as failure by Options.FailOn
	outcomeBusy                // local connection limit reached: not the backend's fault
	outcomeLocal               // the proxy could not send the request: not the backend's fault
	outcomeIdleClosed          // a pooled connection the backend had closed, and the request could not be re-sent
)

func classify(err error) outcome {
	if err == nil {
		return outcomeOK // checked first: errors.As below allocates
	}
	var de *dialError
	switch {
	case errors.As(err, &de):
		if de.timeout {
			return outcomeConnTimeout
		}
		return outcomeConnect
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return outcomeBusy
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		return outcomeTimeout
	default:
		return outcomeError
	}
}

// nonIdempotent are the methods NGINX never re-sends once the request went out.
func nonIdempotent(h *fasthttp.RequestHeader) bool {
	m := h.Method()
	return h.IsPost() || h.IsPatch() || string(m) == "LOCK"
}

// Error bodies say what happened without internal details.
const (
	msgNoRoute  = "404 Not Found: no site is configured for this host name\n"
	msgNoLive   = "502 Bad Gateway: no backend is available for this site right now\n"
	msgBadGW    = "502 Bad Gateway: the backend could not be reached or sent an invalid response\n"
	msgTimeout  = "504 Gateway Timeout: the backend did not answer in time\n"
	msgTooLarge = "413 Request Entity Too Large: the request body exceeds the limit\n"
	msgBadBody  = "400 Bad Request: the request body could not be read\n"

	msgLengthAndChunked = "400 Bad Request: Content-Length and Transfer-Encoding together\n"
	msgBadHost          = "400 Bad Request: invalid host name\n"

	msgBodyTimeout   = "408 Request Timeout: the request body did not arrive in time\n"
	msgClientTimeout = "408 Request Timeout: the request did not arrive in time\n"
	msgHoldFailed    = "500 Internal Server Error: the request body could not be held for the backend\n"
)

func (p *Proxy) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	t := p.table.Load()
	host := ctx.Host()
	if bytes.Contains(host, []byte("..")) {
		// No name has an empty label; NGINX refuses such a Host too.
		ctx.SetConnectionClose()
		p.fail(ctx, fasthttp.StatusBadRequest, msgBadHost)
		p.accessLog(ctx, "", nil, start)
		return
	}
	rt := t.lookup(host)
	if rt == nil {
		p.m.unknownHost.Inc()
		p.fail(ctx, fasthttp.StatusNotFound, msgNoRoute) // keep-alive, as NGINX
		p.accessLog(ctx, "", nil, start)
		return
	}
	rt.m.requests.Inc()
	req := &ctx.Request
	if declaredOversize(&req.Header) ||
		p.opts.MaxBodySize >= 0 && int64(req.Header.ContentLength()) > p.opts.MaxBodySize {
		ctx.SetConnectionClose()
		p.fail(ctx, fasthttp.StatusRequestEntityTooLarge, msgTooLarge)
		p.finish(ctx, rt, nil, start)
		return
	}
	if lengthAndChunked(&req.Header) {
		ctx.SetConnectionClose()
		p.fail(ctx, fasthttp.StatusBadRequest, msgLengthAndChunked)
		p.finish(ctx, rt, nil, start)
		return
	}
	p.prepareHeader(ctx, rt, &req.Header)
	if isUpgrade(&req.Header) {
		rt.m.upgrades.Inc()
		if req.IsBodyStream() {
			// An upgrade request's body (rare) is sent with its head.
			cl := req.Header.ContentLength()
			if cl < 0 || cl > p.opts.RetryBuffer || p.bufferBody(req, cl) != nil { // the upgrade's head and body leave together
				ctx.SetConnectionClose()
				p.fail(ctx, fasthttp.StatusBadRequest, msgBadBody)
				p.finish(ctx, rt, nil, start)
				return
			}
		}
		b := p.upgrade(ctx, rt)
		p.finish(ctx, rt, b, start)
		return
	}
	b := p.forward(ctx, rt)
	p.finish(ctx, rt, b, start)
}

func (p *Proxy) finish(ctx *fasthttp.RequestCtx, rt *routeState, b *backendState, start time.Time) {
	code := ctx.Response.StatusCode()
	if c := code / 100; c >= 1 && c <= 5 {
		rt.m.status[c].Inc()
	} else {
		rt.m.status[0].Inc()
	}
	if n := responseBytes(&ctx.Response); n > 0 {
		rt.m.bytesOut.Add(uint64(n))
		if b != nil {
			b.m.bytesOut.Add(uint64(n))
		}
	}
	rt.m.latency.Observe(time.Since(start))
	if p.opts.AccessLog {
		p.accessLog(ctx, rt.name, b, start)
	}
}

func (p *Proxy) accessLog(ctx *fasthttp.RequestCtx, route string, b *backendState, start time.Time) {
	if !p.opts.AccessLog {
		return
	}
	backendAddr := ""
	if b != nil {
		backendAddr = b.spec.Addr
	}
	p.log.Info("request",
		"remote", ctx.RemoteAddr().String(),
		"method", string(ctx.Method()),
		"host", string(ctx.Host()),
		"uri", string(ctx.RequestURI()),
		"status", ctx.Response.StatusCode(),
		"route", route,
		"backend", backendAddr,
		"bytes", responseBytes(&ctx.Response),
		"duration", time.Since(start),
	)
}

// responseBytes is the body size: declared by the backend for a streamed
// response (-1 when chunked), exact for one made here.
func responseBytes(r *fasthttp.Response) int {
	if r.IsBodyStream() {
		return r.Header.ContentLength()
	}
	return len(r.Body())
}

func (p *Proxy) fail(ctx *fasthttp.RequestCtx, code int, msg string) {
	closeConn := ctx.Response.ConnectionClose() // Reset would forget it
	ctx.Response.Reset()
	if closeConn {
		ctx.SetConnectionClose()
	}
	ctx.SetStatusCode(code)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(msg)
}

// forward runs the attempt loop and returns the backend that answered.
func (p *Proxy) forward(ctx *fasthttp.RequestCtx, rt *routeState) *backendState {
	req := &ctx.Request
	up := req
	var ub upBody
	if req.IsBodyStream() {
		cl := req.Header.ContentLength()
		switch {
		case cl >= 0 && cl <= p.opts.RetryBuffer:
			if err := p.bufferBody(req, cl); err != nil {
				p.failBody(ctx, err)
				return nil
			}
		case !p.opts.StreamRequestBodies:
			// Held whole before the first attempt, so that any attempt can
			// send it again (NGINX's proxy_request_buffering on).
			f, n, err := p.holdBody(req)
			if err != nil {
				p.failBody(ctx, err)
				return nil
			}
			if f != nil {
				defer f.Close()
				ub.file, ub.size = f, n
				up = fasthttp.AcquireRequest()
				defer fasthttp.ReleaseRequest(up)
				req.Header.CopyTo(&up.Header)
				up.UseHostHeader = true
				up.Header.SetContentLength(int(n)) // a chunked body leaves with its length
			}
		default:
			// Streamed through a separate request so that it is never held;
			// it cannot be sent again once some of it has been.
			ub.stream = &bodyReader{r: req.BodyStream(), limit: p.opts.MaxBodySize}
			up = fasthttp.AcquireRequest()
			defer fasthttp.ReleaseRequest(up)
			req.Header.CopyTo(&up.Header)
			up.UseHostHeader = true
		}
	}
	rt.m.bytesIn.Add(uint64(max(up.Header.ContentLength(), 0)))

	// A request without Host (HTTP/1.0) to a route without names goes to
	// each backend with the backend's address, like NGINX's $proxy_host.
	noHost := len(up.Header.Host()) == 0

	x := p.acquireRelay()
	var tr tried
	var last outcome
	var lastB *backendState
	lastStatus := false // x holds the response of an attempt whose status counts as a failure
	exhausted := false  // the loop ended for want of a live, untried backend
	now := p.opts.Clock.Now()
	for {
		idx, probe := rt.pick(&tr, now)
		if idx < 0 {
			exhausted = true
			break
		}
		tr.add(idx)
		b := rt.backends[idx]
		if noHost {
			up.Header.SetHost(b.spec.Addr)
		}
		if probe {
			b.m.probes.Inc()
		}
		if !ub.rewind(up) {
			break // cannot happen: a streamed body is not retried once sent
		}
		resp := &x.resp
		b.inflight.Add(1)
		b.m.requests.Inc()
		t0 := time.Now()
		o, err := p.send(b, up, resp, &ub)
		b.m.latency.Observe(time.Since(t0))
		b.inflight.Add(-1)
		if o == outcomeOK && p.failStatus(resp.StatusCode()) {
			o = outcomeStatus
		}
		if ub.stream != nil && ub.stream.clientErr != nil {
			// The client's body broke, not the backend. (release closes
			// resp's body stream.)
			x.release()
			p.failBody(ctx, ub.stream.clientErr)
			return b
		}
		if o == outcomeOK {
			p.succeeded(rt, b)
			b.m.bytesIn.Add(uint64(ub.sent(up)))
			p.respond(ctx, x)
			return b
		}
		now = p.opts.Clock.Now()
		if o == outcomeLocal {
			// Another backend would get the same request: stop here.
			p.log.Error("request could not be sent to the backend", "route", rt.name, "backend", b.spec.Addr, "err", err)
			last, lastB = o, b
			break
		}
		if o != outcomeBusy && o != outcomeIdleClosed {
			p.failed(rt, b, o, err, now)
		} else {
			p.log.Debug("backend attempt failed, not counted", "route", rt.name, "backend", b.spec.Addr, "err", err)
		}
		last, lastB = o, b
		lastStatus = o == outcomeStatus
		sent := o != outcomeConnect && o != outcomeConnTimeout && o != outcomeBusy
		retry := !rt.single &&
			!(sent && nonIdempotent(&req.Header)) &&
			!(sent && ub.stream != nil) &&
			tr.n < len(rt.backends)
		if !retry {
			break
		}
		if o == outcomeStatus {
			_ = resp.CloseBodyStream()
		}
	}
	if ub.stream != nil {
		// Do not drain the rest of a large upload from the client.
		ctx.SetConnectionClose()
	}
	switch {
	case exhausted && tr.n < len(rt.backends):
		// Backends were left untried because they are down: NGINX's "no
		// live upstreams", a 502 whatever the last attempt's error was.
		p.answerUnserved(ctx, rt, outcomeOK, nil)
	case lastStatus:
		p.respond(ctx, x) // pass the backend's own error through
		return lastB
	default:
		p.answerUnserved(ctx, rt, last, lastB)
	}
	x.release()
	return lastB
}

// respond passes the attempt's response in x on to the client.
func (p *Proxy) respond(ctx *fasthttp.RequestCtx, x *relay) {
	x.passOn(ctx)
	cleanResponseHeader(&ctx.Response.Header)
}

// maxIdleResends bounds how often one attempt is re-sent because the pooled
// connection it used had been closed by the backend while idle. The first
// re-send empties the idle pool, so it normally gets a fresh connection; a
// second covers a connection released by another request in between.
const maxIdleResends = 2

// send makes one attempt on b and classifies it. A pooled keep-alive
// connection that the backend closed while it sat idle (a restarted
// container closes all of them) is not b's failure: the request is sent
// again, on a fresh connection, when that is safe (nothing of it was
// written, or its method is idempotent, and its body can be sent again).
// NGINX likewise gives a failed cached connection an extra try.
//
// A request goes over the keep-alive pool instead of b's pipelined
// connections when fewer than PipelineBusy are in flight to b, or when a
// connection's stall or harmless break turned it away.
func (p *Proxy) send(b *backendState, up *fasthttp.Request, resp *fasthttp.Response, ub *upBody) (outcome, error) {
	pooled := b.pipe == nil || !ub.inMemory() || b.inflight.Load() < int64(p.opts.PipelineBusy)
	for resends := 0; ; resends++ {
		var err error
		if !pooled {
			err = b.pipe.Do(up, resp)
			pooled = err != nil // stalled, or re-sent below
			if errors.Is(err, errPipeStalled) {
				b.m.stalled.Inc()
			}
		}
		if pooled && (err == nil || errors.Is(err, errPipeStalled)) {
			err = b.client.Do(up, resp)
		}
		o := classify(err)
		if o != outcomeError {
			return o, err
		}
		c := connOf(resp)
		if c != nil && c.aborted.Load() {
			return outcomeError, err // BackendUnreachable cut it: move on
		}
		if c != nil && c.localFailure() {
			return outcomeLocal, err
		}
		written, idle := idleClosed(err, c)
		if !idle {
			return outcomeError, err
		}
		if resends == maxIdleResends {
			return outcomeError, err // a fresh connection failed the same way: b's fault
		}
		if written && nonIdempotent(&up.Header) || !ub.rewind(up) {
			return outcomeIdleClosed, err
		}
		b.client.CloseIdleConnections() // they sat idle at least as long
	}
}

// idleClosed reports whether an attempt failed because its connection had
// been closed by the backend while idle in the pool: the connection was
// reused and the backend closed or reset it before sending any byte of the
// response. written tells whether any of the request was written.
func idleClosed(err error, c *backendConn) (written, idle bool) {
	var pe *pipeError
	if errors.As(err, &pe) {
		return true, pe.brk.idle.Load()
	}
	if c == nil || c.exchanges < 2 || c.got > 0 {
		return false, false
	}
	return c.wrote > 0, stale(err) || stale(c.ioErr())
}

// answerUnserved answers a request no backend served: lastB is the last one
// tried (nil when none was live) and last how its attempt ended.
func (p *Proxy) answerUnserved(ctx *fasthttp.RequestCtx, rt *routeState, last outcome, lastB *backendState) {
	rt.m.errors.Inc()
	switch {
	case lastB == nil:
		p.noLiveBackend(rt)
		p.fail(ctx, fasthttp.StatusBadGateway, msgNoLive)
	case last == outcomeTimeout || last == outcomeConnTimeout:
		p.fail(ctx, fasthttp.StatusGatewayTimeout, msgTimeout)
	default:
		p.fail(ctx, fasthttp.StatusBadGateway, msgBadGW)
	}
}

// countsAgainstHealth is false for all but the first of the requests failed
// by one broken pipelined connection: a break is one failure of the backend.
func countsAgainstHealth(err error) bool {
	var pe *pipeError
	if err != nil && errors.As(err, &pe) {
		return !pe.brk.idle.Load() && pe.firstReport()
	}
	return true
}

func (p *Proxy) failStatus(code int) bool {
	switch {
	case p.opts.FailOn&FailOn5xx != 0 && (code == 500 || code == 502 || code == 503 || code == 504):
		return true
	case p.opts.FailOn&FailOn429 != 0 && code == 429:
		return true
	}
	return false
}

func describe(o outcome) string {
	switch o {
	case outcomeConnect:
		return "connect error"
	case outcomeConnTimeout:
		return "connect timeout"
	case outcomeTimeout:
		return "timeout"
	case outcomeStatus:
		return "failure status"
	default:
		return "send/read error or invalid response"
	}
}

// hopByHop are removed in both directions (RFC 9110 §7.6.1 and the usual
// proxy list), together with any header the Connection header names.
var hopByHop = [...]string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Upgrade"}

func removeConnectionListed(conn []byte, del func(string)) {
	for len(conn) > 0 {
		i := bytes.IndexByte(conn, ',')
		tok := conn
		if i >= 0 {
			tok, conn = conn[:i], conn[i+1:]
		} else {
			conn = nil
		}
		tok = bytes.TrimSpace(tok)
		if len(tok) == 0 || bytes.EqualFold(tok, []byte("close")) || bytes.EqualFold(tok, []byte("keep-alive")) || bytes.EqualFold(tok, []byte("upgrade")) {
			continue
		}
		del(string(tok))
	}
}

// prepareHeader turns the client's request header into the backend's.
func (p *Proxy) prepareHeader(ctx *fasthttp.RequestCtx, rt *routeState, h *fasthttp.RequestHeader) {
	upgrade := isUpgrade(h)
	if conn := h.Peek(fasthttp.HeaderConnection); len(conn) > 0 && !bytes.EqualFold(conn, []byte("keep-alive")) && !bytes.EqualFold(conn, []byte("close")) {
		removeConnectionListed(conn, h.Del)
	}
	if anyHopByHop(h.All()) {
		for _, k := range hopByHop {
			if upgrade && k == "Upgrade" {
				continue
			}
			h.Del(k)
		}
	}
	if len(h.Peek(fasthttp.HeaderExpect)) > 0 {
		h.Del(fasthttp.HeaderExpect) // 100-continue was answered here
	}
	if upgrade {
		h.Set(fasthttp.HeaderConnection, "Upgrade")
	} else {
		h.Del(fasthttp.HeaderConnection) // backend connections are keep-alive
	}
	if !h.IsHTTP11() {
		h.SetProtocol("HTTP/1.1")
	}

	var ipBuf [64]byte
	ip := remoteIP(ctx, ipBuf[:0])
	if prev := h.Peek(fasthttp.HeaderXForwardedFor); len(prev) > 0 {
		var xff [256]byte
		v := append(append(append(xff[:0], prev...), ", "...), ip...)
		h.SetBytesV(fasthttp.HeaderXForwardedFor, v)
	} else {
		h.SetBytesV(fasthttp.HeaderXForwardedFor, ip)
	}
	h.SetBytesV("X-Real-IP", ip)
	if ctx.IsTLS() {
		h.Set(fasthttp.HeaderXForwardedProto, "https")
		// The backend is plain HTTP whatever the client spoke.
		ctx.Request.URI().SetScheme("http")
	} else {
		h.Set(fasthttp.HeaderXForwardedProto, p.opts.Scheme)
	}
	if uri := h.RequestURI(); len(uri) > 0 && uri[0] != '/' && uri[0] != '*' {
		// Absolute form (RFC 9112 §3.2.2): the host in the request line
		// routed the request and is the one passed on; the backend gets
		// the origin form, in plain HTTP.
		u := ctx.Request.URI()
		h.SetHostBytes(u.Host())
		h.SetRequestURIBytes(u.RequestURI())
		u.SetScheme("http")
	}
	if host := h.Host(); len(host) > 0 {
		h.SetBytesV(fasthttp.HeaderXForwardedHost, host)
	} else if len(rt.hosts) > 0 {
		// No Host (HTTP/1.0): the route's name, like NGINX's $host
		// falling back to the server name. Without one, forward sets the
		// backend's address.
		h.SetHost(rt.hosts[0])
	}
	// The Host header is the one sent: fasthttp would otherwise replace
	// it with the URI's host, which is empty for a request without Host.
	ctx.Request.UseHostHeader = true
}

func remoteIP(ctx *fasthttp.RequestCtx, dst []byte) []byte {
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap().AppendTo(dst)
	}
	return append(dst, ctx.RemoteIP().String()...)
}

func cleanResponseHeader(h *fasthttp.ResponseHeader) {
	if conn := h.Peek(fasthttp.HeaderConnection); len(conn) > 0 && !bytes.EqualFold(conn, []byte("keep-alive")) && !bytes.EqualFold(conn, []byte("close")) {
		removeConnectionListed(conn, h.Del)
	}
	h.Del(fasthttp.HeaderConnection)
	h.ResetConnectionClose()
	if anyHopByHop(h.All()) {
		for _, k := range hopByHop {
			h.Del(k)
		}
	}
}

// anyHopByHop scans a header once, so the common case (none present) costs
// one pass instead of one Del per name.
func anyHopByHop(all iter.Seq2[[]byte, []byte]) bool {
	for k := range all {
		if isHopByHop(k) {
			return true
		}
	}
	return false
}

func isHopByHop(k []byte) bool {
	switch len(k) {
	case 2:
		return bytes.EqualFold(k, []byte("Te"))
	case 7:
		return bytes.EqualFold(k, []byte("Trailer")) || bytes.EqualFold(k, []byte("Upgrade"))
	case 10:
		return bytes.EqualFold(k, []byte("Keep-Alive"))
	case 16:
		return bytes.EqualFold(k, []byte("Proxy-Connection"))
	case 18:
		return bytes.EqualFold(k, []byte("Proxy-Authenticate"))
	case 19:
		return bytes.EqualFold(k, []byte("Proxy-Authorization"))
	}
	return false
}

func isUpgrade(h *fasthttp.RequestHeader) bool {
	return h.ConnectionUpgrade() && len(h.Peek(fasthttp.HeaderUpgrade)) > 0
}

// stale reports the errors of a connection the backend closed or reset.
func stale(err error) bool {
	return err != nil && (errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
}
