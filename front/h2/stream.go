package h2

import (
	"io"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

const (
	// keptBodyBuffer is the largest request-body buffer a pooled stream
	// keeps.
	keptBodyBuffer = 64 << 10
	// drainDelay is how long after a response the stream waits for the
	// rest of its request before it is reset (RST_STREAM NO_ERROR).
	drainDelay = 100 * time.Millisecond
)

// stream is one request and its response. It is pooled (with its
// RequestCtx and buffers) by the Server; refs counts the connection's map
// and the worker, and the last to let go releases it.
type stream struct {
	ctx fasthttp.RequestCtx
	c   *conn
	id  uint32

	// guarded by c.mu
	refs       int
	inMap      bool
	remoteDone bool // the client's END_STREAM (or RST) came
	localDone  bool // the response ended (or the stream was reset)
	done       bool // the worker finished
	reset      error
	declared   int64 // Content-Length; -1: none
	received   int64
	recvWindow int64 // what the client may still send on this stream
	sendWindow int64
	// the request body, written by the reader and read by the handler
	body       []byte
	bodyOff    int
	bodyDone   bool // all of it is in body
	bodyClosed bool // the handler finished: more is dropped
	bodyErr    error
	grant      int64 // read by the handler, not yet granted back
	// expectContinue: the client waits for 100 Continue before the body.
	expectContinue bool
	bodyCond       *sync.Cond

	// worker-owned
	enc    *hpack.Encoder
	hbuf   []byte // the response's header block
	name   []byte // a lower-cased header name
	num    []byte // a number's digits (status, Content-Length)
	reader bodyReader
	writer bodyWriter
}

func (s *Server) getStream() *stream {
	if st, _ := s.streams.Get().(*stream); st != nil {
		return st
	}
	st := &stream{num: make([]byte, 0, 20)}
	st.reader.st, st.writer.st = st, st
	st.enc = hpack.NewEncoder(hbufWriter{st})
	// Nothing is ever added to the dynamic table (as NGINX): every field
	// is static-indexed or literal, so the encoder keeps no state the
	// fields' bytes (reused buffers) could hide in, and streams encode in
	// parallel.
	st.enc.SetMaxDynamicTableSizeLimit(0)
	return st
}

// hbufWriter appends what the encoder writes to the stream's header block.
type hbufWriter struct{ st *stream }

func (w hbufWriter) Write(p []byte) (int, error) {
	w.st.hbuf = append(w.st.hbuf, p...)
	return len(p), nil
}

// newStream is a stream for a new request on c (the reader, c.mu held).
func newStream(c *conn, id uint32) *stream {
	st := c.srv.getStream()
	st.c, st.id = c, id
	st.declared = -1
	st.recvWindow = streamWindow
	st.sendWindow = int64(c.initialWindow)
	st.bodyCond = sync.NewCond(&c.mu)
	st.ctx.Init2(c.info, c.log, false)
	return st
}

// unref drops a reference (c.mu held); true: the caller releases st.
func (st *stream) unref() bool {
	st.refs--
	return st.refs <= 0
}

// cut ends the stream from outside the worker: a reset or the connection
// closing (c.mu held).
func (st *stream) cut(err error) {
	if st.reset == nil {
		st.reset = err
	}
	if st.bodyErr == nil {
		st.bodyErr = err
	}
	st.remoteDone, st.localDone = true, true
	if st.bodyCond != nil {
		st.bodyCond.Broadcast()
	}
}

// release returns st to the pool; no one refers to it any more.
func (st *stream) release() {
	srv := st.c.srv
	st.ctx.Request.Reset()
	st.ctx.Response.Reset()
	st.ctx.ResetUserValues()
	if cap(st.body) > keptBodyBuffer {
		st.body = nil
	}
	st.body, st.hbuf, st.name = st.body[:0], st.hbuf[:0], st.name[:0]
	st.c, st.id, st.refs, st.inMap = nil, 0, 0, false
	st.remoteDone, st.localDone, st.done, st.reset = false, false, false, nil
	st.declared, st.received, st.recvWindow, st.sendWindow = -1, 0, 0, 0
	st.bodyOff, st.bodyDone, st.bodyClosed, st.bodyErr, st.grant, st.bodyCond = 0, false, false, nil, 0, nil
	st.expectContinue = false
	srv.streams.Put(st)
}

// run serves the stream on a worker: the handler, then the response.
func (st *stream) run() {
	c := st.c
	c.mu.Lock()
	cut := st.reset != nil
	c.mu.Unlock()
	var err error
	if !cut { // reset while queued: the backend never sees it
		c.handler(&st.ctx)
		err = st.respond()
	}
	st.finish(err)
}

// finish ends the stream after its response (err: it could not be
// completed): the client is told when it sent less than the whole
// request or got less than the whole response, and the stream is
// forgotten.
func (st *stream) finish(err error) {
	c := st.c
	if st.ctx.Response.IsBodyStream() {
		_ = st.ctx.Response.CloseBodyStream()
	}
	c.mu.Lock()
	st.done = true
	st.bodyClosed = true
	if unread := len(st.body) - st.bodyOff; unread > 0 {
		c.grantConn(int64(unread))
	}
	st.body, st.bodyOff = st.body[:0], 0
	draining := false
	if st.reset == nil && !c.closed {
		switch {
		case err != nil:
			c.wbuf = appendRSTStream(c.wbuf, st.id, http2.ErrCodeInternal)
			c.wake.Signal()
		case !st.remoteDone:
			// The whole response went out before the whole request came
			// in: the client may stop sending (RFC 9113 §8.1), which a
			// RST_STREAM(NO_ERROR) tells it. Sent with the response, in
			// one TLS record, it made curl (7.88) drop the response, so
			// it goes drainDelay later; meanwhile what comes is dropped.
			draining = true
			id := st.id
			time.AfterFunc(drainDelay, func() { c.endDrain(id, st) })
		}
	}
	st.localDone = true
	rel := false
	if !draining {
		rel = c.drop(st)
	}
	if st.unref() {
		rel = true
	}
	c.active--
	if c.active == 0 {
		c.lastActive.Store(time.Now().UnixNano())
		if c.goingAway && !c.closed {
			c.closed = true
			c.wake.Signal()
		}
	}
	c.mu.Unlock()
	if rel {
		st.release()
	}
}

// endDrain resets st, answered before its request ended, unless the
// request ended meanwhile (st is then no longer the stream id in the map,
// and may be another's).
func (c *conn) endDrain(id uint32, st *stream) {
	c.mu.Lock()
	if c.streams[id] != st || c.closed {
		c.mu.Unlock()
		return
	}
	rel := c.drop(st)
	st.cut(errStreamReset)
	c.wbuf = appendRSTStream(c.wbuf, id, http2.ErrCodeNo)
	c.wake.Signal()
	c.mu.Unlock()
	if rel {
		st.release()
	}
}

// bodyReader is a request body as the handler reads it: what the client
// sent, granted back (WINDOW_UPDATE) as it is read.
type bodyReader struct{ st *stream }

func (r *bodyReader) Read(p []byte) (int, error) {
	st := r.st
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.expectContinue && st.bodyOff == len(st.body) && !st.bodyDone && st.reset == nil && !c.closed {
		c.wbuf = appendHeaders(c.wbuf, st.id, statusBlock(100), false, c.peerMaxFrame)
		c.wake.Signal()
	}
	st.expectContinue = false
	var t *time.Timer
	var timedOut bool
	for st.bodyOff == len(st.body) && !st.bodyDone && st.bodyErr == nil && !timedOut {
		if t == nil {
			cond, flag := st.bodyCond, &timedOut
			t = time.AfterFunc(c.srv.cfg.BodyTimeout, func() {
				c.mu.Lock()
				*flag = true
				cond.Broadcast()
				c.mu.Unlock()
			})
		}
		st.bodyCond.Wait()
	}
	if t != nil {
		t.Stop()
	}
	if st.bodyOff < len(st.body) {
		n := copy(p, st.body[st.bodyOff:])
		st.bodyOff += n
		if st.bodyOff == len(st.body) {
			st.body, st.bodyOff = st.body[:0], 0
		}
		st.grant += int64(n)
		if !st.bodyDone && st.reset == nil && !c.closed && st.grant >= streamWindow/4 {
			c.wbuf = appendWindowUpdate(c.wbuf, st.id, uint32(st.grant))
			st.recvWindow += st.grant
			st.grant = 0
			c.wake.Signal()
		}
		c.grantConn(int64(n))
		return n, nil
	}
	switch {
	case st.bodyErr != nil:
		return 0, st.bodyErr
	case timedOut:
		return 0, errBodyTimeout
	}
	return 0, io.EOF
}

// bodyWriter writes a streamed response body as DATA frames.
type bodyWriter struct{ st *stream }

func (w *bodyWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := w.st.send(nil, p, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// respond writes the handler's response: HEADERS, then the body as DATA
// within the client's windows.
func (st *stream) respond() error {
	resp := &st.ctx.Response
	if st.ctx.Hijacked() {
		// An upgrade (lb's WebSockets): HTTP/2 forbids the headers that
		// ask for it, so it cannot come here; if it did, the client is
		// told to use HTTP/1.1.
		return st.resetWith(http2.ErrCodeHTTP11Required)
	}
	status := resp.StatusCode()
	head := st.ctx.IsHead()
	bodyless := head || status == 204 || status == 304 || status < 200
	streamed := resp.IsBodyStream()
	var body []byte
	if !streamed {
		body = resp.Body()
	}
	if bodyless {
		if streamed {
			_ = resp.CloseBodyStream()
		}
		streamed = false
	}
	st.encodeHeaders(resp, status, head, bodyless, streamed, len(body))
	if bodyless {
		body = nil
	}
	if !streamed {
		return st.send(st.hbuf, body, true)
	}
	if err := st.send(st.hbuf, nil, false); err != nil {
		return err
	}
	if err := resp.BodyWriteTo(&st.writer); err != nil {
		return err
	}
	return st.send(nil, nil, true)
}

// resetWith resets the stream from its worker.
func (st *stream) resetWith(code http2.ErrCode) error {
	c := st.c
	c.mu.Lock()
	if st.reset == nil && !c.closed {
		c.wbuf = appendRSTStream(c.wbuf, st.id, code)
		c.wake.Signal()
	}
	st.cut(errStreamReset)
	c.mu.Unlock()
	return nil
}

// send queues a header block (if any), then data as DATA frames within
// the stream's and the connection's windows, END_STREAM on the last frame
// when end. It waits, up to SendTimeout, for window and for the writer
// to drain; past it the connection is closed.
func (st *stream) send(block, data []byte, end bool) error {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	var t *time.Timer
	var timedOut bool
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	wait := func() error {
		if timedOut {
			c.closed = true
			c.wake.Signal()
			c.changed.Broadcast()
			go c.nc.Close()
			return errSendTimeout
		}
		if t == nil {
			flag := &timedOut
			t = time.AfterFunc(c.srv.cfg.SendTimeout, func() {
				c.mu.Lock()
				*flag = true
				c.changed.Broadcast()
				c.mu.Unlock()
			})
		}
		c.changed.Wait()
		return nil
	}
	for {
		if err := c.sendErr(st); err != nil {
			return err
		}
		if len(c.wbuf) < maxPendingWrite {
			break
		}
		if err := wait(); err != nil {
			return err
		}
	}
	if block != nil {
		c.wbuf = appendHeaders(c.wbuf, st.id, block, end && len(data) == 0, c.peerMaxFrame)
		if len(data) == 0 {
			c.wake.Signal()
			return nil
		}
	}
	for {
		if err := c.sendErr(st); err != nil {
			return err
		}
		if len(data) == 0 && end && block == nil {
			c.wbuf = appendData(c.wbuf, st.id, nil, true)
			c.wake.Signal()
			return nil
		}
		n := min(int64(len(data)), st.sendWindow, c.sendWindow, int64(c.peerMaxFrame))
		if n <= 0 || len(c.wbuf) >= maxPendingWrite {
			c.wake.Signal()
			if err := wait(); err != nil {
				return err
			}
			continue
		}
		last := int(n) == len(data)
		c.wbuf = appendData(c.wbuf, st.id, data[:n], end && last)
		st.sendWindow -= n
		c.sendWindow -= n
		data = data[n:]
		if last {
			c.wake.Signal()
			return nil
		}
	}
}

// sendErr is why st can send nothing more, nil if it can: its connection
// closed, or the stream was reset. Called with c.mu held.
func (c *conn) sendErr(st *stream) error {
	if c.closed {
		return errConnClosed
	}
	return st.reset
}
