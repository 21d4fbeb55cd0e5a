package lb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
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

// dialWithTimeout adapts a Dialer to fasthttp's context-less Dial, bounding it
// by the connect timeout and wrapping the connection with per-operation
// send/read deadlines.
func dialWithTimeout(dial Dialer, addr string, t Timeouts) func(string) (net.Conn, error) {
	return func(string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), t.Connect)
		defer cancel()
		c, err := dial(ctx, "tcp", addr)
		if err != nil {
			timeout := errors.Is(err, context.DeadlineExceeded) || isTimeout(err)
			return nil, &dialError{addr: addr, timeout: timeout, err: err}
		}
		return newDeadlineConn(c, t.Send, t.Read), nil
	}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// deadlineConn gives every Read and Write its own deadline, like NGINX's
// proxy_read_timeout / proxy_send_timeout ("between two successive
// operations"), instead of one deadline for a whole streamed body. To keep
// the hot path cheap a deadline is only pushed forward once less than 15/16
// of the timeout remains, so the effective limit is between 15/16 and 1 of
// the configured value. fasthttp's own deadline calls are ignored.
type deadlineConn struct {
	net.Conn
	send, read           time.Duration
	sendUntil, readUntil time.Time
}

func newDeadlineConn(c net.Conn, send, read time.Duration) *deadlineConn {
	return &deadlineConn{Conn: c, send: send, read: read}
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	if c.read > 0 {
		now := time.Now()
		if c.readUntil.Sub(now) < c.read-c.read/16 {
			c.readUntil = now.Add(c.read)
			if err := c.Conn.SetReadDeadline(c.readUntil); err != nil {
				return 0, err
			}
		}
	}
	return c.Conn.Read(b) // a deadline error keeps its Timeout() method, which fasthttp checks
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	if c.send > 0 {
		now := time.Now()
		if c.sendUntil.Sub(now) < c.send-c.send/16 {
			c.sendUntil = now.Add(c.send)
			if err := c.Conn.SetWriteDeadline(c.sendUntil); err != nil {
				return 0, err
			}
		}
	}
	return c.Conn.Write(b)
}

// SetDeadline and friends are owned by deadlineConn.
func (c *deadlineConn) SetDeadline(time.Time) error      { return nil }
func (c *deadlineConn) SetReadDeadline(time.Time) error  { return nil }
func (c *deadlineConn) SetWriteDeadline(time.Time) error { return nil }
