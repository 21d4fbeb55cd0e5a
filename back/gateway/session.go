package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"potluck/internal/splice"
)

// session serves one tunnel connection with two goroutines: the reader
// reads requests and sends each to the container on a connection of its
// own, the writer reads the responses from those connections in request
// order and writes them back. Before it waits for a response the writer
// flushes what it wrote so far, so a burst of answers that arrived together
// leaves in one write.
type session struct {
	g    *Gateway
	dial Dial
	c    *clientConn
	br   *bufio.Reader // the reader's, then the tunnel's after an Upgrade
	bw   *bufio.Writer // the writer's
	q    chan *exchange
	// slots bound the requests sent to the container and not yet answered.
	slots chan struct{}

	ctx    context.Context // cancelled by abort: ends every wait
	cancel context.CancelFunc
	once   sync.Once

	mu      sync.Mutex
	ups     map[*upConn]struct{} // in use by this session's exchanges
	aborted bool
}

// exchange is one request and its response.
type exchange struct {
	up  *upConn
	req message
	// replay holds a request whose body is small, whole, to send it again
	// on a fresh connection when a pooled one turns out closed.
	replay   []byte
	writeErr error // writing the request failed (the response read may resend it)
	err      error // the request could not be sent: the connection closes here
	slot     bool  // holds one of slots

	local   []byte // an answer made here (bad request); the connection closes after it
	upgrade []byte // the head of an Upgrade request: the rest is relayed raw

	pending atomic.Int32 // the request side and the response side, each done once
	bad     atomic.Bool  // either side left the connection unusable
}

func newSession(g *Gateway, c net.Conn, dial Dial) *session {
	cc := &clientConn{Conn: c, cfg: &g.cfg}
	s := &session{
		g: g, dial: dial, c: cc,
		br:    bufio.NewReaderSize(cc, 32<<10),
		bw:    bufio.NewWriterSize(cc, 32<<10),
		q:     make(chan *exchange, g.cfg.MaxInFlight+1), // +1: a last local answer or upgrade
		slots: make(chan struct{}, g.cfg.MaxInFlight),
		ups:   map[*upConn]struct{}{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// abort ends the session at once: the tunnel connection and the
// connections to the container in use are closed, every wait ends.
func (s *session) abort() {
	s.once.Do(func() {
		s.cancel()
		s.c.Close()
		s.mu.Lock()
		s.aborted = true
		ups := s.ups
		s.ups = nil
		s.mu.Unlock()
		for u := range ups {
			u.Close() // the exchanges' sides see errors and give them back
		}
	})
}

func (s *session) track(u *upConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aborted {
		return false
	}
	s.ups[u] = struct{}{}
	return true
}

func (s *session) untrack(u *upConn) {
	s.mu.Lock()
	delete(s.ups, u)
	s.mu.Unlock()
}

// readLoop reads requests until the connection ends, one asks for its
// end (Connection: close, an Upgrade) or a request could not be sent.
func (s *session) readLoop() {
	defer close(s.q)
	for {
		if s.br.Buffered() == 0 {
			s.c.phase = phaseIdle
			if _, err := s.br.Peek(1); err != nil {
				return // the Front closed it, or it sat idle
			}
		}
		s.c.phase, s.c.since = phaseHead, time.Now()
		ex := &exchange{}
		head, err := readHead(s.br, s.g.cfg.MaxHeadSize, make([]byte, 0, 512))
		if err == nil {
			ex.req, err = parseRequest(head)
		}
		if err != nil {
			if ans := localAnswer(err); ans != nil {
				s.g.malformed.Add(1)
				ex.local = ans
				s.enqueue(ex)
			}
			return
		}
		s.c.phase = phaseBody
		if ex.req.upgrade {
			ex.upgrade = head
			s.enqueue(ex)
			return
		}
		select {
		case s.slots <- struct{}{}:
			ex.slot = true
		case <-s.ctx.Done():
			return
		}
		if !s.send(ex, head) || ex.req.close {
			return
		}
	}
}

// localAnswer is the response to a request that could not be read, nil
// when there is none to give (the connection broke).
func localAnswer(err error) []byte {
	switch {
	case errors.Is(err, errHeadTooLarge):
		return answerTooLarge
	case errors.Is(err, errMalformed):
		return answerBadRequest
	case errors.Is(err, os.ErrDeadlineExceeded):
		return answerTimeout
	}
	return nil
}

var (
	answerTooLarge   = closingAnswer("431 Request Header Fields Too Large")
	answerBadRequest = closingAnswer("400 Bad Request")
	answerTimeout    = closingAnswer("408 Request Timeout")
)

// closingAnswer is a plain-text response with status as its body, after
// which the gateway closes the connection.
func closingAnswer(status string) []byte {
	body := status + "\n"
	return fmt.Appendf(nil, "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", status, len(body), body)
}

func (s *session) enqueue(ex *exchange) bool {
	select {
	case s.q <- ex:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// handOver gives ex to the writer, which ends its response side, or ends
// it here when the session ended.
func (s *session) handOver(ex *exchange) bool {
	if s.enqueue(ex) {
		return true
	}
	s.respDone(ex, false)
	return false
}

// send sends ex's request to the container and hands ex to the writer. It
// reports whether the next request may be read: not after a failure, since
// the tunnel connection closes at this request.
func (s *session) send(ex *exchange, head []byte) bool {
	g := s.g
	req := ex.req
	// A body sent after 100 Continue cannot be read first.
	small := req.kind == bodyNone || req.kind == bodyLength && req.length <= int64(g.cfg.MaxReplayBody) && !req.expect
	if small && req.kind == bodyLength {
		// Read the body first: the request leaves in one write and can be
		// sent again.
		whole := make([]byte, len(head)+int(req.length))
		copy(whole, head)
		if _, err := io.ReadFull(s.br, whole[len(head):]); err != nil {
			s.abort() // the Front's side broke: nothing to answer
			return false
		}
		head = whole
	}
	ex.pending.Store(2)
	g.inFlight.Add(1)
	u, err := g.pool.get(s.ctx, s.dial, !small || !req.resendable)
	if err == nil && !s.track(u) {
		g.pool.discard(u)
		err = errPoolClosed
	}
	if err != nil {
		ex.err = err
		s.reqDone(ex, false)
		s.handOver(ex)
		return false
	}
	ex.up = u
	g.requests.Add(1)
	if small {
		// A pooled connection the container closed fails this write or,
		// more often, the response's read: the writer sends it again.
		ex.replay = head
		ex.writeErr = s.write(u, head)
		s.reqDone(ex, true)
		return s.handOver(ex)
	}
	// A streamed body: the writer reads the response from now on, so an
	// early answer (413, or 100 Continue) reaches the Front while the body
	// still waits or flows.
	if _, err := u.bw.Write(head); err != nil {
		ex.writeErr = err
		s.reqDone(ex, false)
		s.handOver(ex)
		return false
	}
	if !s.handOver(ex) {
		s.reqDone(ex, false)
		return false
	}
	var berr error
	if req.kind == bodyChunked {
		berr = copyChunked(u.bw, s.br, g.cfg.MaxHeadSize)
	} else {
		berr = copyN(u.bw, s.br, req.length)
	}
	if berr == nil {
		if err := u.bw.Flush(); err != nil {
			berr = &writeError{err}
		}
	}
	s.reqDone(ex, berr == nil)
	var we *writeError
	switch {
	case berr == nil:
		return true
	case errors.As(berr, &we):
		// The container stopped reading the body: its response, if it
		// sends one, is passed on, and the connection ends after it, since
		// the rest of the body was not read.
		return false
	default:
		// The Front's side broke (or its body was malformed) mid-body.
		s.abort()
		return false
	}
}

// write sends a request held whole, in one write.
func (s *session) write(u *upConn, b []byte) error {
	if _, err := u.bw.Write(b); err != nil {
		return err
	}
	return u.bw.Flush()
}

// resend sends ex's request again on a new connection when its pooled one
// turned out closed by the container before answering (it closes idle
// keep-alive connections as it likes); err is how the first try failed.
// The writer calls it, which owns ex then.
func (s *session) resend(ex *exchange, err error) bool {
	if ex.replay == nil || !ex.up.reused || !ex.req.resendable || !closedByPeer(err) {
		return false
	}
	replay := ex.replay
	ex.replay = nil // once
	old := ex.up
	ex.up = nil
	s.untrack(old)
	s.g.pool.discard(old)
	s.g.pool.closeIdle(false) // they sat idle at least as long
	u, err := s.g.pool.get(s.ctx, s.dial, true)
	if err != nil {
		return false
	}
	ex.up = u
	if !s.track(u) {
		return false
	}
	return s.write(u, replay) == nil
}

func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// reqDone and respDone record the end of each side of ex; the last one
// gives the connection back to the pool, or closes it.
func (s *session) reqDone(ex *exchange, ok bool) { s.sideDone(ex, ok) }

func (s *session) respDone(ex *exchange, ok bool) { s.sideDone(ex, ok) }

func (s *session) sideDone(ex *exchange, ok bool) {
	if !ok {
		ex.bad.Store(true)
	}
	if ex.pending.Add(-1) != 0 {
		return
	}
	s.g.inFlight.Add(-1)
	u := ex.up
	if u == nil {
		return
	}
	s.untrack(u)
	if ex.bad.Load() {
		s.g.pool.discard(u)
	} else {
		s.g.pool.put(u)
	}
}

// writeLoop writes the responses in request order.
func (s *session) writeLoop() {
	for {
		var ex *exchange
		var ok bool
		select {
		case ex, ok = <-s.q:
		default:
			if s.bw.Flush() != nil {
				s.abort()
				return
			}
			select {
			case ex, ok = <-s.q:
			case <-s.ctx.Done():
				return
			}
		}
		if !ok {
			// The reader stopped: every answer was written.
			_ = s.bw.Flush()
			s.abort()
			return
		}
		goOn := s.answer(ex)
		if ex.slot {
			<-s.slots
		}
		if !goOn {
			_ = s.bw.Flush()
			s.abort()
			return
		}
	}
}

// answer writes ex's response and reports whether the connection goes on.
// It ends ex's response side on every path.
func (s *session) answer(ex *exchange) bool {
	switch {
	case ex.local != nil:
		_, _ = s.bw.Write(ex.local)
		if s.bw.Flush() == nil {
			s.linger()
		}
		return false
	case ex.upgrade != nil:
		if s.bw.Flush() == nil {
			s.tunnel(ex.upgrade)
		}
		return false
	case ex.err != nil:
		s.respDone(ex, false)
		if !errors.Is(ex.err, errPoolClosed) && !errors.Is(ex.err, context.Canceled) {
			s.g.upstreamFailed(ex.err)
		}
		return false
	}
	for {
		var head []byte
		err := ex.writeErr
		ex.writeErr = nil
		if err == nil {
			// What was written so far leaves before waiting for the
			// container; a response that already arrived is read at once.
			if s.bw.Buffered() > 0 && !ex.up.ready() && s.bw.Flush() != nil {
				s.respDone(ex, false)
				return false
			}
			head, err = readHead(ex.up.br, s.g.cfg.MaxHeadSize, make([]byte, 0, 512))
		}
		if err != nil && s.resend(ex, err) {
			continue
		}
		var m message
		if err == nil {
			m, err = parseResponse(head, ex.req.head)
		}
		if err == nil && m.status == 101 {
			err = errors.New("101 Switching Protocols to a request that did not ask for an upgrade")
		}
		if err != nil {
			s.respDone(ex, false)
			if s.ctx.Err() == nil {
				s.g.upstreamFailed(err)
			}
			return false
		}
		if m.status < 200 {
			// Interim (100 Continue, 103 Early Hints): passed on at once.
			if _, err := s.bw.Write(head); err != nil || s.bw.Flush() != nil {
				s.respDone(ex, false)
				return false
			}
			continue
		}
		return s.passOn(ex, head, m)
	}
}

// passOn writes a final response head and copies its body.
func (s *session) passOn(ex *exchange, head []byte, m message) bool {
	tellsClose := m.close
	if m.close && m.kind != bodyUntilClose && m.closeLine[1] > 0 {
		// "Connection: close" ends the container's connection to this
		// gateway, not the Front's tunnel connection, which stays open
		// for the requests behind (the Front drops the field anyway).
		_, _ = s.bw.Write(head[:m.closeLine[0]])
		head = head[m.closeLine[1]:]
		tellsClose = false
	}
	if _, err := s.bw.Write(head); err != nil {
		s.respDone(ex, false)
		return false
	}
	var err error
	switch m.kind {
	case bodyLength:
		err = copyN(s.bw, ex.up.br, m.length)
	case bodyChunked:
		err = copyChunked(s.bw, ex.up.br, s.g.cfg.MaxHeadSize)
	case bodyUntilClose:
		err = copyN(s.bw, ex.up.br, -1)
	}
	if err != nil {
		s.respDone(ex, false)
		var we *writeError
		if !errors.As(err, &we) {
			// Cut short by the container: the Front must see a broken
			// response, not a complete one.
			s.g.upstreamFailed(err)
		}
		return false
	}
	s.respDone(ex, !m.close && !ex.req.close && ex.up.br.Buffered() == 0)
	s.g.upstreamAnswered()
	return !ex.req.close && !tellsClose && m.kind != bodyUntilClose
}

// linger reads what the Front still sends, for a while, after an answer
// that closes the connection: closing with unread data would send a reset,
// which can destroy the answer before the Front reads it. The reader has
// stopped; the writer owns the connection.
func (s *session) linger() {
	if cw, ok := s.c.Conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = s.c.Conn.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.CopyN(io.Discard, s.c.Conn, 1<<20)
}

// tunnel sends an Upgrade request to a new connection to the container and
// relays the rest of the tunnel connection raw, both ways, as the forward
// does without a gateway.
func (s *session) tunnel(head []byte) {
	s.g.upgrades.Add(1)
	s.g.requests.Add(1)
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	up, err := s.dial(ctx)
	if err != nil {
		s.g.upstreamFailed(err)
		return
	}
	defer up.Close()
	_ = s.c.Conn.SetDeadline(time.Time{})
	rest, _ := s.br.Peek(s.br.Buffered())
	if _, err := up.Write(head); err != nil {
		return
	}
	if _, err := up.Write(rest); err != nil {
		return
	}
	_, _ = s.br.Discard(len(rest))
	splice.Conns(s.c.Conn, up)
}

// finish ends, after abort, the response sides of the exchanges the writer
// did not come to: their connections are closed and leave the pool's count.
func (s *session) finish() {
	for ex := range s.q {
		if ex.pending.Load() > 0 {
			s.respDone(ex, false)
		}
	}
}
