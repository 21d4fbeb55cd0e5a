package lb

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLocalErrorsNeverCountAgainstBackends: requests the proxy itself cannot
// send as they came (no Host header, an absolute https URI) are served, and
// never take a backend out. Before, an HTTP/1.0 request without Host made
// fasthttp refuse to write it ("missing required host header"), which was
// counted as the backend's failure: any client could take the default route
// out for fail_timeout.
func TestLocalErrorsNeverCountAgainstBackends(t *testing.T) {
	cases := []struct {
		name     string
		route    Route
		request  string
		wantHost string // "" = the backend's address
	}{
		{"HTTP/1.0 without Host, default route without names", Route{Default: true},
			"GET / HTTP/1.0\r\n\r\n", ""},
		{"HTTP/1.0 without Host, default route with a name", Route{Default: true, Hosts: []string{"app.test"}},
			"GET / HTTP/1.0\r\n\r\n", "app.test"},
		{"absolute https URI", Route{Hosts: []string{"app.test"}},
			"GET https://app.test/x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n", "app.test"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hosts := make(chan string, 8)
			h := func(w http.ResponseWriter, r *http.Request) { hosts <- r.Host }
			a, b := startBackend(t, "a", h), startBackend(t, "b", h)
			r := tc.route
			r.Backends = []Backend{{Addr: a.addr}, {Addr: b.addr}}
			p := startProxy(t, Options{}, []Route{r})
			for i := range 4 {
				resp, _ := rawRequest(t, p.addr, tc.request)
				require.Equal(t, 200, resp.StatusCode, "request %d", i)
				want := tc.wantHost
				if want == "" {
					want = a.addr + " or " + b.addr
					got := <-hosts
					require.True(t, got == a.addr || got == b.addr, "backend saw Host %q, want %s", got, want)
				} else {
					require.Equal(t, want, <-hosts)
				}
			}
			require.Equal(t, int64(2), a.hits.Load(), "both backends stay in the rotation")
			require.Equal(t, int64(2), b.hits.Load())
			for _, st := range p.Status().Routes[0].Backends {
				require.Equal(t, "live", st.State)
				require.Zero(t, st.Failures)
			}
		})
	}
}

// restartable is a real HTTP backend on a fixed loopback address that can be
// stopped and started again, like a container restarted behind a Back.
type restartable struct {
	addr string
	hits atomic.Int64
	srv  *http.Server
}

func startRestartable(t *testing.T) *restartable {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r := &restartable{addr: ln.Addr().String()}
	r.serve(t, ln, "a1")
	return r
}

func (r *restartable) serve(t *testing.T, ln net.Listener, name string) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		r.hits.Add(1)
		time.Sleep(20 * time.Millisecond) // keeps concurrent requests on separate connections
		_, _ = io.WriteString(w, name)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	r.srv = srv
}

// restart closes the server and every connection to it, then serves again
// on the same address.
func (r *restartable) restart(t *testing.T) {
	t.Helper()
	require.NoError(t, r.srv.Close())
	ln, err := net.Listen("tcp", r.addr)
	require.NoError(t, err)
	r.serve(t, ln, "a2")
}

// TestRestartedBackendIsNotMarkedDown: when a backend restarts, the proxy's
// pooled keep-alive connections to it all die while idle. Using one is not
// the backend's failure: the request is sent again on a fresh connection.
// Before, fasthttp's one re-send took the next pooled connection, dead too,
// and the backend was marked down for fail_timeout although it answered.
func TestRestartedBackendIsNotMarkedDown(t *testing.T) {
	for _, pipeline := range []int{0, 1} {
		t.Run(fmt.Sprintf("pipeline=%d", pipeline), func(t *testing.T) {
			a := startRestartable(t)
			b := startBackend(t, "b", nil)
			p := startProxy(t, Options{PipelineBackends: pipeline}, []Route{route("app.test", a.addr, b.addr)})
			var wg sync.WaitGroup
			for range 8 { // several requests at once: several pooled connections to a
				wg.Add(1)
				go func() {
					defer wg.Done()
					require.Equal(t, 200, (<-goGet(p.url, "app.test")).code)
				}()
			}
			wg.Wait()
			require.Positive(t, a.hits.Load())

			a.restart(t)
			a.hits.Store(0)
			cl := newClient()
			got := map[string]int{}
			for range 8 {
				code, body, _ := do(t, cl, "GET", p.url, "app.test", nil)
				require.Equal(t, 200, code)
				got[body]++
			}
			require.Equal(t, map[string]int{"a2": 4, "b": 4}, got, "the restarted backend stays in the rotation")
			st := p.Status().Routes[0].Backends[0]
			require.Equal(t, "live", st.State)
			require.Zero(t, st.Failures)
		})
	}
}

// TestResetOnFreshConnectionTriedOnce: a backend that resets a brand-new
// connection after reading the request gets the request once, then the next
// backend does (NGINX's behaviour). Before, the reset looked like a stale
// pooled connection and fasthttp sent the request to it a second time.
func TestResetOnFreshConnectionTriedOnce(t *testing.T) {
	var accepted atomic.Int64
	bad := rawBackend(t, func(c net.Conn) {
		accepted.Add(1)
		_, _ = http.ReadRequest(bufio.NewReader(c))
		_ = c.(*net.TCPConn).SetLinger(0) // the close sends a reset
	})
	good := startBackend(t, "good", nil)
	p := startProxy(t, Options{}, []Route{route("app.test", bad, good.addr)})
	code, body, _ := do(t, newClient(), "GET", p.url, "app.test", nil)
	require.Equal(t, 200, code)
	require.Equal(t, "good", body)
	require.Equal(t, int64(1), accepted.Load(), "the resetting backend got the request once")
	st := p.Status().Routes[0].Backends[0]
	require.Equal(t, uint64(1), st.Failures)
	require.Equal(t, "down", st.State)
}

// TestHealthTransitionsLoggedOnce: a backend that fails every request in
// flight to it is marked down once, logged once, with the count; a failed
// probe and the recovery are one line each. Before, every failed attempt
// after the first logged "backend marked down" again (370 lines for one
// Back killed under load) and counted another mark-down.
func TestHealthTransitionsLoggedOnce(t *testing.T) {
	release := make(chan struct{})
	var inFlight atomic.Int64
	var broken atomic.Bool
	broken.Store(true)
	a := rawBackend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			if broken.Load() { // hold the request, then reset
				inFlight.Add(1)
				<-release
				_ = c.(*net.TCPConn).SetLinger(0)
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
		}
	})
	b := startBackend(t, "b", nil)
	logs := &lockedBuffer{}
	clock := &fakeClock{}
	p := startProxy(t, Options{Clock: clock, Logger: slog.New(slog.NewTextHandler(logs, nil))},
		[]Route{route("app.test", a, b.addr)})
	count := func(msg string) int { return strings.Count(logs.String(), `msg="`+msg+`"`) }

	var results []<-chan result
	for range 8 {
		results = append(results, goGet(p.url, "app.test"))
	}
	require.Eventually(t, func() bool { return inFlight.Load() == 4 }, 10*time.Second, 5*time.Millisecond,
		"half the requests wait on a")
	close(release) // all four fail at once
	for _, r := range results {
		require.Equal(t, result{200, "b"}, <-r, "retried on b")
	}
	st := p.Status().Routes[0].Backends[0]
	require.Equal(t, uint64(4), st.Failures)
	require.Equal(t, uint64(1), st.MarkDowns, "one transition")
	require.Equal(t, 1, count("backend marked down"))
	require.Contains(t, logs.String(), "failures=1")

	clock.Advance(21 * time.Second) // the probe fails: still down, no warning
	code, body, _ := do(t, newClient(), "GET", p.url, "app.test", nil)
	require.Equal(t, 200, code)
	require.Equal(t, "b", body)
	require.Equal(t, 1, count("backend marked down"))
	require.Equal(t, uint64(2), p.Status().Routes[0].Backends[0].MarkDowns, "taken out again")

	broken.Store(false)
	clock.Advance(21 * time.Second) // the probe succeeds
	got := map[string]int{}
	for range 4 {
		_, body, _ := do(t, newClient(), "GET", p.url, "app.test", nil)
		got[body]++
	}
	require.Equal(t, map[string]int{"a": 2, "b": 2}, got)
	require.Equal(t, 1, count("backend recovered"))
	require.Contains(t, logs.String(), "failures_while_down=5")
}

// TestNoLiveBackendLoggedOncePerOutage: while every backend of a route is
// out, the 502s are counted and the outage is logged once, and once more
// when the route serves again. Before, every such request logged a warning.
func TestNoLiveBackendLoggedOncePerOutage(t *testing.T) {
	dead1, dead2 := deadAddr(t), deadAddr(t)
	logs := &lockedBuffer{}
	clock := &fakeClock{}
	p := startProxy(t, Options{Clock: clock, Logger: slog.New(slog.NewTextHandler(logs, nil))},
		[]Route{route("app.test", dead1, dead2)})
	cl := newClient()
	for range 5 {
		code, _, _ := do(t, cl, "GET", p.url, "app.test", nil)
		require.Equal(t, 502, code)
	}
	require.Equal(t, uint64(4), p.Status().Routes[0].NoLive)
	require.Equal(t, 1, strings.Count(logs.String(), "no live backend"))

	ln, err := net.Listen("tcp", dead1)
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "back") }),
		ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	clock.Advance(21 * time.Second)
	for range 3 {
		code, body, _ := do(t, cl, "GET", p.url, "app.test", nil)
		require.Equal(t, 200, code)
		require.Equal(t, "back", body)
	}
	require.Equal(t, 1, strings.Count(logs.String(), "route has a live backend again"))
	require.Contains(t, logs.String(), "answered_no_live_backend=4")
}
