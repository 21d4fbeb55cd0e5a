package lb

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/valyala/fasthttp"
)

var errBodyTooLarge = errors.New("request body exceeds the limit")

// upBody is how a request's body reaches the backends: in memory (the
// request's own body, or none), held in an unlinked temporary file, or
// streamed from the client as it arrives. Held bodies can be sent to every
// backend tried; a streamed one only until some of it has been sent.
type upBody struct {
	stream *bodyReader // streamed (Options.StreamRequestBodies)
	file   *os.File    // held on disk
	size   int64       // of the held body
}

func (u *upBody) inMemory() bool { return u.stream == nil && u.file == nil }

// rewind makes up send the body from its start again and reports whether
// that is possible.
func (u *upBody) rewind(up *fasthttp.Request) bool {
	switch {
	case u.file != nil:
		up.SetBodyStream(io.NewSectionReader(u.file, 0, u.size), int(u.size))
	case u.stream != nil:
		if u.stream.n > 0 {
			return false
		}
		up.SetBodyStream(u.stream, up.Header.ContentLength())
	}
	return true
}

// sent returns the body bytes sent to the backend by the last attempt.
func (u *upBody) sent(up *fasthttp.Request) int64 {
	switch {
	case u.file != nil:
		return u.size
	case u.stream != nil:
		return u.stream.n
	}
	return int64(max(up.Header.ContentLength(), 0))
}

// bufferBody reads a small streamed body of known length into memory.
func (p *Proxy) bufferBody(req *fasthttp.Request, n int) error {
	bp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bp)
	buf := (*bp)[:n]
	if _, err := io.ReadFull(req.BodyStream(), buf); err != nil {
		return fmt.Errorf("read request body: %w", err)
	}
	req.SetBody(buf) // copies, and releases the stream
	return nil
}

// holdBody reads the whole request body before the first attempt, so that
// every attempt can send it again (NGINX's proxy_request_buffering on): in
// memory when it fits in RetryBuffer, otherwise in a temporary file, which
// is unlinked at once so that its space is freed when the request ends,
// even if the process dies. It returns the file (nil when the body is now
// the request's in-memory body) and the body's size.
func (p *Proxy) holdBody(req *fasthttp.Request) (*os.File, int64, error) {
	in := &bodyReader{r: req.BodyStream(), limit: p.opts.MaxBodySize}
	bp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bp)
	buf := (*bp)[:cap(*bp)]
	n, err := io.ReadFull(in, buf)
	if in.clientErr != nil {
		return nil, 0, in.clientErr
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		req.SetBody(buf[:n]) // copies; sent with Content-Length
		return nil, int64(n), nil
	}
	if err != nil {
		return nil, 0, err
	}
	f, err := os.CreateTemp(p.opts.TempDir, "potluck-body-*")
	if err != nil {
		return nil, 0, &holdError{fmt.Errorf("create a temporary file for a request body: %w", err)}
	}
	_ = os.Remove(f.Name())
	// writerOnly hides File.ReadFrom, which would allocate its own buffer.
	_, err = f.Write(buf[:n])
	var rest int64
	if err == nil {
		rest, err = io.CopyBuffer(writerOnly{f}, in, buf)
	}
	size := int64(n) + rest
	if in.clientErr != nil {
		err = in.clientErr
	} else if err != nil {
		err = &holdError{fmt.Errorf("write a request body to %s: %w", p.opts.TempDir, err)}
	}
	if err != nil {
		_ = f.Close()
		return nil, 0, err
	}
	if p.holdFailing.Load() && p.holdFailing.CompareAndSwap(true, false) {
		p.log.Info("request bodies are held on disk again", "temp_dir", p.opts.TempDir)
	}
	return f, size, nil
}

type writerOnly struct{ io.Writer }

// holdError is a local failure to hold a body (disk full, no temp dir): the
// proxy's fault, answered 500.
type holdError struct{ err error }

func (e *holdError) Error() string { return e.err.Error() }
func (e *holdError) Unwrap() error { return e.err }

// bodyReader passes a client body on, enforcing the size limit and
// remembering client-side errors so they are not blamed on the backend.
type bodyReader struct {
	r         io.Reader
	limit     int64
	n         int64
	clientErr error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.limit >= 0 && b.n > b.limit {
		b.clientErr = errBodyTooLarge
		return n, errBodyTooLarge
	}
	if err != nil && err != io.EOF {
		b.clientErr = err
	}
	return n, err
}

// failBody answers a request whose body could not be read or held.
func (p *Proxy) failBody(ctx *fasthttp.RequestCtx, err error) {
	ctx.SetConnectionClose()
	var he *holdError
	switch {
	case errors.Is(err, errBodyTooLarge):
		p.fail(ctx, fasthttp.StatusRequestEntityTooLarge, msgTooLarge)
	case errors.As(err, &he):
		if p.holdFailing.CompareAndSwap(false, true) {
			p.log.Error("request bodies cannot be held on disk; answering 500 until they can", "err", err)
		}
		p.fail(ctx, fasthttp.StatusInternalServerError, msgHoldFailed)
	case isTimeout(err):
		p.fail(ctx, fasthttp.StatusRequestTimeout, msgBodyTimeout)
	default:
		p.fail(ctx, fasthttp.StatusBadRequest, msgBadBody)
	}
}
