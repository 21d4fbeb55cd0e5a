package lb

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeClock is the only fake in these tests: it drives fail_timeout.
type fakeClock struct{ now atomic.Int64 }

func (c *fakeClock) Now() time.Duration      { return time.Duration(c.now.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.now.Add(int64(d)) }

// testBackend is a real HTTP server on 127.0.0.1 that names itself in replies.
type testBackend struct {
	addr string
	hits atomic.Int64
	srv  *http.Server
	ln   net.Listener
}

func startBackend(t *testing.T, name string, h http.HandlerFunc) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return serveBackend(t, ln, name, h)
}

// startLingeringBackend is startBackend for a server that closes its
// connections as NGINX does (lingering close): it stops sending, reads
// what the client still sends, and closes once the client has. Go's
// server closes at once, and a close with unread pipelined requests
// resets the connection, which may destroy the response just written.
func startLingeringBackend(t *testing.T, name string, h http.HandlerFunc) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return serveBackend(t, lingeringListener{ln}, name, h)
}

type lingeringListener struct{ net.Listener }

func (l lingeringListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return lingeringConn{c.(*net.TCPConn)}, nil
}

type lingeringConn struct{ *net.TCPConn }

func (c lingeringConn) Close() error {
	_ = c.CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, c.TCPConn)
	return c.TCPConn.Close()
}

func serveBackend(t *testing.T, ln net.Listener, name string, h http.HandlerFunc) *testBackend {
	t.Helper()
	b := &testBackend{addr: ln.Addr().String(), ln: ln}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, name) }
	}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("X-Backend", name)
		h(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	t.Cleanup(func() { _ = b.srv.Close() })
	return b
}

// deadAddr returns a loopback address where nothing listens (connect refused).
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// rawBackend accepts connections and hands each to fn (for broken servers).
func rawBackend(t *testing.T, fn func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); fn(c) }()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return ln.Addr().String()
}

type testProxy struct {
	*Proxy
	addr string
	url  string
}

// testPipelineConns, when > 0, turns Options.PipelineBackends on in every
// proxy startProxy makes that does not set it (see TestNginxSemanticsPipelined).
var testPipelineConns int

func startProxy(t *testing.T, o Options, routes []Route) *testProxy {
	t.Helper()
	if o.PipelineBackends == 0 {
		o.PipelineBackends = testPipelineConns
	}
	if o.PipelineBusy == 0 {
		o.PipelineBusy = 1 // tests of pipelining pipeline every request; TestPipelineOnlyWhenBusy sets it
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	p := New(o)
	require.NoError(t, p.Update(routes))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = p.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return &testProxy{Proxy: p, addr: ln.Addr().String(), url: "http://" + ln.Addr().String()}
}

func newClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

// do sends method to the proxy with a Host header and returns status, body and backend name.
func do(t *testing.T, c *http.Client, method, url, host string, body io.Reader) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	req.Host = host
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header.Get("X-Backend")
}

// result is what an asynchronous GET got: status and body, or 0 and the error.
type result struct {
	code int
	body string
}

// goGet sends a GET with a Host header from a goroutine; the result arrives
// on the channel.
func goGet(url, host string) <-chan result {
	res := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		resp, err := newClient().Do(req)
		if err != nil {
			res <- result{0, err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{resp.StatusCode, string(b)}
	}()
	return res
}

func route(host string, addrs ...string) Route {
	r := Route{Hosts: []string{host}}
	for _, a := range addrs {
		r.Backends = append(r.Backends, Backend{Addr: a})
	}
	return r
}
