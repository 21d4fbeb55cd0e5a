package lb

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/websocket"
)

func TestRequestHeadersForwarded(t *testing.T) {
	got := make(chan http.Header, 1)
	hosts := make(chan string, 1)
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		hosts <- r.Host
	})
	p := startProxy(t, Options{}, []Route{route("app.test", b.addr)})
	resp, _ := rawRequest(t, p.addr, "GET /x?y=1 HTTP/1.1\r\nHost: app.test\r\n"+
		"Connection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"+
		"Te: trailers\r\nTrailer: X-T\r\nX-Forwarded-For: 203.0.113.7\r\nX-Keep: yes\r\n\r\n")
	require.Equal(t, 200, resp.StatusCode)
	h := <-got
	require.Equal(t, "app.test", <-hosts, "the client's Host reaches the backend")
	for _, k := range []string{"X-Secret", "Keep-Alive", "Proxy-Connection", "Te", "Trailer"} {
		require.Empty(t, h.Get(k), "hop-by-hop %s removed", k)
	}
	require.Equal(t, "yes", h.Get("X-Keep"))
	require.Equal(t, "203.0.113.7, 127.0.0.1", h.Get("X-Forwarded-For"))
	require.Equal(t, "127.0.0.1", h.Get("X-Real-IP"))
	require.Equal(t, "http", h.Get("X-Forwarded-Proto"))
	require.Equal(t, "app.test", h.Get("X-Forwarded-Host"))
}

func TestResponseHopByHopRemoved(t *testing.T) {
	addr := rawBackend(t, func(c net.Conn) {
		_, _ = http.ReadRequest(bufio.NewReader(c))
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Hop\r\nX-Hop: 1\r\n"+
			"Keep-Alive: timeout=5\r\nX-Keep: yes\r\n\r\nok")
	})
	p := startProxy(t, Options{}, []Route{route("app.test", addr)})
	resp, body := rawRequest(t, p.addr, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
	require.Equal(t, "ok", body)
	require.Empty(t, resp.Header.Get("X-Hop"))
	require.Empty(t, resp.Header.Get("Keep-Alive"))
	require.Equal(t, "yes", resp.Header.Get("X-Keep"))
}

// heapWatch samples the heap until stopped and returns the peak.
func heapWatch() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(done); <-finished; return peak.Load() }
}

// patternReader yields n bytes without holding them.
type patternReader struct{ left int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.left)
	for i := range p[:n] {
		p[i] = byte(i)
	}
	r.left -= n
	return int(n), nil
}

func TestStreamedUploadKeepsHeapSmall(t *testing.T) {
	// Streamed: 200 MiB. Held: 64 MiB, which still cannot hide under the
	// 32 MiB bound if it were held in memory, and keeps the run short.
	const streamed, held = 200 << 20, 64 << 20
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			w.WriteHeader(400)
			return
		}
		fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
	})
	sums := map[int64]string{}
	for _, size := range []int64{streamed, held} {
		want := sha256.New()
		_, _ = io.Copy(want, &patternReader{left: size})
		sums[size] = fmt.Sprintf("%d %s", size, hex.EncodeToString(want.Sum(nil)))
	}
	for _, tc := range []struct{ stream, chunked bool }{{false, false}, {false, true}, {true, false}, {true, true}} {
		size := int64(held)
		if tc.stream {
			size = streamed
		}
		// Held in a temporary file (the default) or streamed.
		p := startProxy(t, Options{MaxBodySize: -1, StreamRequestBodies: tc.stream, TempDir: t.TempDir()},
			[]Route{route("app.test", b.addr)})
		chunked := tc.chunked
		t.Run(fmt.Sprintf("stream=%t/chunked=%t", tc.stream, chunked), func(t *testing.T) {
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			stop := heapWatch()
			req, err := http.NewRequest("POST", p.url, &patternReader{left: size})
			require.NoError(t, err)
			req.Host = "app.test"
			if !chunked {
				req.ContentLength = size
			}
			resp, err := newClient().Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			peak := stop()
			require.Equal(t, 200, resp.StatusCode)
			require.Equal(t, sums[size], string(body))
			grown := int64(peak) - int64(before.HeapAlloc)
			t.Logf("heap before %d MiB, peak %d MiB", before.HeapAlloc>>20, peak>>20)
			require.Less(t, grown, int64(32<<20), "the body must not be held in memory")
		})
	}
}

func TestStreamedDownloadKeepsHeapSmall(t *testing.T) {
	const size = 100 << 20
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(size))
		}
		_, _ = io.Copy(w, &patternReader{left: size})
	})
	p := startProxy(t, Options{}, []Route{route("app.test", b.addr)})
	for _, q := range []string{"/", "/?chunked=1"} {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		stop := heapWatch()
		req, _ := http.NewRequest("GET", p.url+q, nil)
		req.Host = "app.test"
		resp, err := newClient().Do(req)
		require.NoError(t, err)
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		peak := stop()
		require.NoError(t, err)
		require.Equal(t, int64(size), n, q)
		require.Less(t, int64(peak)-int64(before.HeapAlloc), int64(32<<20), q)
	}
}

func TestBodyLimit(t *testing.T) {
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	})
	p := startProxy(t, Options{MaxBodySize: 100 << 10, RetryBuffer: 4 << 10}, []Route{route("app.test", b.addr)})
	cases := []struct {
		name     string
		size     int64
		chunked  bool
		wantCode int
	}{
		{"small", 1000, false, 200},
		{"streamed under limit", 90 << 10, false, 200},
		{"chunked under limit", 90 << 10, true, 200},
		{"declared over limit", 200 << 10, false, 413},
		{"chunked over limit", 200 << 10, true, 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", p.url, &patternReader{left: tc.size})
			req.Host = "app.test"
			if !tc.chunked {
				req.ContentLength = tc.size
			}
			resp, err := newClient().Do(req)
			if err != nil && tc.wantCode == 413 {
				return // the proxy may close while the client is still sending
			}
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, tc.wantCode, resp.StatusCode)
			if tc.wantCode == 200 {
				require.Equal(t, strconv.FormatInt(tc.size, 10), string(body))
			} else {
				require.Equal(t, msgTooLarge, string(body))
			}
		})
	}
}

func TestExpectContinue(t *testing.T) {
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	})
	p := startProxy(t, Options{MaxBodySize: 1000}, []Route{route("app.test", b.addr)})
	// Over the limit: refused before the body is sent.
	resp, body := rawRequest(t, p.addr, "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
	require.Equal(t, 413, resp.StatusCode, body)
	// Under the limit: 100 Continue, then the body goes through.
	c, err := net.Dial("tcp", p.addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 100 Continue\r\n", line)
	_, _ = br.ReadString('\n')
	_, err = io.WriteString(c, "hello")
	require.NoError(t, err)
	resp, err = http.ReadResponse(br, nil)
	require.NoError(t, err)
	got, _ := io.ReadAll(resp.Body)
	require.Equal(t, "5", string(got))
}

// upgradeEcho is a backend that switches protocols and echoes lines.
func upgradeEcho(t *testing.T, name string) string {
	return rawBackend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil || req.Header.Get("Upgrade") != "websocket" {
			_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, name+":"+line)
		}
	})
}

func TestWebSocketSurvivesReload(t *testing.T) {
	ws := upgradeEcho(t, "ws1")
	other := startBackend(t, "other", nil)
	p := startProxy(t, Options{}, []Route{route("app.test", ws)})
	c, err := net.Dial("tcp", p.addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, 101, resp.StatusCode)
	echo := func(msg string) string {
		_, err := io.WriteString(c, msg+"\n")
		require.NoError(t, err)
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		return strings.TrimSpace(line)
	}
	require.Equal(t, "ws1:hello", echo("hello"))
	require.Equal(t, int64(1), p.Status().OpenTunnels)

	// Reload to a table without that backend: the tunnel stays up.
	require.NoError(t, p.Update([]Route{route("app.test", other.addr)}))
	require.Equal(t, "ws1:after reload", echo("after reload"))
	code, body, _ := do(t, newClient(), "GET", p.url, "app.test", nil)
	require.Equal(t, 200, code)
	require.Equal(t, "other", body)
	require.Equal(t, "ws1:still here", echo("still here"))
}

func TestHotReloadUnderLoadDropsNothing(t *testing.T) {
	var backends []*testBackend
	for i := range 4 {
		name := fmt.Sprintf("b%d", i)
		backends = append(backends, startBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Millisecond) // keep requests in flight across swaps
			_, _ = io.WriteString(w, name)
		}))
	}
	routesFor := func(i int) []Route {
		a, b := backends[i%4], backends[(i+1)%4]
		return []Route{route("app.test", a.addr, b.addr), {Default: true, Backends: []Backend{{Addr: b.addr}}}}
	}
	p := startProxy(t, Options{}, routesFor(0))
	const workers, perWorker = 8, 150
	var failed, ok atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := newClient()
			for range perWorker {
				if ctx.Err() != nil {
					return
				}
				req, _ := http.NewRequestWithContext(ctx, "POST", p.url, strings.NewReader("body"))
				req.Host = "app.test"
				resp, err := cl.Do(req)
				if err != nil {
					t.Logf("request failed: %v", err)
					failed.Add(1)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Logf("request answered %d: %s", resp.StatusCode, body)
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	reloads := 0
	for i := 1; ; i++ {
		if ok.Load()+failed.Load() >= workers*perWorker || ctx.Err() != nil {
			break
		}
		require.NoError(t, p.Update(routesFor(i)))
		reloads++
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	require.Zero(t, failed.Load())
	require.Equal(t, int64(workers*perWorker), ok.Load())
	require.Greater(t, reloads, 5)
}

func TestGracefulShutdownDrainsInFlight(t *testing.T) {
	started := make(chan struct{})
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(w, "done")
	})
	p := New(Options{Logger: startProxy(t, Options{}, nil).log})
	require.NoError(t, p.Update([]Route{route("app.test", b.addr)}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = p.Serve(ln) }()
	res := goGet("http://"+ln.Addr().String(), "app.test")
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, p.Shutdown(ctx))
	r := <-res
	require.Equal(t, result{200, "done"}, r)
	_, err = net.DialTimeout("tcp", ln.Addr().String(), time.Second)
	require.Error(t, err, "no longer accepting")
}

func TestAdminMetricsAndStatus(t *testing.T) {
	a := startBackend(t, "a", nil)
	p := startProxy(t, Options{}, []Route{route("app.test", a.addr, deadAddr(t))})
	cl := newClient()
	for range 4 {
		code, _, _ := do(t, cl, "GET", p.url, "app.test", nil)
		require.Equal(t, 200, code)
	}
	do(t, cl, "GET", p.url, "nobody.test", nil)
	srv := httptest.NewServer(p.AdminHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`potluck_lb_route_requests_total{route="app.test"} 4`,
		`potluck_lb_route_responses_total{route="app.test",class="2xx"} 4`,
		`potluck_lb_backend_requests_total{route="app.test",backend="` + a.addr + `"} 4`,
		`potluck_lb_backend_mark_downs_total{route="app.test",backend="`,
		`potluck_lb_backend_up{route="app.test",backend="` + a.addr + `"} 1`,
		`potluck_lb_backend_response_seconds_bucket{route="app.test",backend="` + a.addr + `",le="+Inf"} 4`,
		`potluck_lb_unknown_host_requests_total 1`,
		`# TYPE potluck_lb_backend_response_seconds histogram`,
	} {
		require.Contains(t, string(text), want)
	}
	resp, err = http.Get(srv.URL + "/status")
	require.NoError(t, err)
	var st Status
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	resp.Body.Close()
	require.Len(t, st.Routes, 1)
	require.Equal(t, "down", st.Routes[0].Backends[1].State)
	require.Equal(t, uint64(1), st.Routes[0].Backends[1].MarkDowns)
}

func TestValidateRoutesNamesTheField(t *testing.T) {
	cases := []struct {
		routes []Route
		want   string
	}{
		{[]Route{{Hosts: []string{"a"}}}, "routes[0].backends: a route needs at least one backend"},
		{[]Route{{Backends: []Backend{{Addr: "x:1"}}}}, "routes[0].hosts"},
		{[]Route{route("a", "nohost")}, `routes[0].backends[0].addr: "nohost" is not host:port`},
		{[]Route{route("a", "h:1"), route("a", "h:2")}, `routes[1].hosts[0]: host "a" is already routed by routes[0]`},
		{[]Route{{Hosts: []string{"a"}, Backends: []Backend{{Addr: "h:1", Weight: -1}}}}, "routes[0].backends[0].weight"},
		{[]Route{{Hosts: []string{"a"}, Backends: []Backend{{Addr: "h:1", MaxFails: -5}}}}, "routes[0].backends[0].max_fails"},
		{[]Route{{Hosts: []string{"a"}, Backends: []Backend{{Addr: "h:1", FailTimeout: -1}}}}, "routes[0].backends[0].fail_timeout"},
		{[]Route{{Hosts: []string{"http://a"}, Backends: []Backend{{Addr: "h:1"}}}}, "routes[0].hosts[0]"},
	}
	for _, tc := range cases {
		err := ValidateRoutes(tc.routes)
		require.Error(t, err)
		require.Contains(t, err.Error(), tc.want)
	}
	p := New(Options{})
	require.Error(t, p.Update([]Route{route("a", "nohost")}), "Update refuses invalid routes")
}

// TestRealWebSocketAcrossReload speaks the WebSocket protocol (RFC 6455
// frames, golang.org/x/net/websocket) through the proxy while the routing
// table is swapped underneath it.
func TestRealWebSocketAcrossReload(t *testing.T) {
	echo := httptest.NewServer(websocket.Handler(func(ws *websocket.Conn) {
		for {
			var msg string
			if websocket.Message.Receive(ws, &msg) != nil || websocket.Message.Send(ws, msg) != nil {
				return
			}
		}
	}))
	defer echo.Close()
	other := startBackend(t, "other", nil)
	backendAddr := strings.TrimPrefix(echo.URL, "http://")
	p := startProxy(t, Options{}, []Route{route("app.test", backendAddr)})

	cfg, err := websocket.NewConfig("ws://app.test/", "http://app.test/")
	require.NoError(t, err)
	raw, err := net.Dial("tcp", p.addr)
	require.NoError(t, err)
	ws, err := websocket.NewClient(cfg, raw)
	require.NoError(t, err)
	defer ws.Close()
	roundTrip := func(msg string) string {
		require.NoError(t, websocket.Message.Send(ws, msg))
		var got string
		require.NoError(t, websocket.Message.Receive(ws, &got))
		return got
	}
	require.Equal(t, "before", roundTrip("before"))
	for i := range 5 {
		routes := []Route{route("app.test", other.addr)}
		if i%2 == 1 {
			routes = []Route{route("app.test", backendAddr, other.addr)}
		}
		require.NoError(t, p.Update(routes))
		require.Equal(t, fmt.Sprintf("after reload %d", i), roundTrip(fmt.Sprintf("after reload %d", i)))
	}
	big := strings.Repeat("x", 1<<20)
	require.True(t, big == roundTrip(big), "a 1 MiB message crosses the tunnel")
}

func TestLookupHost(t *testing.T) {
	m := map[string]int{"app.test": 1, "::1": 2}
	for _, tc := range []struct {
		host string
		want int
		ok   bool
	}{
		{"app.test", 1, true},
		{"app.test:8080", 1, true},
		{"APP.Test", 1, true},
		{"app.test.", 1, true},
		{"[::1]:443", 2, true},
		{"other.test", 0, false},
		{"", 0, false},
	} {
		t.Run(tc.host, func(t *testing.T) {
			got, ok := LookupHost(m, []byte(tc.host))
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, got)
		})
	}
	host := []byte("App.Test:80")
	require.Zero(t, testing.AllocsPerRun(100, func() { _, _ = LookupHost(m, host) }))
}
