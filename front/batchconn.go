package front

import (
	"crypto/tls"
	"net"
	"sync"
	"time"
)

const (
	// maxPendingWrite bounds what a batchConn holds for a client that does
	// not read: past it, Write waits for the kernel to take the bytes.
	maxPendingWrite = 256 << 10
	// keptWriteBuffer is the largest buffer a connection keeps between
	// bursts (two of them: one filling, one being written).
	keptWriteBuffer = 16 << 10
	// closeFlushTimeout bounds the last write (GOAWAY) at Close.
	closeFlushTimeout = 5 * time.Second
)

// batchConn coalesces the writes Go's HTTP/2 server makes to a TLS
// connection. The server flushes a stream's HEADERS frame, waits for it to
// be written, and flushes its DATA frame again: two TLS records and two
// system calls per response, and a third and fourth for the next stream
// whose answer arrives a moment later. Here a Write only appends to a
// buffer; one goroutine at a time writes out everything appended while the
// previous write was in the kernel, as one record. Under load that is
// several responses per system call, as NGINX's event loop does; idle, a
// Write costs one goroutine start more.
type batchConn struct {
	*tls.Conn // reads, addresses, ConnectionState (ALPN, cipher checks)

	mu      sync.Mutex
	drained sync.Cond // signalled when the writer took or wrote a batch
	pending []byte    // appended by Write, not yet taken by the writer
	spare   []byte    // the previous batch's buffer, reused
	writing bool      // a writer goroutine runs
	err     error     // the first write error; every later Write returns it
}

func newBatchConn(tc *tls.Conn) *batchConn {
	c := &batchConn{Conn: tc}
	c.drained.L = &c.mu
	return c
}

// Write queues p (copied) and returns; a write error shows on a later Write
// or at Close.
func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && len(c.pending) >= maxPendingWrite {
		c.drained.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	c.pending = append(c.pending, p...)
	if !c.writing {
		c.writing = true
		go c.writeOut()
	}
	return len(p), nil
}

// writeOut writes batches until nothing is pending.
func (c *batchConn) writeOut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.pending) > 0 && c.err == nil {
		out := c.pending
		c.pending = c.spare[:0]
		c.mu.Unlock()
		_, err := c.Conn.Write(out)
		c.mu.Lock()
		c.spare = out[:0]
		if err != nil {
			c.err = err
		}
		c.drained.Broadcast()
	}
	if cap(c.pending) > keptWriteBuffer {
		c.pending = nil // a burst's buffer is not kept by an idle connection
	}
	if cap(c.spare) > keptWriteBuffer {
		c.spare = nil
	}
	c.writing = false
	c.drained.Broadcast()
}

// Close writes out what is pending (the server's GOAWAY), within
// closeFlushTimeout, then closes the connection.
func (c *batchConn) Close() error {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	c.mu.Lock()
	for c.writing {
		c.drained.Wait()
	}
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.mu.Unlock()
	return c.Conn.Close()
}
