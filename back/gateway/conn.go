package gateway

import (
	"bufio"
	"errors"
	"io"
	"net"
	"syscall"
	"time"
)

// readPhase is what a tunnel connection's reader waits for; it decides the
// read deadline.
type readPhase uint8

const (
	phaseIdle readPhase = iota // the next request: IdleTimeout (within 1/16) from when the wait began
	phaseHead                  // the rest of a head: HeaderTimeout from its first byte
	phaseBody                  // a request body: IOTimeout per read
)

// clientConn is the tunnel connection from a Front. Its reads are made by
// the session's reader only and its writes by the writer only, so the two
// halves need no lock.
type clientConn struct {
	net.Conn
	cfg *Config

	phase     readPhase
	since     time.Time // start of the head
	readUntil time.Time // the read deadline set on Conn

	writeUntil time.Time
	werr       error // the first write error: the Front's side failed
}

func (c *clientConn) Read(p []byte) (int, error) {
	var want time.Time
	switch c.phase {
	case phaseIdle:
		// Slid, not set per request: a deadline costs a timer on the
		// tunnel connection, and the wait ends within IdleTimeout - 1/16.
		want = slid(c.readUntil, c.cfg.IdleTimeout)
	case phaseHead:
		want = c.since.Add(c.cfg.HeaderTimeout)
	default:
		want = slid(c.readUntil, c.cfg.IOTimeout)
	}
	if err := keepDeadline(c.Conn, &c.readUntil, want, false); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *clientConn) Write(p []byte) (int, error) {
	if c.werr != nil {
		return 0, c.werr
	}
	if err := keepDeadline(c.Conn, &c.writeUntil, slid(c.writeUntil, c.cfg.IOTimeout), true); err != nil {
		c.werr = err
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		c.werr = err
	}
	return n, err
}

// slid returns a per-operation deadline d from now, or until unchanged while
// between 15/16 of d and d remain, so that most operations set no deadline
// (and one left by a longer phase is cut back).
func slid(until time.Time, d time.Duration) time.Time {
	now := time.Now()
	if r := until.Sub(now); r >= d-d/16 && r <= d {
		return until
	}
	return now.Add(d)
}

// keepDeadline sets want as c's read (or write) deadline unless *until,
// the one set last, is it already.
func keepDeadline(c net.Conn, until *time.Time, want time.Time, write bool) error {
	if want.Equal(*until) {
		return nil
	}
	set := c.SetReadDeadline
	if write {
		set = c.SetWriteDeadline
	}
	if err := set(want); err != nil {
		return err
	}
	*until = want
	return nil
}

// upConn is a connection to the container, used for one request at a time.
// Its request is written by the session's reader; its response is read by
// the exchange's goroutine and then the writer, one after the other.
type upConn struct {
	net.Conn
	io         time.Duration
	br         *bufio.Reader
	bw         *bufio.Writer
	readUntil  time.Time
	writeUntil time.Time
	idleSince  time.Time // when it was put back in the pool
	reused     bool      // it served an exchange before this one

	raw      syscall.RawConn // nil if c is not a *net.TCPConn
	nonblock bool            // ready is looking: read without waiting
}

func newUpConn(c net.Conn, ioTimeout time.Duration) *upConn {
	u := &upConn{Conn: c, io: ioTimeout}
	if tc, ok := c.(*net.TCPConn); ok {
		u.raw, _ = tc.SyscallConn()
	}
	u.br = bufio.NewReaderSize(readerFunc(u.read), 16<<10)
	u.bw = bufio.NewWriterSize(writerFunc(u.write), 16<<10)
	return u
}

var errWouldBlock = errors.New("no data yet")

// ready reports whether the container's next bytes are here, reading what
// arrived without waiting for more.
func (u *upConn) ready() bool {
	if u.br.Buffered() > 0 {
		return true
	}
	if u.raw == nil {
		return false
	}
	u.nonblock = true
	_, err := u.br.Peek(1)
	u.nonblock = false
	return err == nil
}

func (u *upConn) read(p []byte) (int, error) {
	if u.nonblock {
		var n int
		var rerr error
		if err := u.raw.Read(func(fd uintptr) bool {
			n, rerr = syscall.Read(int(fd), p)
			return true
		}); err != nil {
			return 0, err
		}
		switch {
		case errors.Is(rerr, syscall.EAGAIN):
			return 0, errWouldBlock
		case rerr != nil:
			return 0, rerr
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
	if err := keepDeadline(u.Conn, &u.readUntil, slid(u.readUntil, u.io), false); err != nil {
		return 0, err
	}
	return u.Conn.Read(p)
}

func (u *upConn) write(p []byte) (int, error) {
	if err := keepDeadline(u.Conn, &u.writeUntil, slid(u.writeUntil, u.io), true); err != nil {
		return 0, err
	}
	return u.Conn.Write(p)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// writeError marks an error of the destination during a copy.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// flushIfDry flushes bw when br has nothing buffered, that is before a read
// of br would wait for the network: what was copied so far leaves before
// the copy blocks, so a streamed body (server-sent events, a slow download)
// is not held back, and a body that arrived whole leaves in one write.
func flushIfDry(bw *bufio.Writer, br *bufio.Reader) error {
	if br.Buffered() == 0 && bw.Buffered() > 0 {
		if err := bw.Flush(); err != nil {
			return &writeError{err}
		}
	}
	return nil
}

// copyN copies n bytes (n < 0: until EOF) from br to bw without an
// intermediate buffer. Errors of bw are *writeError; a short source is
// io.ErrUnexpectedEOF (n >= 0) and its end nil (n < 0).
func copyN(bw *bufio.Writer, br *bufio.Reader, n int64) error {
	for n != 0 {
		if err := flushIfDry(bw, br); err != nil {
			return err
		}
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				if n < 0 && errors.Is(err, io.EOF) {
					return nil
				}
				return noEOF(err)
			}
		}
		k := br.Buffered()
		if n > 0 && int64(k) > n {
			k = int(n)
		}
		b, _ := br.Peek(k)
		if _, err := bw.Write(b); err != nil {
			return &writeError{err}
		}
		_, _ = br.Discard(k)
		if n > 0 {
			n -= int64(k)
		}
	}
	return nil
}
