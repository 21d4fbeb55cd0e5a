package lb

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSmoothWeightedRoundRobinMatchesNginx(t *testing.T) {
	cases := []struct {
		weights []int
		want    []uint16
	}{
		{[]int{1, 1, 1}, []uint16{0, 1, 2}},
		{[]int{5, 1, 1}, []uint16{0, 0, 1, 0, 2, 0, 0}}, // nginx's documented a a b a c a a
		{[]int{2, 1}, []uint16{0, 1, 0}},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, smoothWRR(tc.weights), "weights %v", tc.weights)
	}
}

func TestRoundRobinByWeight(t *testing.T) {
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	c := startBackend(t, "c", nil)
	p := startProxy(t, Options{}, []Route{{Hosts: []string{"app.test"}, Backends: []Backend{
		{Addr: a.addr, Weight: 2}, {Addr: b.addr}, {Addr: c.addr},
	}}})
	cl := newClient()
	got := map[string]int{}
	for range 40 {
		code, body, _ := do(t, cl, "GET", p.url, "app.test", nil)
		require.Equal(t, 200, code)
		got[body]++
	}
	require.Equal(t, map[string]int{"a": 20, "b": 10, "c": 10}, got)
}

func TestHostRouting(t *testing.T) {
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	d := startBackend(t, "d", nil)
	withDefault := startProxy(t, Options{}, []Route{
		route("a.test", a.addr), route("b.test", b.addr),
		{Default: true, Backends: []Backend{{Addr: d.addr}}},
	})
	noDefault := startProxy(t, Options{}, []Route{route("a.test", a.addr)})
	cl := newClient()
	cases := []struct {
		proxy    *testProxy
		host     string
		wantCode int
		wantBody string
	}{
		{withDefault, "a.test", 200, "a"},
		{withDefault, "A.Test:8080", 200, "a"},
		{withDefault, "b.test", 200, "b"},
		{withDefault, "other.test", 200, "d"},
		{noDefault, "a.test", 200, "a"},
		{noDefault, "other.test", 404, msgNoRoute},
	}
	for _, tc := range cases {
		code, body, _ := do(t, cl, "GET", tc.proxy.url, tc.host, nil)
		require.Equal(t, tc.wantCode, code, tc.host)
		require.Equal(t, tc.wantBody, body, tc.host)
	}
}

// Failure kinds, each a real broken server on loopback.
func brokenBackend(t *testing.T, kind string) string {
	switch kind {
	case "connect refused":
		return deadAddr(t)
	case "closed before header":
		return rawBackend(t, func(c net.Conn) { _, _ = c.Read(make([]byte, 4096)) })
	case "invalid header":
		return rawBackend(t, func(c net.Conn) {
			_, _ = c.Read(make([]byte, 4096))
			_, _ = io.WriteString(c, "this is not http\r\n\r\n")
		})
	case "read timeout":
		return rawBackend(t, func(c net.Conn) {
			_, _ = c.Read(make([]byte, 4096))
			time.Sleep(time.Second)
		})
	case "503":
		return startBackend(t, "broken", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(503)
			_, _ = io.WriteString(w, "backend says 503")
		}).addr
	}
	t.Fatalf("unknown kind %q", kind)
	return ""
}

func TestRetryMatrix(t *testing.T) {
	type want struct {
		code     int
		retried  bool // the good backend answered
		failures uint64
	}
	retried := want{200, true, 1}
	kinds := []struct {
		kind       string
		idempotent want // GET, HEAD-less PUT, DELETE
		nonIdem    want // POST, PATCH, LOCK
	}{
		{"connect refused", retried, retried},
		{"closed before header", retried, want{502, false, 1}},
		{"invalid header", retried, want{502, false, 1}},
		{"read timeout", retried, want{504, false, 1}},
		{"503", want{503, false, 0}, want{503, false, 0}}, // a backend's 5xx is passed through
	}
	methods := []struct {
		name    string
		nonIdem bool
	}{{"GET", false}, {"PUT", false}, {"DELETE", false}, {"POST", true}, {"PATCH", true}, {"LOCK", true}}
	for _, k := range kinds {
		for _, m := range methods {
			t.Run(k.kind+"/"+m.name, func(t *testing.T) {
				bad := brokenBackend(t, k.kind)
				good := startBackend(t, "good", nil)
				// Short only where a timeout is the point: a loaded CI machine
				// must not turn a slow answer into a 504 elsewhere.
				readTimeout := 10 * time.Second
				if k.kind == "read timeout" {
					readTimeout = 300 * time.Millisecond
				}
				p := startProxy(t, Options{Timeouts: Timeouts{Read: readTimeout}},
					[]Route{route("app.test", bad, good.addr)})
				w := k.idempotent
				if m.nonIdem {
					w = k.nonIdem
				}
				code, _, _ := do(t, newClient(), m.name, p.url, "app.test", strings.NewReader("payload"))
				require.Equal(t, w.code, code)
				require.Equal(t, w.retried, good.hits.Load() == 1, "good backend reached")
				st := p.Status().Routes[0].Backends[0]
				require.Equal(t, w.failures, st.Failures)
				if w.failures > 0 {
					require.Equal(t, "down", st.State)
				}
			})
		}
	}
}

func TestFailOn5xxRetriesOnNextBackend(t *testing.T) {
	bad := brokenBackend(t, "503")
	good := startBackend(t, "good", nil)
	p := startProxy(t, Options{FailOn: FailOn5xx}, []Route{route("app.test", bad, good.addr)})
	code, body, _ := do(t, newClient(), "GET", p.url, "app.test", nil)
	require.Equal(t, 200, code)
	require.Equal(t, "good", body)
	require.Equal(t, "down", p.Status().Routes[0].Backends[0].State)

	// With every backend answering 503 the last 503 is passed through.
	bad2 := brokenBackend(t, "503")
	p2 := startProxy(t, Options{FailOn: FailOn5xx}, []Route{route("app.test", bad, bad2)})
	code, body, _ = do(t, newClient(), "GET", p2.url, "app.test", nil)
	require.Equal(t, 503, code)
	require.Equal(t, "backend says 503", body)
}

func TestAllBackendsDown502(t *testing.T) {
	p := startProxy(t, Options{}, []Route{route("app.test", deadAddr(t), deadAddr(t))})
	cl := newClient()
	code, body, _ := do(t, cl, "GET", p.url, "app.test", nil)
	require.Equal(t, 502, code)
	require.Equal(t, msgBadGW, body, "both tried and failed")
	code, body, _ = do(t, cl, "GET", p.url, "app.test", nil)
	require.Equal(t, 502, code)
	require.Equal(t, msgNoLive, body, "both are out for fail_timeout")
	require.NotContains(t, body, "127.0.0.1", "no internal details")
	require.Equal(t, uint64(1), p.Status().Routes[0].NoLive)
}

func TestSingleBackendIsNeverMarkedDown(t *testing.T) {
	addr := deadAddr(t)
	clock := &fakeClock{}
	p := startProxy(t, Options{Clock: clock}, []Route{route("app.test", addr)})
	cl := newClient()
	for range 3 {
		code, body, _ := do(t, cl, "GET", p.url, "app.test", nil)
		require.Equal(t, 502, code)
		require.Equal(t, msgBadGW, body, "tried every time, never 'no live backend'")
	}
	require.Equal(t, "live", p.Status().Routes[0].Backends[0].State)
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "back") })}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	code, body, _ := do(t, cl, "GET", p.url, "app.test", nil) // no clock advance needed
	require.Equal(t, 200, code)
	require.Equal(t, "back", body)
}

// TestPassiveHealthOnFakeClock walks NGINX's cycle through the real proxy:
// fail → skipped for fail_timeout → exactly one probe → out again or restored.
func TestPassiveHealthOnFakeClock(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	a := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			w.WriteHeader(503)
			return
		}
		_, _ = io.WriteString(w, "a")
	})
	b := startBackend(t, "b", nil)
	clock := &fakeClock{}
	p := startProxy(t, Options{Clock: clock, FailOn: FailOn5xx},
		[]Route{{Hosts: []string{"app.test"}, Backends: []Backend{{Addr: a.addr, FailTimeout: 20 * time.Second}, {Addr: b.addr}}}})
	cl := newClient()
	get := func() string {
		code, body, _ := do(t, cl, "GET", p.url, "app.test", nil)
		require.Equal(t, 200, code)
		return body
	}
	backendA := func() BackendStatus { return p.Status().Routes[0].Backends[0] }

	require.Equal(t, "b", get(), "a fails, the request moves to b")
	require.Equal(t, int64(1), a.hits.Load())
	require.Equal(t, "down", backendA().State)

	for range 5 { // skipped for fail_timeout
		require.Equal(t, "b", get())
	}
	clock.Advance(20 * time.Second)
	require.Equal(t, "b", get(), "still inside the window at exactly fail_timeout")
	require.Equal(t, int64(1), a.hits.Load())

	clock.Advance(time.Second)
	for range 6 { // exactly one probe, which fails: out again
		require.Equal(t, "b", get())
	}
	require.Equal(t, int64(2), a.hits.Load(), "exactly one probe")
	require.Equal(t, uint64(2), backendA().MarkDowns)

	broken.Store(false)
	clock.Advance(21 * time.Second)
	got := map[string]int{}
	for range 6 {
		got[get()]++
	}
	require.Equal(t, map[string]int{"a": 3, "b": 3}, got, "the probe succeeded and a is back in rotation")
	require.Equal(t, uint64(1), backendA().Recoveries)
	require.Equal(t, "live", backendA().State)
}

func TestMaxFailsZeroNeverMarksDown(t *testing.T) {
	bad := brokenBackend(t, "503")
	good := startBackend(t, "good", nil)
	p := startProxy(t, Options{FailOn: FailOn5xx}, []Route{{Hosts: []string{"app.test"},
		Backends: []Backend{{Addr: bad, MaxFails: DisableHealth}, {Addr: good.addr}}}})
	cl := newClient()
	for range 4 {
		code, _, _ := do(t, cl, "GET", p.url, "app.test", nil)
		require.Equal(t, 200, code)
	}
	st := p.Status().Routes[0].Backends[0]
	require.Equal(t, "live", st.State)
	require.Equal(t, uint64(4), st.Failures, "retries advance the rotation too, so bad is tried first every time")
}

func rawRequest(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, req)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

func TestManyBackendsEachTriedOnce(t *testing.T) {
	good := startBackend(t, "good", nil)
	r := Route{Hosts: []string{"app.test"}}
	for i := range 70 { // more than the 64 tracked in the tried bitmask
		// Distinct by construction (ports freed by deadAddr can repeat):
		// nothing listens on port 1 of any loopback address, so each refuses.
		r.Backends = append(r.Backends, Backend{Addr: fmt.Sprintf("127.0.1.%d:1", i+1)})
	}
	r.Backends = append(r.Backends, Backend{Addr: good.addr})
	p := startProxy(t, Options{}, []Route{r})
	code, body, _ := do(t, newClient(), "GET", p.url, "app.test", nil)
	require.Equal(t, 200, code)
	require.Equal(t, "good", body)
	for i, b := range p.Status().Routes[0].Backends[:70] {
		require.Equal(t, uint64(1), b.Failures, "backend %d tried exactly once", i)
	}
	code, body, _ = do(t, newClient(), "GET", p.url, "app.test", nil)
	require.Equal(t, 200, code, "the dead ones are skipped now")
	require.Equal(t, "good", body)
}
