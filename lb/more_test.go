package lb

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// silentAddr is a real loopback listener whose accept queue is full, so new
// SYNs are dropped: a connect there hangs like a tunnel dial to a dead peer.
func silentAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Close(fd) })
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, syscall.Listen(fd, 0))
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
	for range 2 { // fill the queue; the second dial may already hang
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			t.Cleanup(func() { _ = c.Close() })
		}
	}
	return addr
}

func TestConnectTimeout(t *testing.T) {
	silent := silentAddr(t)
	good := startBackend(t, "good", nil)
	o := Options{Timeouts: Timeouts{Connect: 500 * time.Millisecond}} // headroom for the good backend on a loaded machine
	cases := []struct {
		name     string
		method   string
		backends []string
		wantCode int
		wantBody string
	}{
		// Nothing was sent, so even POST moves to the next backend.
		{"POST moves on", "POST", []string{silent, good.addr}, 200, "good"},
		{"GET moves on", "GET", []string{silent, good.addr}, 200, "good"},
		{"single backend: 504", "GET", []string{silent}, 504, msgTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, o, []Route{route("app.test", tc.backends...)})
			start := time.Now()
			code, body, _ := do(t, newClient(), tc.method, p.url, "app.test", strings.NewReader("x"))
			require.Equal(t, tc.wantCode, code)
			require.Equal(t, tc.wantBody, body)
			require.Less(t, time.Since(start), 5*time.Second, "bounded by the connect timeout")
			require.Equal(t, uint64(1), p.Status().Routes[0].Backends[0].Failures)
		})
	}
}

func TestRemovedBackendFinishesInFlight(t *testing.T) {
	started := make(chan struct{})
	slow := startBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(w, "slow done")
	})
	other := startBackend(t, "other", nil)
	p := startProxy(t, Options{}, []Route{route("app.test", slow.addr)})
	res := goGet(p.url, "app.test")
	<-started
	require.NoError(t, p.Update([]Route{route("app.test", other.addr)}))
	code, body, _ := do(t, newClient(), "GET", p.url, "app.test", nil)
	require.Equal(t, 200, code)
	require.Equal(t, "other", body, "new requests use the new table at once")
	require.Equal(t, result{200, "slow done"}, <-res, "the removed backend's request completes")
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func TestAccessLogOneLinePerRequest(t *testing.T) {
	b := startBackend(t, "b", nil)
	logs := &lockedBuffer{}
	p := startProxy(t, Options{AccessLog: true, Logger: slog.New(slog.NewTextHandler(logs, nil))},
		[]Route{route("app.test", b.addr)})
	cl := newClient()
	do(t, cl, "GET", p.url+"/path?q=1", "app.test", nil)
	do(t, cl, "GET", p.url, "unknown.test", nil)
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "msg=request") {
			lines = append(lines, l)
		}
	}
	require.Len(t, lines, 2)
	for _, want := range []string{"method=GET", "host=app.test", `uri="/path?q=1"`, "status=200", "route=app.test", "backend=" + b.addr, "duration="} {
		require.Contains(t, lines[0], want)
	}
	require.Contains(t, lines[1], "status=404")
	require.Contains(t, lines[1], fmt.Sprintf("bytes=%d", len(msgNoRoute)))
}

func TestHTTP10ClientIsServed(t *testing.T) {
	protos := make(chan string, 1)
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		protos <- r.Proto
		_, _ = io.WriteString(w, "hi")
	})
	p := startProxy(t, Options{}, []Route{route("app.test", b.addr)})
	resp, body := rawRequest(t, p.addr, "GET / HTTP/1.0\r\nHost: app.test\r\n\r\n")
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "hi", body)
	require.Equal(t, "HTTP/1.1", <-protos, "backends are spoken to in HTTP/1.1 keep-alive")
}
