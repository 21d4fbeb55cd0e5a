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
// request holds the ones queued behind it, which still complete, in order,
// over that single connection.
func TestPipelinedSlowRequestInFront(t *testing.T) {
	var conns sync.Map // remote addresses seen
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		conns.Store(r.RemoteAddr, true)
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		_, _ = io.WriteString(w, r.URL.Path)
	})
	p := startProxy(t, Options{PipelineBackends: 1}, []Route{route("app.test", b.addr)})
	cl := newClient()
	done := make(chan struct{})
	go func() {
		defer close(done)
		code, body, _ := do(t, cl, "GET", p.url+"/slow", "app.test", nil)
		require.Equal(t, 200, code)
		require.Equal(t, "/slow", body)
	}()
	time.Sleep(50 * time.Millisecond) // the slow one is at the head
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			path := fmt.Sprintf("/fast%d", i)
			code, body, _ := do(t, cl, "GET", p.url+path, "app.test", nil)
			require.Equal(t, 200, code)
			require.Equal(t, path, body)
		})
	}
	wg.Wait()
	<-done
	n := 0
	conns.Range(func(any, any) bool { n++; return true })
	require.Equal(t, 1, n, "one pipelined connection")
	require.Equal(t, int64(21), b.hits.Load())
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
