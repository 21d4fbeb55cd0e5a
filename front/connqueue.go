package front

import (
	"context"
	"net"
	"sync"
)

// connQueue is a net.Listener fed with connections made in process: TLS
// ones whose handshake is done and which chose HTTP/1.1 (TLSServer), the
// in-memory ones of the placeholder backend (unavailable). A server
// serves it like any listener.
type connQueue struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// put hands c to Accept: net.ErrClosed once the queue is closed, ctx's
// error if it ends first.
func (q *connQueue) put(ctx context.Context, c net.Conn) error {
	select {
	case q.ch <- c:
		return nil
	case <-q.done:
		return net.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error   { q.closed.Do(func() { close(q.done) }); return nil }
func (q *connQueue) Addr() net.Addr { return q.addr }
