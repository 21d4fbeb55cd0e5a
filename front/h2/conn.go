package h2

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

const (
	// streamWindow is the request-body window of a stream
	// (SETTINGS_INITIAL_WINDOW_SIZE): what a stream may buffer when its
	// handler does not read.
	streamWindow = 256 << 10
	// connWindow is the connection's request-body window.
	connWindow = 1 << 20
	// maxFrameSize is the largest frame read (SETTINGS_MAX_FRAME_SIZE,
	// the default) and the largest DATA frame written.
	maxFrameSize = 16384
	// maxPendingWrite bounds the bytes queued for a client that does not
	// read: a response waits past it (SendTimeout).
	maxPendingWrite = 256 << 10
	// maxControlBacklog: a client that makes the server queue this much
	// (PING and SETTINGS acknowledgements) without reading is cut off.
	maxControlBacklog = 1 << 20
	// keptWriteBuffer is the largest write buffer a connection keeps.
	keptWriteBuffer = 64 << 10
	// closeFlushTimeout bounds the last write (GOAWAY) at close.
	closeFlushTimeout = 5 * time.Second
	// maxContinuations bounds the CONTINUATION frames of one header block
	// (a flood of empty ones costs the server without growing the block).
	maxContinuations = 64
	// Token buckets (burst, refill per second) against floods: resets of
	// streams still being served and refused streams (CVE-2023-44487's
	// rapid reset), and frames that only cost the server (PING, SETTINGS,
	// PRIORITY, empty DATA, frames on closed streams, unknown frames).
	resetBurst, resetRate     = 1000, 100
	controlBurst, controlRate = 5000, 2000
)

var (
	errStreamReset  = errors.New("h2: stream reset")
	errConnClosed   = errors.New("h2: connection closed")
	errBodyTimeout  = errors.New("h2: request body timeout")
	errSendTimeout  = errors.New("h2: send timeout")
	errBadPreface   = errors.New("h2: bad client preface")
	errControlFlood = errors.New("h2: too many control frames")
	errResetFlood   = errors.New("h2: too many reset or refused streams")
)

// conn is one HTTP/2 connection. The reader (serve) owns the framer, the
// HPACK decoder and the header-block state; everything shared with the
// workers and the writer is guarded by mu.
type conn struct {
	srv     *Server
	nc      net.Conn
	info    net.Conn // what RequestCtx sees
	handler fasthttp.RequestHandler
	log     fasthttpLog

	// reader-owned
	br      *bufio.Reader
	fr      *http2.Framer
	dec     *hpack.Decoder
	hdr     headerBlock
	resets  bucket
	control bucket

	maxSeen    atomic.Uint32 // the highest client stream id seen
	lastActive atomic.Int64  // unix nanos when the last stream ended

	mu         sync.Mutex
	wake       sync.Cond // the writer waits for bytes
	changed    sync.Cond // workers wait for window, drained bytes, close
	streams    map[uint32]*stream
	active     int // streams whose worker has not finished
	wbuf       []byte
	spare      []byte
	sendWindow int64 // connection-level, for response DATA
	// peer settings
	initialWindow int32
	peerMaxFrame  int
	// recvWindow is what the client may still send (connection level);
	// connGrant what the handlers consumed and is not yet granted back.
	recvWindow int64
	connGrant  int64
	goingAway  bool // GOAWAY sent: no new streams
	closed     bool // no more writes but what is queued; the writer exits
	writerDone chan struct{}
	idle       *time.Timer
}

func newConn(s *Server, nc net.Conn, h fasthttp.RequestHandler) *conn {
	c := &conn{srv: s, nc: nc, info: connInfo(nc), handler: h, log: fasthttpLog{s.cfg.Logger},
		streams: map[uint32]*stream{}, sendWindow: 65535, initialWindow: 65535, peerMaxFrame: maxFrameSize,
		recvWindow: connWindow, writerDone: make(chan struct{})}
	c.wake.L, c.changed.L = &c.mu, &c.mu
	c.br = bufio.NewReaderSize(nc, 16<<10)
	c.fr = http2.NewFramer(nil, c.br)
	c.fr.SetReuseFrames()
	c.fr.SetMaxReadFrameSize(maxFrameSize)
	c.dec = hpack.NewDecoder(4096, c.onField)
	// Strings up to the block's bound decode (a field over the list's
	// limit is answered 431), longer ones end the connection.
	c.dec.SetMaxStringLength(maxBlock(s.cfg.MaxHeaderListSize))
	now := time.Now()
	c.resets = bucket{burst: resetBurst, rate: resetRate, tokens: resetBurst, last: now}
	c.control = bucket{burst: controlBurst, rate: controlRate, tokens: controlBurst, last: now}
	return c
}

// serve reads the connection until it ends, then cuts what is left.
func (c *conn) serve() (err error) {
	go c.writeLoop()
	defer func() { c.finish(err) }()
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.ReadTimeout))
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(c.br, preface[:]); err != nil {
		return fmt.Errorf("h2: preface: %w", err)
	}
	if string(preface[:]) != http2.ClientPreface {
		return errBadPreface
	}
	c.mu.Lock()
	c.wbuf = appendSettings(c.wbuf,
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: c.srv.cfg.MaxStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: c.srv.cfg.MaxHeaderListSize})
	c.wbuf = appendWindowUpdate(c.wbuf, 0, connWindow-65535)
	c.wake.Signal()
	c.mu.Unlock()
	f, err := c.fr.ReadFrame()
	if err != nil {
		return c.connError(err)
	}
	if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
		return c.connError(http2.ConnectionError(http2.ErrCodeProtocol))
	}
	if err := c.handle(f); err != nil {
		return c.connError(err)
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	c.lastActive.Store(time.Now().UnixNano())
	c.idle = time.AfterFunc(c.srv.cfg.IdleTimeout, c.checkIdle)
	for {
		fh, err := c.fr.ReadFrameHeader()
		if err != nil {
			return c.connError(err)
		}
		f, err := c.fr.ReadFrameForHeader(fh)
		if err == nil {
			err = c.handle(f)
		} else if fh.Type == http2.FrameHeaders || fh.Type == http2.FrameContinuation {
			// A header block not decoded would leave HPACK's state behind.
			return c.connError(http2.ConnectionError(http2.ErrCodeProtocol))
		}
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				c.resetStream(se.StreamID, se.Code)
				continue
			}
			return c.connError(err)
		}
	}
}

// connError queues a GOAWAY for a protocol error (not for a read error:
// the client went away or the server closed the connection).
func (c *conn) connError(err error) error {
	code := http2.ErrCodeProtocol
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &ce):
		code = http2.ErrCode(ce)
	case errors.Is(err, http2.ErrFrameTooLarge):
		code = http2.ErrCodeFrameSize
	case errors.Is(err, errControlFlood), errors.Is(err, errResetFlood):
		code = http2.ErrCodeEnhanceYourCalm
	case errors.Is(err, hpack.ErrStringLength):
		code = http2.ErrCodeEnhanceYourCalm
	default:
		var de hpack.DecodingError
		if !errors.As(err, &de) {
			return err // a read error
		}
		code = http2.ErrCodeCompression
	}
	c.mu.Lock()
	c.wbuf = appendGoAway(c.wbuf, c.maxSeen.Load(), code)
	c.wake.Signal()
	c.mu.Unlock()
	return fmt.Errorf("h2: %v: %w", code, err)
}

// finish ends the connection: workers' writes stop, streams are reset,
// the writer flushes what is queued (within closeFlushTimeout) and the
// connection is closed.
func (c *conn) finish(err error) {
	if c.idle != nil {
		c.idle.Stop()
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	c.mu.Lock()
	c.closed = true
	var release []*stream
	for id, st := range c.streams {
		delete(c.streams, id)
		st.inMap = false
		st.cut(errConnClosed)
		if st.unref() {
			release = append(release, st)
		}
	}
	c.wake.Signal()
	c.changed.Broadcast()
	c.mu.Unlock()
	for _, st := range release {
		st.release()
	}
	<-c.writerDone
	c.nc.Close()
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.srv.cfg.Logger.Debug("h2: connection closed", "remote", c.nc.RemoteAddr().String(), "err", err)
	}
}

// abort closes the connection now (Server.Close): the reader's read fails.
func (c *conn) abort() {
	c.mu.Lock()
	c.closed = true
	c.wake.Signal()
	c.changed.Broadcast()
	c.mu.Unlock()
	c.nc.Close()
}

// goAway starts a graceful close: no new streams; closed when the last
// one ends.
func (c *conn) goAway() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.goingAway || c.closed {
		return
	}
	c.goingAway = true
	c.wbuf = appendGoAway(c.wbuf, c.maxSeen.Load(), http2.ErrCodeNo)
	if c.active == 0 {
		c.closed = true
	}
	c.wake.Signal()
}

// checkIdle closes (GOAWAY) a connection without streams for IdleTimeout.
func (c *conn) checkIdle() {
	c.mu.Lock()
	active, closed := c.active, c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	idle := time.Since(time.Unix(0, c.lastActive.Load()))
	if active == 0 && idle >= c.srv.cfg.IdleTimeout {
		c.goAway()
		return
	}
	c.idle.Reset(max(c.srv.cfg.IdleTimeout-idle, time.Second))
}

// writeLoop writes out what is queued, as one write per batch: all that
// was queued while the previous write was in the kernel. Once the
// connection is closed and the queue written, it closes the connection
// (the reader's read ends).
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	defer c.nc.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.wbuf) == 0 && !c.closed {
			c.wake.Wait()
		}
		if len(c.wbuf) == 0 {
			return
		}
		if !c.closed && len(c.wbuf) < maxPendingWrite/4 {
			// Let the workers that are ready append their frames too:
			// under load a batch then carries several responses (one
			// write, one TLS record), as NGINX's event loop writes what
			// a pass over its events produced.
			c.mu.Unlock()
			runtime.Gosched()
			c.mu.Lock()
		}
		out := c.wbuf
		c.wbuf, c.spare = c.spare[:0], nil
		c.mu.Unlock()
		_, err := c.nc.Write(out)
		c.mu.Lock()
		if cap(out) <= keptWriteBuffer {
			c.spare = out[:0]
		}
		if err != nil {
			c.closed = true
			c.wbuf = c.wbuf[:0]
			c.changed.Broadcast()
			return
		}
		c.changed.Broadcast()
	}
}

// queueControl queues a control frame the client asked for (c.mu held).
func (c *conn) queueControl(frame func([]byte) []byte) error {
	if c.closed {
		return nil
	}
	if len(c.wbuf) > maxControlBacklog {
		return errControlFlood
	}
	c.wbuf = frame(c.wbuf)
	c.wake.Signal()
	return nil
}

// handle acts on one frame; it returns a StreamError (the stream is
// reset, the connection goes on) or a connection error.
func (c *conn) handle(f http2.Frame) error {
	if c.hdr.open && f.Header().Type != http2.FrameContinuation {
		// The Framer checks this too; kept so the block state can't leak.
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	switch f := f.(type) {
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.HeadersFrame:
		return c.onHeaders(f)
	case *http2.ContinuationFrame:
		return c.onContinuation(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		return c.onReset(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.PingFrame:
		if err := c.spend(&c.control, errControlFlood); err != nil {
			return err
		}
		if f.IsAck() {
			return nil
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.queueControl(func(b []byte) []byte { return appendPing(b, f.Data) })
	case *http2.GoAwayFrame:
		return nil // the client opens no new streams; those open go on
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	default: // PRIORITY, PRIORITY_UPDATE, unknown frames
		return c.spend(&c.control, errControlFlood)
	}
}

func (c *conn) spend(b *bucket, err error) error {
	if !b.take(time.Now()) {
		return err
	}
	return nil
}

func (c *conn) onSettings(f *http2.SettingsFrame) error {
	if err := c.spend(&c.control, errControlFlood); err != nil {
		return err
	}
	if f.IsAck() {
		return nil
	}
	if err := f.ForeachSetting(func(s http2.Setting) error { return s.Valid() }); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - int64(c.initialWindow)
			c.initialWindow = int32(s.Val)
			for _, st := range c.streams {
				st.sendWindow += delta
				if st.sendWindow > 1<<31-1 {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
			c.changed.Broadcast()
		case http2.SettingMaxFrameSize:
			c.peerMaxFrame = int(min(s.Val, maxFrameSize))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.queueControl(appendSettingsAck)
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		c.sendWindow += int64(f.Increment)
		if c.sendWindow > 1<<31-1 {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		c.changed.Broadcast()
		return nil
	}
	st := c.streams[f.StreamID]
	if st == nil {
		if f.StreamID > c.maxSeen.Load() {
			return http2.ConnectionError(http2.ErrCodeProtocol) // idle stream
		}
		return nil // a closed stream: ignored
	}
	st.sendWindow += int64(f.Increment)
	if st.sendWindow > 1<<31-1 {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	c.changed.Broadcast()
	return nil
}

func (c *conn) onReset(f *http2.RSTStreamFrame) error {
	if f.StreamID > c.maxSeen.Load() {
		return http2.ConnectionError(http2.ErrCodeProtocol) // idle stream
	}
	c.mu.Lock()
	st := c.streams[f.StreamID]
	served := st != nil && !st.done
	var release bool
	if st != nil {
		release = c.drop(st)
		st.cut(errStreamReset)
		c.changed.Broadcast()
	}
	c.mu.Unlock()
	if release {
		st.release()
	}
	if served {
		return c.spend(&c.resets, errResetFlood)
	}
	return c.spend(&c.control, errControlFlood)
}

// resetStream sends RST_STREAM for a stream error found by the reader and
// forgets the stream.
func (c *conn) resetStream(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	st := c.streams[id]
	var release bool
	if st != nil {
		release = c.drop(st)
		st.cut(errStreamReset)
		c.changed.Broadcast()
	}
	if !c.closed {
		c.wbuf = appendRSTStream(c.wbuf, id, code)
		c.wake.Signal()
	}
	c.mu.Unlock()
	if release {
		st.release()
	}
}

// drop removes st from the map (c.mu held); true: the caller releases it.
func (c *conn) drop(st *stream) bool {
	if !st.inMap {
		return false
	}
	delete(c.streams, st.id)
	st.inMap = false
	return st.unref()
}

func (c *conn) onData(f *http2.DataFrame) error {
	if len(f.Data()) == 0 && !f.StreamEnded() {
		if err := c.spend(&c.control, errControlFlood); err != nil {
			return err
		}
	}
	c.mu.Lock()
	st, err := c.onDataLocked(f)
	c.mu.Unlock()
	if st != nil {
		st.release()
	}
	return err
}

// onDataLocked delivers a DATA frame to its stream's body (c.mu held); it
// returns the stream when it is to be released.
func (c *conn) onDataLocked(f *http2.DataFrame) (*stream, error) {
	id, n := f.StreamID, int64(f.Header().Length)
	data := f.Data()
	if n > c.recvWindow {
		return nil, http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.recvWindow -= n
	st := c.streams[id]
	if st == nil || st.remoteDone {
		c.grantConn(n) // discarded: the connection's window comes back
		if id > c.maxSeen.Load() {
			return nil, http2.ConnectionError(http2.ErrCodeProtocol) // idle stream
		}
		if st != nil {
			return nil, http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
		}
		return nil, c.spend(&c.control, errControlFlood)
	}
	if n > st.recvWindow {
		c.grantConn(n)
		return nil, http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	}
	st.recvWindow -= n
	if pad := n - int64(len(data)); pad > 0 {
		c.grantConn(pad)
		st.recvWindow += pad
		c.wbuf = appendWindowUpdate(c.wbuf, id, uint32(pad))
		c.wake.Signal()
	}
	st.received += int64(len(data))
	if st.declared >= 0 && (st.received > st.declared || f.StreamEnded() && st.received != st.declared) {
		c.grantConn(int64(len(data)))
		return nil, http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if st.bodyClosed {
		c.grantConn(int64(len(data)))
	} else {
		st.body = append(st.body, data...)
	}
	st.bodyCond.Signal()
	if !f.StreamEnded() {
		return nil, nil
	}
	st.remoteDone, st.bodyDone = true, true
	if st.localDone && c.drop(st) {
		return st, nil
	}
	return nil, nil
}

// grantConn gives the client back n bytes of connection window, in
// batches of a quarter window (c.mu held).
func (c *conn) grantConn(n int64) {
	c.connGrant += n
	if c.connGrant >= connWindow/4 && !c.closed {
		c.wbuf = appendWindowUpdate(c.wbuf, 0, uint32(c.connGrant))
		c.recvWindow += c.connGrant
		c.connGrant = 0
		c.wake.Signal()
	}
}

func (c *conn) onHeaders(f *http2.HeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	c.hdr = headerBlock{open: true, id: id, endStream: f.StreamEnded()}
	c.mu.Lock()
	st := c.streams[id]
	switch {
	case st != nil: // trailers
		if st.remoteDone {
			c.hdr.err = http2.ErrCodeStreamClosed
		} else if !f.StreamEnded() {
			c.hdr.err = http2.ErrCodeProtocol
		}
		c.hdr.trailers = true
	case id <= c.maxSeen.Load():
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeStreamClosed)
	default:
		c.maxSeen.Store(id)
		switch {
		case c.goingAway || c.closed:
			c.hdr.ignore = true
		case c.active >= int(c.srv.cfg.MaxStreams):
			c.hdr.err = http2.ErrCodeRefusedStream
		default:
			c.hdr.st = newStream(c, id)
		}
	}
	c.mu.Unlock()
	if c.hdr.err == http2.ErrCodeRefusedStream {
		if err := c.spend(&c.resets, errResetFlood); err != nil {
			return err
		}
	}
	return c.headerFragment(f.HeaderBlockFragment(), f.HeadersEnded())
}

func (c *conn) onContinuation(f *http2.ContinuationFrame) error {
	if !c.hdr.open || f.StreamID != c.hdr.id {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	c.hdr.frames++
	if c.hdr.frames > maxContinuations {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	return c.headerFragment(f.HeaderBlockFragment(), f.HeadersEnded())
}

// headerFragment decodes a piece of a header block; at its end the
// request starts (or the stream is refused, reset or answered 431).
func (c *conn) headerFragment(p []byte, end bool) error {
	h := &c.hdr
	h.bytes += len(p)
	if h.bytes > maxBlock(c.srv.cfg.MaxHeaderListSize) {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	if _, err := c.dec.Write(p); err != nil {
		return err
	}
	if !end {
		return nil
	}
	err := c.dec.Close()
	c.dec.SetEmitEnabled(true)
	blk := c.hdr
	c.hdr = headerBlock{}
	if err != nil {
		if blk.st != nil {
			blk.st.release()
		}
		return err
	}
	return c.endHeaders(&blk)
}

// maxBlock bounds a header block's compressed size: it cannot be much
// larger than the list it decodes to; past twice the limit the client is
// flooding.
func maxBlock(maxList uint32) int { return 2*int(maxList) + maxFrameSize }

// bucket is a token bucket: burst tokens, refilled at rate per second.
type bucket struct {
	tokens, burst, rate float64
	last                time.Time
}

func (b *bucket) take(now time.Time) bool {
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
