package h2

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"potluck/internal/testenv"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
)

// testServer serves h on a plain TCP listener (clients speak h2 with prior
// knowledge); the listener and the server close with the test, and the
// test fails if goroutines of the server are left.
func testServer(t testing.TB, h fasthttp.RequestHandler, cfg Config) (*Server, string) {
	t.Helper()
	before := runtime.NumGoroutine()
	cfg.Logger = slog.New(slog.DiscardHandler)
	s := New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { _ = s.ServeConn(c, h) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		wg.Wait()
		if _, ok := t.(*testing.T); ok {
			waitGoroutines(t, before)
		}
	})
	return s, ln.Addr().String()
}

// waitGoroutines fails when the goroutines do not come back to n (within
// a few seconds: timers and closing connections end asynchronously).
func waitGoroutines(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n+2 { // +2: the testing framework's own
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func h2cClient(addr string) *http.Client {
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, _ string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// echo answers with what it got: method, URI, Host, a few headers, the
// body's length and checksum, and whether it came over TLS.
func echo(ctx *fasthttp.RequestCtx) {
	var body []byte
	if ctx.Request.IsBodyStream() {
		var err error
		body, err = io.ReadAll(ctx.RequestBodyStream())
		if err != nil {
			ctx.Error(err.Error(), 400)
			return
		}
	} else {
		body = ctx.Request.Body()
	}
	ctx.Response.Header.Set("X-Method", string(ctx.Method()))
	ctx.Response.Header.Set("X-URI", string(ctx.RequestURI()))
	ctx.Response.Header.Set("X-Host", string(ctx.Host()))
	ctx.Response.Header.Set("X-Cookie", string(ctx.Request.Header.Peek("Cookie")))
	ctx.Response.Header.Set("X-Test", string(ctx.Request.Header.Peek("X-Test")))
	ctx.Response.Header.Set("X-TLS", strconv.FormatBool(ctx.IsTLS()))
	ctx.Response.Header.Set("X-Remote", ctx.RemoteAddr().String())
	ctx.Response.Header.Set("Connection", "keep-alive") // hop-by-hop: dropped
	ctx.Response.Header.Set("X-Len", strconv.Itoa(len(body)))
	ctx.SetBodyString(fmt.Sprintf("%s %s %d", ctx.Method(), ctx.RequestURI(), len(body)))
}

// TestGoTransport: Go's HTTP/2 client gets lb-shaped exchanges through:
// methods, URI, Host, cookies joined, bodies both ways (declared,
// unknown length, larger than the windows), streamed responses, HEAD.
func TestGoTransport(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: past every window
	_, addr := testServer(t, func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/big":
			ctx.SetBody(big)
		case "/stream":
			ctx.SetBodyStream(io.MultiReader(bytes.NewReader(big), strings.NewReader("end")), -1)
		case "/stream-sized":
			ctx.SetBodyStream(bytes.NewReader(big), len(big))
		case "/nocontent":
			ctx.SetStatusCode(204)
		default:
			echo(ctx)
		}
	}, Config{})
	c := h2cClient(addr)
	for _, tc := range []struct {
		name, method, path string
		body               io.Reader
		length             int64 // of body; -1 unknown
		header             http.Header
		status             int
		wantBody           string
		wantLen            int
		check              func(t *testing.T, r *http.Response)
	}{
		{name: "get", method: "GET", path: "/a/b?q=1", status: 200, wantBody: "GET /a/b?q=1 0",
			header: http.Header{"X-Test": {"v"}, "Cookie": {"a=1", "b=2"}},
			check: func(t *testing.T, r *http.Response) {
				require.Equal(t, "site.test", r.Header.Get("X-Host"))
				require.Equal(t, "v", r.Header.Get("X-Test"))
				require.Equal(t, "a=1; b=2", r.Header.Get("X-Cookie"))
				require.Equal(t, "false", r.Header.Get("X-TLS"))
				require.Contains(t, r.Header.Get("X-Remote"), "127.0.0.1:")
				require.Empty(t, r.Header.Get("Connection"))
				require.NotEmpty(t, r.Header.Get("Date"))
				require.Equal(t, int64(len("GET /a/b?q=1 0")), r.ContentLength)
			}},
		{name: "post with length", method: "POST", path: "/p", body: bytes.NewReader(big), length: int64(len(big)), status: 200,
			wantBody: fmt.Sprintf("POST /p %d", len(big))},
		{name: "post without length", method: "POST", path: "/p", body: io.MultiReader(bytes.NewReader(big[:100000])), length: -1, status: 200,
			wantBody: "POST /p 100000"},
		{name: "empty post", method: "POST", path: "/p", body: http.NoBody, status: 200, wantBody: "POST /p 0"},
		{name: "big response", method: "GET", path: "/big", status: 200, wantLen: len(big)},
		{name: "streamed response", method: "GET", path: "/stream", status: 200, wantLen: len(big) + 3,
			check: func(t *testing.T, r *http.Response) { require.Equal(t, int64(-1), r.ContentLength) }},
		{name: "streamed sized", method: "GET", path: "/stream-sized", status: 200, wantLen: len(big),
			check: func(t *testing.T, r *http.Response) { require.Equal(t, int64(len(big)), r.ContentLength) }},
		{name: "head", method: "HEAD", path: "/big", status: 200, wantLen: 0,
			check: func(t *testing.T, r *http.Response) { require.Equal(t, int64(len(big)), r.ContentLength) }},
		{name: "204", method: "GET", path: "/nocontent", status: 204, wantLen: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, "http://site.test"+tc.path, tc.body)
			require.NoError(t, err)
			if tc.body != nil {
				req.ContentLength = tc.length
			}
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := c.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tc.status, resp.StatusCode)
			require.Equal(t, "HTTP/2.0", resp.Proto)
			if tc.wantBody != "" {
				require.Equal(t, tc.wantBody, string(got))
			} else {
				require.Len(t, got, tc.wantLen)
			}
			if tc.check != nil {
				tc.check(t, resp)
			}
		})
	}
	t.Run("concurrent streams on one connection", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for i := range 200 {
			wg.Go(func() {
				resp, err := c.Get(fmt.Sprintf("http://site.test/n/%d", i))
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != fmt.Sprintf("GET /n/%d 0", i) {
					errs <- fmt.Errorf("%d: %q %v", i, b, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	})
	c.CloseIdleConnections()
}

// TestCurl: Debian's curl (nghttp2) speaks h2 to the server: a GET, a
// POST with a body, a 1 MiB download.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		testenv.Missing(t, "curl is not installed (scripts/install-deps.sh installs it)")
	}
	big := bytes.Repeat([]byte("x"), 1<<20)
	_, addr := testServer(t, func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/big":
			ctx.SetBody(big)
		case "/refuse": // as lb past its body limit: answered, body unread
			ctx.Error("too large", fasthttp.StatusRequestEntityTooLarge)
		default:
			echo(ctx)
		}
	}, Config{})
	run := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, curl, append([]string{"-sS", "--http2-prior-knowledge", "--max-time", "15"}, args...)...).Output()
		require.NoError(t, err, string(out))
		return string(out)
	}
	require.Equal(t, "GET /x?y=1 0", run("http://"+addr+"/x?y=1"))
	require.Equal(t, "POST /p 5", run("-d", "hello", "http://"+addr+"/p"))
	require.Equal(t, "PUT /e 5", run("-X", "PUT", "-H", "Expect: 100-continue", "--expect100-timeout", "30", "-d", "hello", "http://"+addr+"/e"),
		"100 Continue when the handler reads (else curl would wait 30 s, past --max-time)")
	require.Equal(t, strconv.Itoa(len(big)), run("-o", "/dev/null", "-w", "%{size_download}", "http://"+addr+"/big"))
	// The answer comes before the body is sent: curl gets it whole (a
	// RST_STREAM in the same TLS record as the answer made it drop it).
	upload := filepath.Join(t.TempDir(), "up")
	require.NoError(t, os.WriteFile(upload, big, 0o600))
	require.Equal(t, "413", run("-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@"+upload, "http://"+addr+"/refuse"))
	out := run("-D", "-", "-o", "/dev/null", "http://"+addr+"/h")
	require.Contains(t, out, "HTTP/2 200")
	require.Contains(t, out, "x-method: GET")
}

// TestH2load: nghttp2's load generator completes every request.
func TestH2load(t *testing.T) {
	h2load, err := exec.LookPath("h2load")
	if err != nil {
		testenv.Missing(t, "h2load is not installed (scripts/install-deps.sh installs nghttp2-client)")
	}
	_, addr := testServer(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("Hello from a Potluck app\n") }, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, h2load, "-n", "20000", "-c", "8", "-m", "10", "http://"+addr+"/").CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "20000 succeeded, 0 failed, 0 errored", string(out))
}

// BenchmarkServe is the server's cost per request, with a minimal client
// on the same connection (pre-encoded GETs, 10 streams in flight, frames
// read and dropped): lb's handler is replaced by one answering the
// bench-tls backends' response.
func BenchmarkServe(b *testing.B) {
	_, addr := testServer(b, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Server", "fasthttp")
		ctx.Response.Header.Set("Content-Type", "text/plain")
		ctx.SetBodyString("Hello from a Potluck app\n")
	}, Config{})
	c := dialRaw(b, addr)
	c.fr.SetReuseFrames()
	// The whole connection window at once: the client grants no more.
	require.NoError(b, c.fr.WriteWindowUpdate(0, 1<<31-1-65535))
	blk := c.block(withFields("user-agent", "h2load nghttp2/1.52.0", "accept", "*/*")...)
	ended := make(chan struct{}, 64)
	go func() {
		for {
			f, err := c.fr.ReadFrame()
			if err != nil {
				return
			}
			if d, ok := f.(*http2.DataFrame); ok && d.StreamEnded() {
				ended <- struct{}{}
			}
		}
	}()
	const inFlight = 10
	id := uint32(1)
	send := func() {
		// The same literal block each time: the server's decoder indexes
		// it again, as for a client whose table has moved on.
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk, EndStream: true, EndHeaders: true}); err != nil {
			b.Fatal(err)
		}
		id += 2
	}
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for ; sent < min(inFlight, b.N); sent++ {
		send()
	}
	timeout := time.NewTimer(time.Hour)
	defer timeout.Stop()
	for range b.N {
		timeout.Reset(10 * time.Second)
		select {
		case <-ended:
		case <-timeout.C:
			b.Fatal("no answer in 10 s")
		}
		if sent < b.N {
			send()
			sent++
		}
	}
	b.StopTimer()
	_ = c.nc.SetReadDeadline(time.Now()) // the reading goroutine ends
}
