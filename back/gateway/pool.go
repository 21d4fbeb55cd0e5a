package gateway

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Dial connects to the container: the forward's targets in order.
type Dial = func(context.Context) (net.Conn, error)

// pool keeps idle keep-alive connections to the container, most recently
// used first, and bounds the open ones (busy and idle).
type pool struct {
	cfg *Config

	mu     sync.Mutex
	idle   []*upConn // the last one was used last
	open   int
	closed bool
	freed  chan struct{} // a connection went idle or closed: a waiter may go on
}

var errPoolClosed = errors.New("gateway closed")

func newPool(cfg *Config) *pool {
	return &pool{cfg: cfg, freed: make(chan struct{}, 1)}
}

// get returns a pooled connection or a new one, waiting while MaxConns are
// open and busy. fresh asks for a connection known to be open: a pooled one
// idle for more than a second is checked first (a request whose body is
// streamed cannot be sent again if the container had closed it).
func (p *pool) get(ctx context.Context, dial Dial, fresh bool) (*upConn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, errPoolClosed
		}
		now := time.Now()
		for len(p.idle) > 0 {
			u := p.idle[len(p.idle)-1]
			p.idle = p.idle[:len(p.idle)-1]
			if now.Sub(u.idleSince) > p.cfg.UpstreamIdleTimeout || fresh && now.Sub(u.idleSince) > time.Second && !stillOpen(u.Conn) {
				p.open--
				u.Close()
				continue
			}
			p.wake()
			p.mu.Unlock()
			return u, nil
		}
		if p.open < p.cfg.MaxConns {
			p.open++
			p.wake() // another waiter may take what is left: wake-ups coalesce
			p.mu.Unlock()
			c, err := dial(ctx)
			if err != nil {
				p.release()
				return nil, err
			}
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetNoDelay(true)
			}
			return newUpConn(c, p.cfg.IOTimeout), nil
		}
		p.mu.Unlock()
		select {
		case <-p.freed:
		case <-time.After(100 * time.Millisecond): // a look again, whatever happened to the wake-ups
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// wake lets one waiter look again; called with mu held when something may
// be free.
func (p *pool) wake() {
	if len(p.idle) > 0 || p.open < p.cfg.MaxConns {
		select {
		case p.freed <- struct{}{}:
		default:
		}
	}
}

// put returns a connection whose exchange ended cleanly.
func (p *pool) put(u *upConn) {
	u.idleSince = time.Now()
	u.reused = true
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.cfg.MaxIdle {
		p.open--
		p.wake()
		p.mu.Unlock()
		u.Close()
		return
	}
	p.idle = append(p.idle, u)
	p.wake()
	p.mu.Unlock()
}

// discard closes a connection that cannot be reused.
func (p *pool) discard(u *upConn) {
	u.Close()
	p.release()
}

func (p *pool) release() {
	p.mu.Lock()
	p.open--
	p.wake()
	p.mu.Unlock()
}

// closeIdle closes the idle connections (the container moved or stopped);
// closeAll also refuses new ones.
func (p *pool) closeIdle(all bool) {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.open -= len(idle)
	p.closed = p.closed || all
	p.wake()
	p.mu.Unlock()
	for _, u := range idle {
		u.Close()
	}
}

// stillOpen peeks at a pooled connection without blocking: a container
// that closed it while idle has sent a FIN (or a reset), and an idle
// keep-alive connection has nothing else to read.
func stillOpen(c net.Conn) bool {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return true
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	open := true
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case errors.Is(err, unix.EAGAIN):
		case err != nil, n == 0:
			open = false
		default:
			open = false // data on an idle connection: out of step
		}
		return true
	})
	return err == nil && open
}
