package gateway

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Pipelined requests reach the container concurrently, each on a
// keep-alive connection of its own, and are answered in request order.
func TestPipelinedRequestsAnsweredInOrder(t *testing.T) {
	var now, most atomic.Int32
	app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := now.Add(1)
		defer now.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		// Later requests answer sooner: the order comes from the gateway.
		i, _ := strconv.Atoi(r.URL.Query().Get("i"))
		time.Sleep(time.Duration(20-i) * time.Millisecond)
		fmt.Fprintf(w, "answer %d", i)
	}))
	g := newGateway(Config{})
	c, br := dialT(t, serveGateway(t, g, app))
	for round := range 2 {
		var burst strings.Builder
		for i := range 20 {
			fmt.Fprintf(&burst, "GET /?i=%d HTTP/1.1\r\nHost: app\r\n\r\n", i)
		}
		_, err := io.WriteString(c, burst.String())
		require.NoError(t, err)
		for i := range 20 {
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err, "round %d response %d", round, i)
			require.Equal(t, fmt.Sprintf("answer %d", i), readBody(t, resp))
		}
	}
	require.Greater(t, most.Load(), int32(1), "requests were sent to the container one at a time")
	st := g.Stats()
	require.Equal(t, uint64(40), st.Requests)
	require.Eventually(t, func() bool { return g.Stats().InFlight == 0 }, 5*time.Second, 10*time.Millisecond)
}

// Messages pass through as received: header names keep their case, and
// every framing (length, chunked with trailers, none, until close) ends
// where it should.
func TestMessagesPassAsReceived(t *testing.T) {
	tests := []struct {
		name      string
		req       string
		resp      string // what the container sends
		want      string // what the Front receives
		wantClose bool   // the gateway closes the tunnel connection after it
	}{
		{
			name: "header case and order kept",
			req:  "GET / HTTP/1.1\r\nhost: a\r\nX-lower-Case: v\r\n\r\n",
			resp: "HTTP/1.1 200 OK\r\nx-odd-CASE: 1\r\nContent-Length: 2\r\n\r\nhi",
			want: "HTTP/1.1 200 OK\r\nx-odd-CASE: 1\r\nContent-Length: 2\r\n\r\nhi",
		},
		{
			name: "chunked with extensions and trailers",
			req:  "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Sum: 9\r\n\r\n",
			want: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Sum: 9\r\n\r\n",
		},
		{
			name: "HEAD: no body despite Content-Length",
			req:  "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
			resp: "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
			want: "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
		},
		{
			name: "204 and 304 have no body",
			req:  "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			resp: "HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
			want: "HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
		},
		{
			name:      "a body until close ends the tunnel connection",
			req:       "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			resp:      "HTTP/1.1 200 OK\r\nX: y\r\n\r\nall of it",
			want:      "HTTP/1.1 200 OK\r\nX: y\r\n\r\nall of it",
			wantClose: true,
		},
		{
			name: "the container's Connection: close is its own connection's",
			req:  "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			resp: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
			want: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		},
		{
			name:      "the Front's Connection: close is honoured",
			req:       "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			resp:      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
			want:      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
			wantClose: true,
		},
		{
			name: "interim 103 passed on before the final response",
			req:  "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			resp: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
			want: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotReq := make(chan string, 1)
			app := serveRaw(t, func(c net.Conn, br *bufio.Reader) {
				head, err := readHead(br, 1<<16, nil)
				if err != nil {
					return
				}
				gotReq <- string(head)
				io.WriteString(c, tt.resp)
				if strings.Contains(tt.name, "until close") {
					return // closes
				}
				io.Copy(io.Discard, br)
			})
			c, br := dialT(t, serveGateway(t, newGateway(Config{}), app))
			_, err := io.WriteString(c, tt.req)
			require.NoError(t, err)
			require.Equal(t, tt.req, <-gotReq, "the request reached the container as sent")
			got := make([]byte, len(tt.want))
			_, err = io.ReadFull(br, got)
			require.NoError(t, err)
			require.Equal(t, tt.want, string(got))
			if tt.wantClose {
				_, err := br.ReadByte()
				require.ErrorIs(t, err, io.EOF)
				return
			}
			// The connection goes on.
			_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			_, err = br.ReadByte()
			var ne net.Error
			require.True(t, errors.As(err, &ne) && ne.Timeout(), "nothing more, and not closed: %v", err)
		})
	}
}

// Large bodies are streamed both ways with bounded memory.
func TestLargeBodiesStream(t *testing.T) {
	const size = 64 << 20
	app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		buf := make([]byte, 1<<20)
		for range size / len(buf) {
			w.Write(buf)
		}
	}))
	addr := serveGateway(t, newGateway(Config{}), app)
	zero := sha256.Sum256(make([]byte, size))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	c, br := dialT(t, addr)
	go func() {
		fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", size)
		buf := make([]byte, 1<<20)
		for range size / len(buf) {
			c.Write(buf)
		}
		io.WriteString(c, "GET /download HTTP/1.1\r\nHost: a\r\n\r\n")
	}()
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("%d %x", size, zero), readBody(t, resp))
	resp, err = http.ReadResponse(br, nil)
	require.NoError(t, err)
	n, err := io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	require.Equal(t, int64(size), n)

	runtime.ReadMemStats(&after)
	// The two 1 MiB buffers above and the servers' own: far from 64 MiB.
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(24<<20), "bodies were held, not streamed")
}

// A chunked request body is streamed as received.
func TestChunkedRequestBody(t *testing.T) {
	app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s|%v", b, r.TransferEncoding)
	}))
	c, br := dialT(t, serveGateway(t, newGateway(Config{}), app))
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, "hello world|[chunked]", readBody(t, resp))
	resp, err = http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, "|[]", readBody(t, resp))
}

// Expect: 100-continue: the container's 100 reaches the Front, which only
// then sends the body.
func TestExpectContinue(t *testing.T) {
	app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %s", b)
	}))
	c, br := dialT(t, serveGateway(t, newGateway(Config{}), app))
	io.WriteString(c, "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 100 Continue\r\n", line)
	_, err = br.ReadString('\n')
	require.NoError(t, err)
	io.WriteString(c, "hello")
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, "got hello", readBody(t, resp))
}

// An Upgrade request waits for the responses before it and then turns the
// connection into a raw relay to a new connection to the container.
func TestUpgradeRelaysRaw(t *testing.T) {
	app := serveRaw(t, func(c net.Conn, br *bufio.Reader) {
		for {
			head, err := readHead(br, 1<<16, nil)
			if err != nil {
				return
			}
			if !strings.Contains(string(head), "Upgrade: echo") {
				time.Sleep(20 * time.Millisecond) // answered after the upgrade was read
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
				continue
			}
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			io.Copy(c, br) // echo
			return
		}
	})
	g := newGateway(Config{})
	c, br := dialT(t, serveGateway(t, g, app))
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nraw bytes ")
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, "first", readBody(t, resp))
	resp, err = http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, 101, resp.StatusCode)
	io.WriteString(c, "and more")
	got := make([]byte, len("raw bytes and more"))
	_, err = io.ReadFull(br, got)
	require.NoError(t, err)
	require.Equal(t, "raw bytes and more", string(got))
	require.Equal(t, uint64(1), g.Stats().Upgrades)
}

// A container that refuses the connection, or drops it before answering,
// makes the gateway close the tunnel connection after the earlier
// responses: the Front sees what the raw relay showed it, an error before
// any response.
func TestContainerFailureClosesAfterEarlierResponses(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		g := newGateway(Config{})
		c, br := dialT(t, serveGateway(t, g, closedPort(t)))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		_, err := br.ReadByte()
		require.ErrorIs(t, err, io.EOF)
		require.Equal(t, uint64(1), g.Stats().Failed)
	})
	t.Run("dropped mid-pipeline", func(t *testing.T) {
		app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/die" {
				time.Sleep(20 * time.Millisecond)
				c, _, _ := w.(http.Hijacker).Hijack()
				c.Close()
				return
			}
			io.WriteString(w, r.URL.Path)
		}))
		g := newGateway(Config{})
		c, br := dialT(t, serveGateway(t, g, app))
		io.WriteString(c, "GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /die HTTP/1.1\r\nHost: a\r\n\r\nGET /three HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		require.Equal(t, "/one", readBody(t, resp))
		_, err = br.ReadByte()
		require.ErrorIs(t, err, io.EOF, "closed where /die's response would be")
		require.Eventually(t, func() bool { return g.Stats().InFlight == 0 }, 5*time.Second, 10*time.Millisecond)
	})
	t.Run("cut mid-body", func(t *testing.T) {
		app := serveRaw(t, func(c net.Conn, br *bufio.Reader) {
			readHead(br, 1<<16, nil)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
		})
		c, br := dialT(t, serveGateway(t, newGateway(Config{}), app))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		_, err := io.ReadAll(br)
		require.NoError(t, err) // EOF: the Front sees 9 of 100 bytes, a broken response
	})
}

// A pooled connection the container closed while idle is replaced: the
// request is sent again on a new one.
func TestClosedPooledConnectionResent(t *testing.T) {
	var conns atomic.Int32
	app := serveRaw(t, func(c net.Conn, br *bufio.Reader) {
		conns.Add(1)
		if _, err := readHead(br, 1<<16, nil); err != nil {
			return
		}
		// Keep-alive in words, then closed: as a server whose idle
		// timeout passed.
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		time.Sleep(10 * time.Millisecond)
	})
	c, br := dialT(t, serveGateway(t, newGateway(Config{}), app))
	for i := range 3 {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err, "request %d", i)
		require.Equal(t, "ok", readBody(t, resp))
		time.Sleep(50 * time.Millisecond) // the container closes meanwhile
	}
	require.Equal(t, int32(3), conns.Load())
}

// Malformed requests get 400 (or 431) and the connection closes; nothing
// panics and nothing reaches the container.
func TestMalformedRequests(t *testing.T) {
	var reached atomic.Int32
	app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	tests := []struct {
		name, req, status string
	}{
		{"no version", "GET /\r\n\r\n", "400"},
		{"bad version", "GET / HTTP/2.0\r\n\r\n", "400"},
		{"space in name", "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", "400"},
		{"folded line", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", "400"},
		{"length and chunked", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "400"},
		{"two lengths", "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", "400"},
		{"negative length", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "400"},
		{"huge length", "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", "400"},
		{"gzip last", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "400"},
		{"no colon", "GET / HTTP/1.1\r\nNoColon\r\n\r\n", "400"},
		{"binary", "\x00\x01\x02 \xff\xfe HTTP/1.1\r\n\r\n", "400"},
		{"head too large", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", "431"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, br := dialT(t, serveGateway(t, newGateway(Config{}), app))
			go io.WriteString(c, tt.req)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			require.Equal(t, tt.status, strconv.Itoa(resp.StatusCode))
			readBody(t, resp)
			_, err = br.ReadByte()
			require.ErrorIs(t, err, io.EOF)
		})
	}
	require.Zero(t, reached.Load())
}

// A connection that sends nothing is closed after IdleTimeout, one that
// stops mid-head after HeaderTimeout with 408.
func TestClientTimeouts(t *testing.T) {
	app := serveHTTP(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	g := newGateway(Config{IdleTimeout: 100 * time.Millisecond, HeaderTimeout: 100 * time.Millisecond})
	addr := serveGateway(t, g, app)

	_, br := dialT(t, addr)
	_, err := br.ReadByte()
	require.ErrorIs(t, err, io.EOF)

	c, br := dialT(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost")
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, 408, resp.StatusCode)
}

// Many connections at once, each pipelining: every answer comes back to
// its own connection in order (run with -race).
func TestConcurrentConnections(t *testing.T) {
	app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.RawQuery)
	}))
	g := newGateway(Config{MaxConns: 8, MaxInFlight: 4})
	addr := serveGateway(t, g, app)
	var wg sync.WaitGroup
	for n := range 8 {
		wg.Go(func() {
			c, br := dialT(t, addr)
			go func() {
				for i := range 50 {
					fmt.Fprintf(c, "GET /?%d-%d HTTP/1.1\r\nHost: a\r\n\r\n", n, i)
				}
			}()
			expectAnswers(t, br, n, 50)
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool { return g.Stats().InFlight == 0 }, 5*time.Second, 10*time.Millisecond)
}

// expectAnswers reads count answers from br, in order, each the query of
// its request "n-i" (t.Error, not require: it runs off the test goroutine).
func expectAnswers(t *testing.T, br *bufio.Reader, n, count int) {
	for i := range count {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Error(err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != fmt.Sprintf("%d-%d", n, i) {
			t.Errorf("conn %d answer %d: %q", n, i, b)
			return
		}
	}
}

// More requests than MaxConns at once wait for a connection to the
// container, never exceed it, and all complete.
func TestPoolLimitWaits(t *testing.T) {
	var now, most atomic.Int32
	app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := now.Add(1)
		defer now.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(2 * time.Millisecond)
		io.WriteString(w, r.URL.RawQuery)
	}))
	g := newGateway(Config{MaxConns: 2, MaxIdle: 1})
	addr := serveGateway(t, g, app)
	var wg sync.WaitGroup
	for n := range 6 {
		wg.Go(func() {
			c, br := dialT(t, addr)
			var burst strings.Builder
			for i := range 20 {
				fmt.Fprintf(&burst, "GET /?%d-%d HTTP/1.1\r\nHost: a\r\n\r\n", n, i)
			}
			io.WriteString(c, burst.String())
			expectAnswers(t, br, n, 20)
		})
	}
	wg.Wait()
	require.LessOrEqual(t, most.Load(), int32(2), "more connections to the container than MaxConns")
}

// A container that keeps refusing is logged once, and its recovery once,
// not every request.
func TestFailureLoggedOnce(t *testing.T) {
	var mu sync.Mutex
	var logged []string
	g := New(Config{Logger: slog.New(recordHandler{func(r slog.Record) {
		mu.Lock()
		logged = append(logged, r.Level.String())
		mu.Unlock()
	}})})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	target := ln.Addr().String()
	ln.Close() // refused for now
	addr := serveGateway(t, g, target)
	get := func() (int, error) {
		c, br := dialT(t, addr)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return 0, err
		}
		return resp.StatusCode, nil
	}
	for range 5 {
		_, err := get()
		require.Error(t, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	ln, err = net.Listen("tcp", target)
	require.NoError(t, err)
	go srv.Serve(ln)
	defer srv.Close()
	for range 5 {
		code, err := get()
		require.NoError(t, err)
		require.Equal(t, 200, code)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"WARN", "INFO"}, logged)
	require.Equal(t, uint64(5), g.Stats().Failed)
}

type recordHandler struct{ f func(slog.Record) }

func (h recordHandler) Enabled(context.Context, slog.Level) bool      { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error { h.f(r); return nil }
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h recordHandler) WithGroup(string) slog.Handler                 { return h }

// A response the container writes in parts over time (server-sent events,
// a long poll's progress) reaches the Front part by part, not when it ends.
func TestStreamedResponseFlowsAsWritten(t *testing.T) {
	second := make(chan struct{})
	target := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-second:
		case <-time.After(10 * time.Second):
		}
		_, _ = io.WriteString(w, "data: two\n\n")
	}))
	addr := serveGateway(t, newGateway(Config{}), target)
	c, br := dialT(t, addr)
	_, err := io.WriteString(c, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	require.NoError(t, err, "the first event arrives while the response is still open")
	require.Equal(t, "data: one\n", line)
	close(second)
}
