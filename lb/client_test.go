package lb

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Client timeouts are real socket deadlines, so these tests use short ones
// and assert only what happens (the connection is cut, or not), never how
// fast.

// clientLimits are short client timeouts for the tests; the backend ones
// stay long so that only the client side can time out.
func clientLimits() Options {
	return Options{
		ClientHeaderTimeout: 400 * time.Millisecond,
		ClientBodyTimeout:   400 * time.Millisecond,
		ClientSendTimeout:   400 * time.Millisecond,
		ClientIdleTimeout:   400 * time.Millisecond,
	}
}

// readUntilClosed reads what the proxy sends until it closes the
// connection, giving up after limit (a connection still open then is an
// error: nothing cut it).
func readUntilClosed(t *testing.T, c net.Conn, limit time.Duration) string {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(limit)))
	got, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the proxy did not close the connection within %s (got %q)", limit, got)
	}
	return string(got)
}

// sendRaw opens a connection to addr and writes raw on it; the connection
// is closed when the test ends.
func sendRaw(t *testing.T, addr, raw string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = io.WriteString(c, raw)
	require.NoError(t, err)
	return c
}

// TestClientHeaderTimeoutIsTotal: a client sending its header one line at a
// time, each line well within the timeout, is cut when the whole header
// has taken longer than client_header_timeout. Before, nothing bounded it.
func TestClientHeaderTimeoutIsTotal(t *testing.T) {
	b := startBackend(t, "b", nil)
	p := startProxy(t, clientLimits(), []Route{route("app.test", b.addr)})
	for _, keepAlive := range []bool{false, true} {
		c, err := net.Dial("tcp", p.addr)
		require.NoError(t, err)
		defer c.Close()
		br := bufio.NewReader(c)
		if keepAlive { // the second request's header is timed from its first byte
			_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
			require.NoError(t, err)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.test\r\n")
		require.NoError(t, err)
		cut := false
		for range 40 { // 40 × 100 ms: ten times the header timeout
			time.Sleep(100 * time.Millisecond)
			if _, err := io.WriteString(c, "X-Slow: 1\r\n"); err != nil {
				cut = true
				break
			}
		}
		if !cut {
			require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
			got, _ := io.ReadAll(io.LimitReader(br, 1<<10))
			require.Contains(t, string(got), "408", "the header must have been cut")
			continue
		}
		require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		rest, _ := io.ReadAll(br)
		require.True(t, len(rest) == 0 || strings.HasPrefix(string(rest), "HTTP/1.1 408"), "%q", rest)
	}
}

// TestClientBodyTimeout: a body that stops arriving is cut by
// client_body_timeout (408), one that arrives slowly but steadily is not:
// the timeout is between two reads, not for the whole body. Before, a
// declared body that never came held the connection forever.
func TestClientBodyTimeout(t *testing.T) {
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, strings.Repeat("x", int(n)))
	})
	for _, held := range []bool{true, false} {
		o := clientLimits()
		o.RetryBuffer = 4
		o.StreamRequestBodies = !held
		o.TempDir = t.TempDir()
		p := startProxy(t, o, []Route{route("app.test", b.addr)})

		// Content-Length: 10 and no body.
		c := sendRaw(t, p.addr, "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 10\r\n\r\n")
		require.Contains(t, readUntilClosed(t, c, 10*time.Second), "408 Request Timeout")
		c.Close()

		// Ten bytes, one every 100 ms: a second in all, more than the
		// timeout, but each read within it.
		c = sendRaw(t, p.addr, "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 10\r\n\r\n")
		for range 10 {
			time.Sleep(100 * time.Millisecond)
			_, err := io.WriteString(c, "y")
			require.NoError(t, err)
		}
		require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		require.Equal(t, 200, resp.StatusCode)
		require.Equal(t, "xxxxxxxxxx", string(body))
		c.Close()
	}
}

// TestClientSendTimeout: a client that stops reading a large response is
// disconnected after send_timeout instead of holding the connection (and
// the backend's) forever.
func TestClientSendTimeout(t *testing.T) {
	const size = 64 << 20
	finished := make(chan error, 1)
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "67108864")
		_, err := io.Copy(w, &patternReader{left: size})
		finished <- err
	})
	p := startProxy(t, clientLimits(), []Route{route("app.test", b.addr)})
	c := sendRaw(t, p.addr, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
	// Read nothing: the proxy's writes block, and send_timeout cuts the
	// connection; the backend's copy then fails too.
	select {
	case err := <-finished:
		require.Error(t, err, "the backend's write must fail once the proxy gave up")
	case <-time.After(20 * time.Second):
		t.Fatal("the proxy kept the stalled client connection")
	}
	n, _ := io.Copy(io.Discard, c)
	require.Less(t, n, int64(size))
}

// TestClientIdleTimeout: an idle keep-alive connection is closed after
// keepalive_timeout.
func TestClientIdleTimeout(t *testing.T) {
	b := startBackend(t, "b", nil)
	p := startProxy(t, clientLimits(), []Route{route("app.test", b.addr)})
	c := sendRaw(t, p.addr, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
	got := readUntilClosed(t, c, 10*time.Second)
	require.True(t, strings.HasPrefix(got, "HTTP/1.1 200 OK"), got)
	require.True(t, strings.HasSuffix(got, "\r\n\r\nb"), "one response, then the close: %q", got)
}

// TestMaxClientConns: past the connection limit a new connection gets 503
// and is closed; the others keep working.
func TestMaxClientConns(t *testing.T) {
	b := startBackend(t, "b", nil)
	p := startProxy(t, Options{MaxClientConns: 2}, []Route{route("app.test", b.addr)})
	cl := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 2}}
	for range 4 { // two keep-alive connections stay open
		code, _, _ := do(t, cl, "GET", p.url, "app.test", nil)
		require.Equal(t, 200, code)
	}
	held := []net.Conn{}
	for range 2 {
		c, err := net.Dial("tcp", p.addr)
		require.NoError(t, err)
		defer c.Close()
		held = append(held, c)
	}
	got := readUntilClosed(t, held[1], 10*time.Second)
	require.True(t, strings.HasPrefix(got, "HTTP/1.1 503"), got)
}

// TestDeclaredOversizeIs413AtOnce: a Content-Length over max_body_size is
// answered 413 without waiting for the body, even when the limit is below
// the size fasthttp reads ahead. Before, the proxy waited for the body.
func TestDeclaredOversizeIs413AtOnce(t *testing.T) {
	b := startBackend(t, "b", nil)
	p := startProxy(t, Options{MaxBodySize: 1000}, []Route{route("app.test", b.addr)})
	c := sendRaw(t, p.addr, "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5000\r\n\r\n")
	got := readUntilClosed(t, c, 10*time.Second)
	require.True(t, strings.HasPrefix(got, "HTTP/1.1 413"), got)
	require.Contains(t, got, msgTooLarge)
	require.Zero(t, b.hits.Load())
}

// TestLengthAndChunkedIsRefusedAndClosed: a request with both
// Content-Length and Transfer-Encoding may be a smuggling attempt (RFC 9112
// §6.3): it is answered 400, as NGINX does, and the connection is closed.
// Before, it was forwarded and the connection kept open.
func TestLengthAndChunkedIsRefusedAndClosed(t *testing.T) {
	b := startBackend(t, "b", nil)
	p := startProxy(t, Options{}, []Route{route("app.test", b.addr)})
	c := sendRaw(t, p.addr, "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n")
	got := readUntilClosed(t, c, 10*time.Second)
	require.True(t, strings.HasPrefix(got, "HTTP/1.1 400"), got)
	require.Contains(t, got, "Connection: close")
	require.Equal(t, 1, strings.Count(got, "HTTP/1.1 "), "nothing after the 400")
	require.Zero(t, b.hits.Load())
}
