package lb

import (
	"bufio"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// pipeClient sends requests to one backend over a few HTTP/1.1 connections,
// written back to back (pipelining, RFC 9112 §9.3) and answered in order.
// One writer goroutine per connection writes queued requests into a buffer
// and flushes when no more are waiting, so a burst leaves in one write; one
// reader goroutine reads the responses, several per read when they arrive
// together. Used for backends with pipelining on (Options.PipelineBackends,
// Backend.Pipeline), for requests whose body is held in memory; streamed
// uploads go through the HostClient.
//
// A response of up to pipeInMemory bytes is read whole; a larger one, or
// one of unknown length, is streamed to the client while the reader waits
// for its end before it reads the next. Answers come in order, so a slow
// response holds up those queued behind it: a connection whose oldest
// unanswered request has waited longer than stall takes no new ones (Do
// says errPipeStalled, and the request goes over the keep-alive pool).
//
// Unlike fasthttp's PipelineClient, a connect error reaches the request at
// once (fasthttp's keeps redialling while requests wait), and a broken
// connection fails every request queued on it once, with a pipeError that
// shares one pipeBreak so the backend's health counts the break once.
type pipeClient struct {
	dial  func(string) (net.Conn, error)
	addr  string
	depth int
	idle  time.Duration
	stall int64 // nanoseconds; see pipeClient
	slots []pipeSlot
	next  atomic.Uint32
	works sync.Pool
}

type pipeSlot struct {
	mu      sync.Mutex // serialises dialling
	c       atomic.Pointer[pipeConn]
	failGen atomic.Uint64 // bumped when a dial fails, with dialErr set
	dialErr error         // guarded by mu
}

type pipeConn struct {
	conn       net.Conn
	br         *bufio.Reader
	bw         *bufio.Writer
	wmu        sync.Mutex     // a push to in checks dead under it; the idle close, retire and drain set it under it
	dead       atomic.Bool    // broken or closing: no more requests may be queued
	in         chan *pipeWork // waiting for the writer
	queue      chan *pipeWork // written, waiting for their responses, in order
	closed     chan struct{}  // closed when the connection breaks or is closed
	writerDone chan struct{}
	once       sync.Once
	brk        *pipeBreak
	// pending counts the requests pushed to in and not yet answered, a
	// request the writer holds between in and queue included: the idle
	// close checks it under wmu, so it never closes under a request.
	pending atomic.Int64
	retired chan struct{} // closed by retire, under wmu: close once nothing is pending
	bc      *backendConn  // nil if the dialer returned another type; read by the reader only
	// headSince is when the reader began waiting for the response at the
	// head of the queue (monotonic nanoseconds since pipeEpoch); 0 when it
	// waits for none.
	headSince atomic.Int64
}

// pipeInMemory is the largest response body a pipelined connection reads
// whole before passing the response on; larger ones, and bodies of unknown
// length, are streamed.
const pipeInMemory = 64 << 10

// pipeEpoch anchors headSince's monotonic readings.
var pipeEpoch = time.Now()

func pipeNow() int64 { return int64(time.Since(pipeEpoch)) }

type pipeWork struct {
	req  *fasthttp.Request
	resp *fasthttp.Response
	err  error
	sent bool // something of req may have reached the backend
	done chan struct{}
}

// pipeBreak is shared by the requests failed by one broken connection.
type pipeBreak struct {
	counted atomic.Bool
	// idle: the connection closed through no fault of the backend's: it
	// closed it while idle (it had answered before and sent nothing
	// since), or see harmlessBreak. Requests failed by it may be re-sent.
	idle atomic.Bool
}

// pipeError fails a request that was queued on a connection that broke
// before its response arrived: it was sent and nothing was received.
type pipeError struct {
	err error
	brk *pipeBreak
}

func (e *pipeError) Error() string { return "pipelined connection broke: " + e.err.Error() }
func (e *pipeError) Unwrap() error { return e.err }

// firstReport reports whether this is the first failure reported for the
// break, the one that counts against the backend's health.
func (e *pipeError) firstReport() bool { return e.brk.counted.CompareAndSwap(false, true) }

var (
	errPipeClosed  = errors.New("pipelined connection closed")
	errPipeAborted = errors.New("an earlier request on the pipelined connection failed")
	// errPipeStalled: every pipelined connection waits on a slow response;
	// nothing was sent, and the request should take the keep-alive pool.
	errPipeStalled = errors.New("every pipelined connection waits on a slow response")
)

func newPipeClient(addr string, dial func(string) (net.Conn, error), conns, depth int, idle, stall time.Duration) *pipeClient {
	pc := &pipeClient{dial: dial, addr: addr, depth: depth, idle: idle, stall: int64(stall), slots: make([]pipeSlot, conns)}
	pc.works.New = func() any { return &pipeWork{done: make(chan struct{}, 1)} }
	return pc
}

// Do sends req and reads the response into resp: its body whole, or as a
// body stream that the caller must read to its end or close (fasthttp
// closes it once it has written the response; Reset closes it too).
func (pc *pipeClient) Do(req *fasthttp.Request, resp *fasthttp.Response) error {
	s := pc.pick()
	if s == nil {
		return errPipeStalled
	}
	for range 2 {
		c, err := pc.conn(s)
		if err != nil {
			return err
		}
		err, sent := c.send(pc, req, resp)
		if sent || !errors.Is(err, errPipeClosed) {
			return err
		}
		if c.bc != nil && c.bc.aborted.Load() {
			// Closed by BackendUnreachable before req was written: like a
			// connect error, any method moves on to the next backend.
			return &dialError{addr: pc.addr, err: errUnreachable}
		}
		// The connection was closed before anything of req was written
		// (idle close or a break): nothing was sent, try a fresh one.
	}
	// Not the backend's failure: the request moves on, like at max_conns.
	return fasthttp.ErrNoFreeConns
}

// conns is how many pipelined connections pc opens; 0 for a nil pc.
func (pc *pipeClient) conns() int {
	if pc == nil {
		return 0
	}
	return len(pc.slots)
}

// pick chooses the slot with the fewest queued requests, starting the scan
// at a rotating position so ties spread out, and skipping connections that
// wait on a stalled response; nil if every slot does.
func (pc *pipeClient) pick() *pipeSlot {
	n := len(pc.slots)
	start := int(pc.next.Add(1)) % n
	var best *pipeSlot
	bestLen := -1
	now := pipeNow()
	for i := range n {
		s := &pc.slots[(start+i)%n]
		c := s.c.Load()
		if c == nil || c.dead.Load() {
			return s // a free slot: open a connection there
		}
		if h := c.headSince.Load(); h != 0 && now-h > pc.stall {
			continue
		}
		if l := len(c.queue) + len(c.in); bestLen < 0 || l < bestLen {
			best, bestLen = s, l
			if l == 0 {
				break
			}
		}
	}
	return best
}

// conn returns the slot's live connection, dialling one if needed. Requests
// that waited behind a failed dial get the same connect error without
// dialling again.
func (pc *pipeClient) conn(s *pipeSlot) (*pipeConn, error) {
	gen := s.failGen.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.c.Load(); c != nil && !c.dead.Load() {
		return c, nil
	}
	if s.failGen.Load() != gen {
		return nil, s.dialErr
	}
	nc, err := pc.dial(pc.addr)
	if err != nil {
		s.dialErr = err
		s.failGen.Add(1)
		return nil, err
	}
	c := &pipeConn{
		conn:       nc,
		br:         bufio.NewReaderSize(nc, 16<<10),
		bw:         bufio.NewWriterSize(nc, 16<<10),
		in:         make(chan *pipeWork, pc.depth),
		queue:      make(chan *pipeWork, pc.depth),
		closed:     make(chan struct{}),
		retired:    make(chan struct{}),
		writerDone: make(chan struct{}),
		brk:        &pipeBreak{},
	}
	c.bc, _ = nc.(*backendConn)
	s.c.Store(c)
	go c.writer()
	go c.reader(pc.idle)
	return c, nil
}

// send queues req on c for the writer and waits for its response. sent is
// false when nothing of req reached the connection.
func (c *pipeConn) send(pc *pipeClient, req *fasthttp.Request, resp *fasthttp.Response) (err error, sent bool) {
	w := pc.works.Get().(*pipeWork)
	w.req, w.resp, w.err, w.sent = req, resp, nil, false
	resp.Reset()
	resp.SkipBody = req.Header.IsHead()

	c.wmu.Lock()
	if c.dead.Load() {
		c.wmu.Unlock()
		w.req, w.resp = nil, nil
		pc.works.Put(w)
		return errPipeClosed, false
	}
	select {
	case c.in <- w:
		c.pending.Add(1)
	case <-c.closed:
		// Broken while we waited for room: the drain that follows cannot
		// start before we let go of wmu, and w is not queued.
		c.wmu.Unlock()
		w.req, w.resp = nil, nil
		pc.works.Put(w)
		return errPipeClosed, false
	}
	c.wmu.Unlock()
	<-w.done
	err, sent = w.err, w.sent
	w.req, w.resp = nil, nil
	pc.works.Put(w)
	return err, sent
}

// fail breaks the connection: it is closed, the writer stops, and the
// reader fails every request still queued.
func (c *pipeConn) fail() {
	c.once.Do(func() {
		c.dead.Store(true)
		close(c.closed)
		_ = c.conn.Close()
	})
}

// writer writes queued requests back to back and flushes when no more are
// waiting, so a burst leaves in one write.
func (c *pipeConn) writer() {
	defer close(c.writerDone)
	for {
		var w *pipeWork
		select {
		case w = <-c.in:
		default:
			if c.bw.Buffered() > 0 {
				// Let the handlers that are ready run first: what they
				// queue meanwhile leaves in the same write.
				runtime.Gosched()
				if len(c.in) > 0 {
					continue
				}
				if err := c.bw.Flush(); err != nil {
					c.fail()
					return
				}
			}
			select {
			case w = <-c.in:
			case <-c.closed:
				return
			}
		}
		w.sent = true
		if err := w.req.Write(c.bw); err != nil {
			// Part of it may have gone out; the stream is now unusable.
			w.err = &pipeError{err: err, brk: c.brk}
			w.done <- struct{}{}
			c.fail()
			return
		}
		select {
		case c.queue <- w:
		default:
			// Pipeline full: let the backend see what is buffered, then
			// wait for the reader to make room.
			err := c.bw.Flush()
			if err == nil {
				select {
				case c.queue <- w:
					continue
				case <-c.closed:
				}
			}
			w.err = &pipeError{err: errPipeAborted, brk: c.brk}
			if err != nil {
				w.err = &pipeError{err: err, brk: c.brk}
			}
			w.done <- struct{}{}
			c.fail()
			return
		}
	}
}

// reader reads responses in order and hands each to its request.
func (c *pipeConn) reader(idle time.Duration) {
	var timer *time.Timer
	answered := false // a response was read on this connection
	var mark int64    // bytes received up to the end of the last response
	for {
		var w *pipeWork
		select {
		case w = <-c.queue:
		default:
			if timer == nil {
				timer = time.NewTimer(idle)
			} else {
				timer.Reset(idle)
			}
			select {
			case w = <-c.queue:
				timer.Stop()
			case <-c.closed:
				c.drain(c.brk)
				return
			case <-c.retired:
				timer.Stop()
				if c.closeIfIdle() {
					return
				}
				// Requests are still on their way to the queue; no
				// new one can join them.
				select {
				case w = <-c.queue:
				case <-c.closed:
					c.drain(c.brk)
					return
				}
			case <-timer.C:
				if c.closeIfIdle() {
					return
				}
				continue
			}
		}
		c.headSince.Store(pipeNow())
		body, err := readPipelined(w.resp, c.br)
		if err != nil {
			// The request at the head gets its own error (timeout, bad
			// header...); it and those behind it share one break.
			if answered && c.bc != nil && c.bc.got == mark && stale(err) && !c.bc.aborted.Load() {
				c.brk.idle.Store(true)
			}
			w.err = &pipeError{err: err, brk: c.brk}
			w.done <- struct{}{}
			c.fail()
			c.drain(c.brk)
			return
		}
		closing := w.resp.ConnectionClose()
		c.pending.Add(-1)
		w.done <- struct{}{} // w.resp belongs to the handler from here
		if body != nil {
			// The next response follows this body on the connection.
			if brk := body.wait(c.closed); brk != nil {
				c.fail()
				c.drain(brk)
				return
			}
		}
		c.headSince.Store(0)
		if closing {
			// The backend closes after this response: the requests behind
			// were never read (see harmlessBreak).
			c.fail()
			c.drain(harmlessBreak())
			return
		}
		answered = true
		if c.bc != nil {
			mark = c.bc.got - int64(c.br.Buffered())
		}
	}
}

// closeIfIdle closes c, and reports it, when no request is pending on it:
// none can be queued meanwhile, since a push to in happens under wmu.
func (c *pipeConn) closeIfIdle() bool {
	c.wmu.Lock()
	if c.pending.Load() != 0 {
		c.wmu.Unlock()
		return false
	}
	c.dead.Store(true)
	c.wmu.Unlock()
	c.fail()
	c.drain(c.brk) // nothing to fail; waits for the writer
	return true
}

// retire takes no more requests on c and closes it once those queued are
// answered.
func (c *pipeConn) retire() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.dead.Store(true)
	select {
	case <-c.retired: // a drain and then Shutdown both retire
	default:
		close(c.retired)
	}
}

// harmlessBreak is the break of a connection closed through no fault of
// the backend's (it announced Connection: close, or the proxy stopped
// reading a body): not counted against its health, and the requests queued
// behind are re-sent on a fresh connection as after an idle close.
func harmlessBreak() *pipeBreak {
	b := &pipeBreak{}
	b.counted.Store(true)
	b.idle.Store(true)
	return b
}

// readPipelined reads one response from br into resp: the head (after any
// interim 1xx responses), then the body whole if it is at most
// pipeInMemory bytes long, else as resp's body stream, which it returns.
func readPipelined(resp *fasthttp.Response, br *bufio.Reader) (*pipeBody, error) {
	if err := resp.Header.Read(br); err != nil {
		return nil, err
	}
	for n := 0; interim(resp.StatusCode()); n++ {
		if n == maxInterimResponses {
			return nil, errTooManyInterim
		}
		if err := resp.Header.Read(br); err != nil {
			return nil, err
		}
	}
	if resp.SkipBody || noBody(resp.StatusCode()) {
		return nil, nil
	}
	if n := resp.Header.ContentLength(); n >= 0 && n <= pipeInMemory {
		return nil, resp.ReadBody(br, 0)
	}
	// The stream reads from br, and any trailer into its own header.
	src := fasthttp.AcquireResponse()
	resp.Header.CopyTo(&src.Header)
	src.StreamBody = true
	if err := src.ReadBody(br, 0); err != nil {
		fasthttp.ReleaseResponse(src)
		return nil, err
	}
	body := &pipeBody{src: src, end: make(chan struct{}, 1)}
	resp.SetBodyStream(body, resp.Header.ContentLength())
	return body, nil
}

// maxInterimResponses bounds the 1xx responses read before a final one,
// as fasthttp's own reader does.
const maxInterimResponses = 10

var errTooManyInterim = errors.New("too many interim (1xx) responses")

func interim(status int) bool {
	return status >= 100 && status < 200 && status != fasthttp.StatusSwitchingProtocols
}

// noBody: responses that never have a body whatever their headers say.
func noBody(status int) bool {
	return status < 200 || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified
}

// pipeBody is a streamed body of a pipelined response: it reads from the
// connection, and its close tells the connection's reader whether the next
// response can be read after it.
type pipeBody struct {
	src    *fasthttp.Response
	ended  bool  // read to its end
	err    error // the backend's read error, if any
	closed bool
	end    chan struct{}
}

func (b *pipeBody) Read(p []byte) (int, error) {
	n, err := b.src.BodyStream().Read(p)
	switch {
	case err == io.EOF:
		b.ended = true
	case err != nil && b.err == nil:
		b.err = err
	}
	return n, err
}

// CloseWithError is called once the body is written to the client, or
// abandoned (the client went away, or a retry dropped the response).
func (b *pipeBody) CloseWithError(error) error {
	if !b.closed {
		b.closed = true
		b.end <- struct{}{}
	}
	return nil
}

// wait blocks until the body is closed or the connection breaks. It
// returns nil when the connection can read on, else the break that fails
// the requests behind: counted against the backend if its body broke,
// harmless if the proxy stopped reading it.
func (b *pipeBody) wait(closed <-chan struct{}) *pipeBreak {
	select {
	case <-b.end:
	case <-closed:
		<-b.end // the handler's read fails now; wait until it lets go
	}
	defer fasthttp.ReleaseResponse(b.src)
	if !b.ended && b.err == nil {
		// Abandoned: a short rest is cheaper to read than the requests
		// behind it are to fail. (Reads keep their per-read deadline.)
		_, _ = io.CopyN(io.Discard, struct{ io.Reader }{b}, pipeDrainMax)
	}
	switch {
	case b.ended:
		return nil
	case b.err != nil:
		return &pipeBreak{}
	default:
		return harmlessBreak()
	}
}

// pipeDrainMax bounds what a pipelined connection reads of an abandoned
// body to keep the connection; past it the connection is closed, as NGINX
// closes an upstream connection whose response it stops reading.
const pipeDrainMax = 256 << 10

// drain runs after fail: once the writer has stopped it bars new requests,
// fails every sent one once and hands the unsent ones back for a fresh
// connection.
func (c *pipeConn) drain(brk *pipeBreak) {
	<-c.writerDone
	c.wmu.Lock()
	c.dead.Store(true)
	c.wmu.Unlock()
	for {
		select {
		case w := <-c.queue:
			w.err = &pipeError{err: errPipeAborted, brk: brk}
			w.done <- struct{}{}
		case w := <-c.in:
			w.err, w.sent = errPipeClosed, false
			w.done <- struct{}{}
		default:
			return
		}
	}
}

// closeIdle closes every connection once the requests queued on it are
// answered (a removed backend's drain: a request that picked the backend
// from the old table just before the reload may still be on its way, and
// a non-idempotent one could not be sent again); requests that come later
// open fresh connections, which close when idle.
func (pc *pipeClient) closeIdle() {
	for i := range pc.slots {
		if c := pc.slots[i].c.Load(); c != nil {
			c.retire()
		}
	}
}
