package lb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Dialer opens a connection to a backend. Its signature matches
// net.Dialer.DialContext and meshnet's Node.DialContext so either plugs in.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// TCPDialer dials plain TCP with keep-alive and Nagle off.
func TCPDialer() Dialer {
	d := &net.Dialer{KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		return c, nil
	}
}

// dialError marks a failure to connect: nothing reached the backend, so any
// method may be retried on the next one.
type dialError struct {
	addr    string
	timeout bool
	err     error
}

func (e *dialError) Error() string { return fmt.Sprintf("connect to %s: %v", e.addr, e.err) }
func (e *dialError) Unwrap() error { return e.err }

// errUnreachable fails a dial that was under way when the backend was
// reported unreachable.
var errUnreachable = errors.New("the backend was reported unreachable")

// connect opens a connection to b, bounded by the connect timeout and by
// b's dial context, which BackendUnreachable cancels. perOp gives the
// connection per-operation send/read deadlines (the pool, pipelining); a
// tunnel's connection keeps plain deadlines, set by its user.
func (b *backendState) connect(perOp bool) (*backendConn, error) {
	b.connsMu.Lock()
	parent := b.dialCtx
	b.connsMu.Unlock()
	ctx, cancel := context.WithTimeout(parent, b.timeouts.Connect)
	defer cancel()
	c, err := b.dial(ctx, "tcp", b.spec.Addr)
	if err != nil {
		timeout := errors.Is(err, context.DeadlineExceeded) || isTimeout(err)
		if parent.Err() != nil {
			timeout, err = false, errUnreachable
		}
		return nil, &dialError{addr: b.spec.Addr, timeout: timeout, err: err}
	}
	bc := &backendConn{Conn: c, owner: b}
	if perOp {
		bc.send, bc.read, bc.perOp = b.timeouts.Send, b.timeouts.Read, true
	}
	bc.addr = connAddr{Addr: c.LocalAddr(), conn: bc}
	b.connsMu.Lock()
	if parent.Err() != nil { // reported unreachable while we dialled
		b.connsMu.Unlock()
		_ = c.Close()
		return nil, &dialError{addr: b.spec.Addr, err: errUnreachable}
	}
	b.conns[bc] = struct{}{}
	b.connsMu.Unlock()
	return bc, nil
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// backendConn is a connection to a backend. It gives every Read and Write
// its own deadline, like NGINX's proxy_read_timeout / proxy_send_timeout
// ("between two successive operations"), instead of one deadline for a whole
// streamed body. To keep the hot path cheap a deadline is only pushed forward
// once less than 15/16 of the timeout remains, so the effective limit is
// between 15/16 and 1 of the configured value. fasthttp's own deadline calls
// are ignored.
//
// It also keeps the accounting of the current exchange (one request and its
// response), so that a failed attempt can tell a backend's fault from a
// local error (nothing was written and the socket reported nothing) and from
// a pooled connection that died while idle (reused, and closed before any
// byte of the response). fasthttp calls LocalAddr exactly once per exchange,
// right after taking the connection from its pool (Response.ParseNetConn):
// that call starts the exchange, and the address it returns carries the
// connection so the attempt can find it again from Response.LocalAddr.
type backendConn struct {
	net.Conn
	owner                *backendState
	perOp                bool // per-operation deadlines; otherwise the caller's own
	send, read           time.Duration
	sendUntil, readUntil time.Time
	addr                 connAddr
	aborted              atomic.Bool // closed by BackendUnreachable

	exchanges  int   // exchanges started on this connection; > 1 means reused
	wrote, got int64 // bytes written and read in the current exchange
	// The first write and read errors of the current exchange, apart: a
	// pipelined connection or a tunnel writes and reads from two goroutines.
	writeErr, readErr error
}

// connAddr is the local address of a backendConn, pointing back to it.
type connAddr struct {
	net.Addr
	conn *backendConn
}

// LocalAddr starts a new exchange (see backendConn).
func (c *backendConn) LocalAddr() net.Addr {
	c.exchanges++
	c.wrote, c.got, c.writeErr, c.readErr = 0, 0, nil, nil
	return &c.addr
}

// ioErr is the first read or write error of the current exchange, which
// writes its request before it reads.
func (c *backendConn) ioErr() error {
	if c.writeErr != nil {
		return c.writeErr
	}
	return c.readErr
}

// connOf returns the connection an attempt used, from the address fasthttp
// recorded in the response, or nil when it got none (a dial error).
func connOf(resp *fasthttp.Response) *backendConn {
	if a, ok := resp.LocalAddr().(*connAddr); ok {
		return a.conn
	}
	return nil
}

// localFailure reports an attempt that failed although nothing reached the
// connection and the connection reported no error: fasthttp refused to send
// the request. That is never the backend's fault.
func (c *backendConn) localFailure() bool {
	return c.wrote == 0 && c.ioErr() == nil
}

func (c *backendConn) Read(b []byte) (int, error) {
	if c.read > 0 {
		now := time.Now()
		if c.readUntil.Sub(now) < c.read-c.read/16 {
			c.readUntil = now.Add(c.read)
			if err := c.Conn.SetReadDeadline(c.readUntil); err != nil {
				return 0, err
			}
		}
	}
	n, err := c.Conn.Read(b) // a deadline error keeps its Timeout() method, which fasthttp checks
	c.got += int64(n)
	if err != nil && c.readErr == nil {
		c.readErr = err
	}
	return n, err
}

func (c *backendConn) Write(b []byte) (int, error) {
	if c.send > 0 {
		now := time.Now()
		if c.sendUntil.Sub(now) < c.send-c.send/16 {
			c.sendUntil = now.Add(c.send)
			if err := c.Conn.SetWriteDeadline(c.sendUntil); err != nil {
				return 0, err
			}
		}
	}
	n, err := c.Conn.Write(b)
	c.wrote += int64(n)
	if err != nil && c.writeErr == nil {
		c.writeErr = err
	}
	return n, err
}

// Close forgets the connection and closes it.
func (c *backendConn) Close() error {
	c.owner.forget(c)
	return c.Conn.Close()
}

// SetDeadline and friends are backendConn's own with per-operation
// deadlines, fasthttp's calls are ignored then.
func (c *backendConn) SetDeadline(t time.Time) error {
	if c.perOp {
		return nil
	}
	return c.Conn.SetDeadline(t)
}

func (c *backendConn) SetReadDeadline(t time.Time) error {
	if c.perOp {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *backendConn) SetWriteDeadline(t time.Time) error {
	if c.perOp {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}
