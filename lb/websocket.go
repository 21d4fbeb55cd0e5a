package lb

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// upgrade proxies an Upgrade (WebSocket) request: it picks a backend with the
// same health rules, sends the request head, reads the response head and then
// hijacks the client connection and splices bytes both ways. The tunnel is
// not tied to the routing table, so reloads never cut it.
func (p *Proxy) upgrade(ctx *fasthttp.RequestCtx, rt *routeState) *backendState {
	var tr tried
	var lastB *backendState
	last := outcomeOK
	noHost := len(ctx.Request.Header.Host()) == 0
	now := p.opts.Clock.Now()
	for {
		idx, _ := rt.pick(&tr, now)
		if idx < 0 {
			break
		}
		tr.add(idx)
		b := rt.backends[idx]
		if noHost {
			ctx.Request.Header.SetHost(b.spec.Addr)
		}
		b.m.requests.Inc()
		t0 := time.Now()
		conn, br, head, err := p.handshake(ctx, b)
		b.m.latency.Observe(time.Since(t0))
		o := classify(err)
		if o == outcomeOK {
			p.succeeded(rt, b)
			p.splice(ctx, conn, br, head)
			return b
		}
		now = p.opts.Clock.Now()
		p.failed(rt, b, o, err, now)
		last, lastB = o, b
		if rt.single {
			break
		}
	}
	p.answerUnserved(ctx, rt, last, lastB)
	return lastB
}

// handshake dials b, writes the request head and reads the response head.
// A connect failure is a *dialError.
func (p *Proxy) handshake(ctx *fasthttp.RequestCtx, b *backendState) (net.Conn, *bufio.Reader, []byte, error) {
	conn, err := b.connect(false)
	if err != nil {
		return nil, nil, nil, err
	}
	_ = conn.SetWriteDeadline(time.Now().Add(p.opts.Timeouts.Send))
	_ = conn.SetReadDeadline(time.Now().Add(p.opts.Timeouts.Read))
	fail := func(err error) (net.Conn, *bufio.Reader, []byte, error) {
		_ = conn.Close()
		return nil, nil, nil, err
	}
	if _, err := conn.Write(ctx.Request.Header.Header()); err != nil {
		return fail(err)
	}
	if body := ctx.Request.Body(); len(body) > 0 {
		if _, err := conn.Write(body); err != nil {
			return fail(err)
		}
	}
	br := bufio.NewReaderSize(conn, 4096)
	var head []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return fail(err)
		}
		head = append(head, line...)
		if len(head) > 16<<10 {
			return fail(io.ErrShortBuffer)
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
	}
	if !validStatusLine(head) {
		return fail(io.ErrUnexpectedEOF)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, br, head, nil
}

func validStatusLine(head []byte) bool {
	if !bytes.HasPrefix(head, []byte("HTTP/1.")) || len(head) < 12 {
		return false
	}
	_, err := strconv.Atoi(string(head[9:12]))
	return err == nil
}

// splice hands the client connection over to a byte tunnel with backend.
func (p *Proxy) splice(ctx *fasthttp.RequestCtx, backend net.Conn, br *bufio.Reader, head []byte) {
	ctx.Response.SetStatusCode(fasthttp.StatusSwitchingProtocols) // for metrics and logs
	ctx.HijackSetNoResponse(true)
	p.tunnels.Add(1)
	p.m.activeTun.Add(1)
	ctx.Hijack(func(client net.Conn) {
		defer p.tunnels.Done()
		defer p.m.activeTun.Add(-1)
		p.tunnelsMu.Lock()
		p.open[client] = struct{}{}
		p.open[backend] = struct{}{}
		p.tunnelsMu.Unlock()
		defer func() {
			p.tunnelsMu.Lock()
			delete(p.open, client)
			delete(p.open, backend)
			p.tunnelsMu.Unlock()
			_ = client.Close()
			_ = backend.Close()
		}()
		if _, err := client.Write(head); err != nil {
			return
		}
		var once sync.Once
		closeBoth := func() { once.Do(func() { _ = client.Close(); _ = backend.Close() }) }
		done := make(chan struct{})
		go func() {
			_, _ = io.Copy(client, br) // backend → client, buffered bytes first
			closeBoth()
			close(done)
		}()
		_, _ = io.Copy(backend, client)
		closeBoth()
		<-done
	})
}
