package lb

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNginxSemanticsPipelined runs the NGINX semantics tests again with
// pipelined backend connections (Options.PipelineBackends), 1 and 2 per
// backend: the retry matrix, the health table, all-down 502, the single
// backend, timeouts.
func TestNginxSemanticsPipelined(t *testing.T) {
	tests := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"RetryMatrix", TestRetryMatrix},
		{"FailOn5xxRetriesOnNextBackend", TestFailOn5xxRetriesOnNextBackend},
		{"AllBackendsDown502", TestAllBackendsDown502},
		{"SingleBackendIsNeverMarkedDown", TestSingleBackendIsNeverMarkedDown},
		{"PassiveHealthOnFakeClock", TestPassiveHealthOnFakeClock},
		{"MaxFailsZeroNeverMarksDown", TestMaxFailsZeroNeverMarksDown},
		{"ManyBackendsEachTriedOnce", TestManyBackendsEachTriedOnce},
		{"RoundRobinByWeight", TestRoundRobinByWeight},
		{"HostRouting", TestHostRouting},
		{"ConnectTimeout", TestConnectTimeout},
		{"RemovedBackendFinishesInFlight", TestRemovedBackendFinishesInFlight},
		{"HTTP10ClientIsServed", TestHTTP10ClientIsServed},
		{"RequestHeadersForwarded", TestRequestHeadersForwarded},
		{"ResponseHopByHopRemoved", TestResponseHopByHopRemoved},
		{"BodyLimit", TestBodyLimit},
		{"ExpectContinue", TestExpectContinue},
		{"HotReloadUnderLoadDropsNothing", TestHotReloadUnderLoadDropsNothing},
		{"AdminMetricsAndStatus", TestAdminMetricsAndStatus},
		{"LocalErrorsNeverCountAgainstBackends", TestLocalErrorsNeverCountAgainstBackends},
	}
	for _, conns := range []int{1, 2} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("conns=%d/%s", conns, tc.name), func(t *testing.T) {
				testPipelineConns = conns
				defer func() { testPipelineConns = 0 }()
				tc.fn(t)
			})
		}
	}
}

// TestPipelinedSlowRequestInFront: on one pipelined connection a slow
// request holds the ones queued behind it within the stall time, which
// still complete, in order, over that connection; requests that come later
// take the keep-alive pool and are answered before the slow one.
func TestPipelinedSlowRequestInFront(t *testing.T) {
	tests := []struct {
		name      string
		stall     time.Duration
		wantConns int // connections the backend saw
	}{
		{"queued behind it within the stall time", time.Minute, 1},
		{"later ones go around it", 10 * time.Millisecond, 21},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var conns sync.Map // remote addresses seen
			b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
				conns.Store(r.RemoteAddr, true)
				if r.URL.Path == "/slow" {
					time.Sleep(300 * time.Millisecond)
				}
				_, _ = io.WriteString(w, r.URL.Path)
			})
			p := startProxy(t, Options{PipelineBackends: 1, PipelineStall: tc.stall}, []Route{route("app.test", b.addr)})
			cl := newClient()
			slowDone := make(chan time.Time, 1)
			go func() {
				code, body, _ := do(t, cl, "GET", p.url+"/slow", "app.test", nil)
				require.Equal(t, 200, code)
				require.Equal(t, "/slow", body)
				slowDone <- time.Now()
			}()
			time.Sleep(50 * time.Millisecond) // the slow one is at the head
			var mu sync.Mutex
			var lastFast time.Time
			getPaths(t, cl, p.url, "/fast", 20, func() {
				mu.Lock()
				lastFast = time.Now()
				mu.Unlock()
			})
			slowAt := <-slowDone
			n := countKeys(&conns)
			require.GreaterOrEqual(t, n, min(tc.wantConns, 2), "connections")
			require.LessOrEqual(t, n, tc.wantConns, "connections")
			if tc.wantConns == 1 {
				require.False(t, lastFast.Before(slowAt), "answered in order behind the slow one")
			} else {
				require.True(t, lastFast.Before(slowAt), "answered before the slow one")
			}
			require.Equal(t, int64(21), b.hits.Load())
			st := p.Status().Routes[0].Backends[0]
			require.Equal(t, 1, st.Pipelined)
			require.Equal(t, tc.wantConns > 1, st.Stalled > 0, "stalled: %d", st.Stalled)
		})
	}
}

// TestPipelinedStreamedResponses: bodies larger than pipeInMemory, or of
// unknown length, reach the client as they come, and the connection goes
// on with the next response after them; a body the client stops reading
// costs the connection only when more than pipeDrainMax of it is left.
func TestPipelinedStreamedResponses(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	release := make(chan struct{})
	var conns sync.Map
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		conns.Store(r.RemoteAddr, true)
		switch r.URL.Path {
		case "/big":
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			_, _ = io.WriteString(w, big)
		case "/events": // chunked, the second part only once released
			_, _ = io.WriteString(w, "first\n")
			w.(http.Flusher).Flush()
			<-release
			_, _ = io.WriteString(w, "second\n")
		case "/abandon":
			w.Header().Set("Content-Length", fmt.Sprint(len(big)/8))
			_, _ = io.WriteString(w, big[:len(big)/8])
		default:
			_, _ = io.WriteString(w, r.URL.Path)
		}
	})
	p := startProxy(t, Options{PipelineBackends: 1, PipelineStall: time.Minute}, []Route{route("app.test", b.addr)})
	cl := newClient()

	for range 2 {
		code, body, _ := do(t, cl, "GET", p.url+"/big", "app.test", nil)
		require.Equal(t, 200, code)
		require.Equal(t, big, body)
		code, body, _ = do(t, cl, "GET", p.url+"/after", "app.test", nil)
		require.Equal(t, 200, code)
		require.Equal(t, "/after", body)
	}

	// The first part of a chunked body arrives before the backend ends it.
	req, err := http.NewRequest("GET", p.url+"/events", nil)
	require.NoError(t, err)
	req.Host = "app.test"
	resp, err := cl.Do(req)
	require.NoError(t, err)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "first\n", line)
	close(release)
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Contains(t, string(rest), "second\n")
	require.NoError(t, resp.Body.Close())

	n := countKeys(&conns)
	require.Equal(t, 1, n, "every response on the one pipelined connection")
}

// TestPipelinedAbandonedBody: when the client goes away in the middle of a
// streamed body, the proxy reads a short rest to keep the pipelined
// connection, and closes it when the rest is longer than pipeDrainMax.
func TestPipelinedAbandonedBody(t *testing.T) {
	tests := []struct {
		name      string
		rest      int // body bytes sent after the client went away
		wantConns int
	}{
		{"short rest drained", 64 << 10, 1},
		{"long rest closes", 1 << 20, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gone := make(chan struct{})
			var conns sync.Map
			b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
				conns.Store(r.RemoteAddr, true)
				if r.URL.Path != "/download" {
					_, _ = io.WriteString(w, r.URL.Path)
					return
				}
				w.Header().Set("Content-Length", fmt.Sprint(pipeInMemory+1+tc.rest))
				_, _ = w.Write(make([]byte, pipeInMemory+1))
				w.(http.Flusher).Flush()
				<-gone
				_, _ = w.Write(make([]byte, tc.rest))
			})
			p := startProxy(t, Options{PipelineBackends: 1, PipelineStall: time.Minute}, []Route{route("app.test", b.addr)})

			c, err := net.Dial("tcp", p.addr)
			require.NoError(t, err)
			_, err = io.WriteString(c, "GET /download HTTP/1.1\r\nHost: app.test\r\n\r\n")
			require.NoError(t, err)
			_, err = io.ReadFull(c, make([]byte, pipeInMemory)) // the head and most of the first part
			require.NoError(t, err)
			require.NoError(t, c.(*net.TCPConn).SetLinger(0))
			require.NoError(t, c.Close()) // a reset: the proxy's next write fails
			time.Sleep(50 * time.Millisecond)
			close(gone)

			code, body, _ := do(t, newClient(), "GET", p.url+"/after", "app.test", nil)
			require.Equal(t, 200, code)
			require.Equal(t, "/after", body)
			n := countKeys(&conns)
			require.Equal(t, tc.wantConns, n, "backend connections")
		})
	}
}

// getPaths sends n GETs for prefix0..prefixN-1 to app.test at once, each
// answered 200 with its path, and calls done after each answer.
func getPaths(t *testing.T, cl *http.Client, url, prefix string, n int, done func()) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			path := fmt.Sprintf("%s%d", prefix, i)
			code, body, _ := do(t, cl, "GET", url+path, "app.test", nil)
			require.Equal(t, 200, code)
			require.Equal(t, path, body)
			done()
		})
	}
	wg.Wait()
}

func countKeys(m *sync.Map) (n int) {
	m.Range(func(any, any) bool { n++; return true })
	return n
}

func withHost(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	req.Host = "app.test"
	return req
}

// TestPipelinePerBackend: Backend.Pipeline pipelines to that backend alone,
// without Options.PipelineBackends.
func TestPipelinePerBackend(t *testing.T) {
	var piped, pooled sync.Map
	hold := func(seen *sync.Map) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			seen.Store(r.RemoteAddr, true)
			time.Sleep(20 * time.Millisecond)
		}
	}
	a := startBackend(t, "a", hold(&piped))
	b := startBackend(t, "b", hold(&pooled))
	p := startProxy(t, Options{PipelineStall: time.Minute}, []Route{{Hosts: []string{"app.test"},
		Backends: []Backend{{Addr: a.addr, Pipeline: 1}, {Addr: b.addr}}}})
	cl := newClient()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			code, _, _ := do(t, cl, "GET", p.url, "app.test", nil)
			require.Equal(t, 200, code)
		})
	}
	wg.Wait()
	require.Equal(t, int64(8), a.hits.Load())
	require.Equal(t, 1, countKeys(&piped), "the pipelined backend: one connection")
	require.Greater(t, countKeys(&pooled), 1, "the other: a keep-alive pool")
}

// TestPipelinedConnectionBreak: a backend reads a burst of pipelined
// requests and drops the connection without answering. Every queued request
// fails once (idempotent ones move on to the good backend, POSTs get 502),
// and the backend's health counts the break once.
func TestPipelinedConnectionBreak(t *testing.T) {
	const n = 8
	bad := rawBackend(t, func(c net.Conn) {
		// Read requests until none has come for 200 ms, then close the
		// connection with all of them unanswered.
		br := bufio.NewReader(c)
		for {
			_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
		}
	})
	good := startBackend(t, "good", nil)
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			good.hits.Store(0)
			p := startProxy(t, Options{PipelineBackends: 1, Timeouts: Timeouts{Read: 5 * time.Second}},
				[]Route{{Hosts: []string{"app.test"}, Backends: []Backend{{Addr: bad, MaxFails: 3}, {Addr: good.addr}}}})
			// n requests at once: the ones sent to the bad backend share
			// its single connection.
			rt := p.table.Load().routes[0]
			require.Equal(t, bad, rt.backends[0].spec.Addr)
			cl := newClient()
			codes := make(chan int, n)
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					code, _, _ := do(t, cl, method, p.url, "app.test", strings.NewReader("x"))
					codes <- code
				})
			}
			wg.Wait()
			close(codes)
			ok, bad502 := 0, 0
			for c := range codes {
				switch c {
				case 200:
					ok++
				case 502:
					bad502++
				default:
					t.Fatalf("unexpected status %d", c)
				}
			}
			st := p.Status().Routes[0].Backends[0]
			require.Equal(t, n, ok+bad502, "every request answered once")
			sentToBad := int(st.Requests)
			require.GreaterOrEqual(t, sentToBad, 3, "several requests queued on the broken connection")
			require.Equal(t, uint64(sentToBad), st.Failures, "each failed attempt counted in metrics")
			if method == "GET" {
				require.Equal(t, n, ok, "idempotent requests moved on to the good backend")
				require.Equal(t, int64(n), good.hits.Load())
			} else {
				require.Equal(t, sentToBad, bad502, "a sent POST is never re-sent")
				require.Equal(t, int64(n-sentToBad), good.hits.Load())
			}
			// max_fails=3: a break counts once, so however many requests it
			// failed, one break leaves the backend live.
			require.Equal(t, "live", st.State, "the break counted once, not %d times", sentToBad)
		})
	}
}

// TestPipelinedHeadAndBodies: a HEAD response has no body even though it
// declares a length, so the next response on the connection must still be
// read correctly; small request bodies are pipelined too.
func TestPipelinedHeadAndBodies(t *testing.T) {
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Length", fmt.Sprint(len("got ")+len(body)))
		_, _ = io.WriteString(w, "got "+string(body))
	})
	p := startProxy(t, Options{PipelineBackends: 1}, []Route{route("app.test", b.addr)})
	cl := newClient()
	for i := range 3 {
		code, body, _ := do(t, cl, "HEAD", p.url, "app.test", nil)
		require.Equal(t, 200, code)
		require.Empty(t, body)
		code, body, _ = do(t, cl, "POST", p.url, "app.test", strings.NewReader(fmt.Sprint("n=", i)))
		require.Equal(t, 200, code)
		require.Equal(t, fmt.Sprint("got n=", i), body)
	}
}

// TestPipelinedConnectionCloseResends: a backend that closes after every
// response never reads the requests pipelined behind it; they are sent
// again on a fresh connection, even to a route's only backend, and its
// health counts nothing.
func TestPipelinedConnectionCloseResends(t *testing.T) {
	// A backend that resets the connection instead (Go's server) may lose
	// the response it announced the close with: that is its failure.
	b := startLingeringBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		time.Sleep(5 * time.Millisecond) // let requests queue behind
		_, _ = io.WriteString(w, r.URL.Path)
	})
	p := startProxy(t, Options{PipelineBackends: 1, PipelineStall: time.Minute}, []Route{route("app.test", b.addr)})
	getPaths(t, newClient(), p.url, "/r", 16, func() {})
	st := p.Status().Routes[0].Backends[0]
	require.Zero(t, st.Failures)
	require.Equal(t, "live", st.State)
}

// TestPipelineOnlyWhenBusy: below PipelineBusy requests in flight a
// pipelined backend gets them over the keep-alive pool, as through NGINX,
// so a slow request never holds up the next one at low concurrency; at
// PipelineBusy and above they share the pipelined connection.
func TestPipelineOnlyWhenBusy(t *testing.T) {
	var conns sync.Map
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		conns.Store(r.RemoteAddr, true)
		switch r.URL.Path {
		case "/slow":
			time.Sleep(time.Second)
		case "/held":
			time.Sleep(100 * time.Millisecond)
		}
		_, _ = io.WriteString(w, r.URL.Path)
	})
	p := startProxy(t, Options{PipelineBackends: 1, PipelineStall: time.Minute, PipelineBusy: 4}, []Route{route("app.test", b.addr)})
	cl := newClient()

	slowDone := make(chan struct{})
	go func() {
		defer close(slowDone)
		code, _, _ := do(t, cl, "GET", p.url+"/slow", "app.test", nil)
		require.Equal(t, 200, code)
	}()
	time.Sleep(50 * time.Millisecond)
	for i := range 5 { // one at a time: two in flight at most
		code, body, _ := do(t, cl, "GET", p.url+fmt.Sprintf("/fast%d", i), "app.test", nil)
		require.Equal(t, 200, code)
		require.Equal(t, fmt.Sprintf("/fast%d", i), body)
	}
	select {
	case <-slowDone:
		t.Fatal("the fast requests waited for the slow one")
	default:
	}
	<-slowDone

	// 16 at once: the first three take the pool, the rest one pipelined
	// connection (plus the pool's idle ones, reused).
	before := countKeys(&conns)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			code, _, _ := do(t, cl, "GET", p.url+"/held", "app.test", nil)
			require.Equal(t, 200, code)
		})
	}
	wg.Wait()
	require.LessOrEqual(t, countKeys(&conns)-before, 4, "new backend connections for 16 requests in flight")
	require.Equal(t, 1, p.Status().Routes[0].Backends[0].Pipelined)
}

// TestRetiredPipelinedConnectionFinishesItsRequests: a removed backend's
// drain closes its connections once its requests are answered. A request
// that picked it from the old table just before the reload can still be on
// a pipelined connection when the drain finds none counted in flight;
// closing under it failed a POST with 502 (seen as one request lost in
// HotReloadUnderLoadDropsNothing, conns=2, in CI).
func TestRetiredPipelinedConnectionFinishesItsRequests(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/held" {
			arrived <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "done "+r.URL.Path)
	})
	p := startProxy(t, Options{PipelineBackends: 1}, []Route{route("app.test", b.addr)})
	bs := p.table.Load().routes[0].backends[0]
	require.NotNil(t, bs.pipe)

	type result struct {
		code int
		body string
	}
	got := make(chan result, 1)
	go func() {
		code, body, _ := do(t, newClient(), "POST", p.url+"/held", "app.test", strings.NewReader("x"))
		got <- result{code, body}
	}()
	<-arrived
	bs.closeIdle() // what the drain does once it finds nothing in flight
	close(release)
	require.Equal(t, result{200, "done /held"}, <-got, "answered on the retired connection")

	// Later requests open a fresh connection.
	code, body, _ := do(t, newClient(), "POST", p.url+"/next", "app.test", strings.NewReader("x"))
	require.Equal(t, 200, code)
	require.Equal(t, "done /next", body)
}
