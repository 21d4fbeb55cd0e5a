package lb

import (
	"io"
	"sync"

	"github.com/valyala/fasthttp"
)

// relay carries a backend's response to the client. Attempts on the
// keep-alive pool read into relay.resp; the response passed on is moved
// into the client's, with its streamed body read through the relay, which
// keeps resp alive until fasthttp has written the body and closed it.
//
// The relay writes the body with io.WriterTo, so that when the backend's
// body ends short of its declared length (the backend closed or reset the
// connection), what did arrive is flushed to the client before the error
// makes fasthttp close the client connection. NGINX does the same: the
// status and the bytes, then the close. Left to itself fasthttp drops its
// write buffer on that error, and the client gets nothing.
type relay struct {
	resp fasthttp.Response
	pool *sync.Pool
	buf  []byte // copy buffer, kept with the pooled relay
}

func (p *Proxy) acquireRelay() *relay { return p.relays.Get().(*relay) }

// release returns r to the pool. Closing resp's body stream again is a
// no-op when the relay already closed it.
func (r *relay) release() {
	r.resp.Reset()
	r.pool.Put(r)
}

// passOn moves r's response into the client's response. r is released when
// fasthttp closes the body, or at once when there is no body stream.
func (r *relay) passOn(ctx *fasthttp.RequestCtx) {
	dst := &ctx.Response
	r.resp.Header.CopyTo(&dst.Header)
	// CopyTo also copied the backend response's defaults; the proxy never
	// invents a Content-Type. (Date is the proxy's own, as with NGINX,
	// which does not pass the backend's.)
	dst.Header.SetNoDefaultContentType(true)
	if !r.resp.IsBodyStream() {
		// Swap the body buffers rather than copy: dst takes r's, and r
		// takes dst's (empty) one back to the pool.
		dst.SwapBody(r.resp.SwapBody(dst.SwapBody(nil)))
		r.release()
		return
	}
	dst.SetBodyStream(r, r.resp.Header.ContentLength())
}

func (r *relay) Read(b []byte) (int, error) { return r.resp.BodyStream().Read(b) }

// SupportsBodyWriteTo makes fasthttp write the body with WriteTo.
func (r *relay) SupportsBodyWriteTo() bool { return true }

// WriteTo copies the body to w, fasthttp's buffered writer to the client,
// and flushes what it holds if the backend's body breaks.
func (r *relay) WriteTo(w io.Writer) (int64, error) {
	if r.buf == nil {
		r.buf = make([]byte, 16<<10)
	}
	// Not io.Copy: bufio.Writer.ReadFrom would hand the stream to the
	// connection's ReadFrom, which allocates a buffer per response.
	src := r.resp.BodyStream()
	var n int64
	for {
		nr, rerr := src.Read(r.buf)
		if nr > 0 {
			nw, werr := w.Write(r.buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			if f, ok := w.(interface{ Flush() error }); ok {
				_ = f.Flush()
			}
			return n, rerr
		}
	}
}

// CloseWithError is called by fasthttp once the body is written (err nil)
// or failed; the backend connection is reused only after a complete body.
func (r *relay) CloseWithError(err error) error {
	var cerr error
	if c, ok := r.resp.BodyStream().(fasthttp.ReadCloserWithError); ok {
		cerr = c.CloseWithError(err)
	}
	r.release()
	return cerr
}
