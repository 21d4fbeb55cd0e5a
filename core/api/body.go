package api

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// DefaultBodyIdleTimeout is how long a request body may go without
// delivering a byte (NGINX's client_body_timeout, between two reads).
const DefaultBodyIdleTimeout = 30 * time.Second

// GuardBody bounds the time a request body may take: every read of it must
// deliver something within idle of the previous one (the connection's
// read deadline moves forward as bytes arrive, so a large upload at a
// steady pace is never cut). A response written before the body was read
// to its end closes the connection: otherwise net/http would first wait
// to drain the unread body, and a client that announced a body it never
// sends would hold the connection, unanswered, for ever.
func GuardBody(next http.Handler, idle time.Duration) http.Handler {
	if idle <= 0 {
		idle = DefaultBodyIdleTimeout
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(idle)); err != nil {
			next.ServeHTTP(w, r) // not a real connection (in-process calls)
			return
		}
		body := &deadlineBody{ReadCloser: r.Body, rc: rc, idle: idle}
		r.Body = body
		cw := &closeUnread{ResponseWriter: w, body: body}
		next.ServeHTTP(cw, r)
		if cw.started && !body.finished() {
			linger(body, rc)
		}
	})
}

// Lingering close, as NGINX does it: a client still sending a body the
// answer refused (413, 401) would get a reset instead of that answer if the
// connection closed with its bytes unread. So up to lingerBytes more are
// read and dropped, for at most lingerTime, before the close.
const (
	lingerBytes = 8 << 20
	lingerTime  = 2 * time.Second
)

func linger(body *deadlineBody, rc *http.ResponseController) {
	_ = rc.Flush() // the answer goes out before the wait
	_ = rc.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.Copy(io.Discard, io.LimitReader(body.ReadCloser, lingerBytes))
}

// deadlineBody moves the read deadline forward after each read, and clears
// it at the end of the body (the server then watches the connection for
// the client going away, which a deadline would cut short).
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration

	mu   sync.Mutex
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case errors.Is(err, io.EOF):
		b.mu.Lock()
		b.done = true
		b.mu.Unlock()
		_ = b.rc.SetReadDeadline(time.Time{})
	case n > 0 && err == nil:
		_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	}
	return n, err
}

func (b *deadlineBody) finished() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done
}

// closeUnread adds Connection: close to a response that starts before the
// request body was read to its end.
type closeUnread struct {
	http.ResponseWriter
	body    *deadlineBody
	started bool
}

func (c *closeUnread) WriteHeader(code int) {
	if !c.started {
		c.started = true
		if !c.body.finished() {
			c.Header().Set("Connection", "close")
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *closeUnread) Write(p []byte) (int, error) {
	if !c.started {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(p)
}

func (c *closeUnread) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (c *closeUnread) Unwrap() http.ResponseWriter { return c.ResponseWriter }
