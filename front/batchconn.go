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
	// keptWriteBuffer is the largest batch buffer kept for reuse.
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
	bufs      *writeBuffers

	mu      sync.Mutex
	drained sync.Cond // signalled when the writer took or wrote a batch
	pending []byte    // appended by Write, not yet taken by the writer
	spare   []byte    // the previous batch's buffer, reused within a burst
	writing bool      // a writer goroutine runs
	err     error     // the first write error; every later Write returns it
}

func newBatchConn(tc *tls.Conn, bufs *writeBuffers) *batchConn {
	c := &batchConn{Conn: tc, bufs: bufs}
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
	if c.pending == nil {
		c.pending = c.bufs.get()
	}
	c.pending = append(c.pending, p...)
	if !c.writing {
		c.writing = true
		go c.writeOut()
	}
	return len(p), nil
}

// writeOut writes batches until nothing is pending, then gives the buffers
// back: an idle connection holds none.
func (c *batchConn) writeOut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.pending) > 0 && c.err == nil {
		out := c.pending
		c.pending, c.spare = c.spare, nil
		c.mu.Unlock()
		_, err := c.Conn.Write(out)
		c.mu.Lock()
		c.spare = out[:0]
		if err != nil {
			c.err = err
		}
		c.drained.Broadcast()
	}
	c.bufs.put(c.spare)
	if c.pending != nil {
		c.bufs.put(c.pending) // empty, or unsent after an error
	}
	c.pending, c.spare = nil, nil
	c.writing = false
	c.drained.Broadcast()
}

// writeBuffers are the batch buffers of a TLSServer's h2 connections,
// shared so that idle connections hold none.
type writeBuffers struct{ pool sync.Pool }

func (b *writeBuffers) get() []byte {
	if p, _ := b.pool.Get().(*[]byte); p != nil {
		return (*p)[:0]
	}
	return make([]byte, 0, 4<<10)
}

// put keeps buf for another connection unless it grew past
// keptWriteBuffer (a burst's buffer is not kept).
func (b *writeBuffers) put(buf []byte) {
	if buf == nil || cap(buf) > keptWriteBuffer {
		return
	}
	buf = buf[:0]
	b.pool.Put(&buf)
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
