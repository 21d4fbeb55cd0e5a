package lb

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLargeBodyIsHeldAndRetried: a body larger than RetryBuffer, with a
// Content-Length or chunked, is held in an unlinked temporary file so that a
// PUT whose first backend resets after reading it is sent again to the next
// one (NGINX's proxy_request_buffering on). With StreamRequestBodies the
// body goes out as it arrives and such a request gets 502, as before.
func TestLargeBodyIsHeldAndRetried(t *testing.T) {
	const size = 3 << 20
	want := sha256.New()
	_, _ = io.Copy(want, &patternReader{left: size})
	wantBody := fmt.Sprintf("%d %x", size, want.Sum(nil))
	cases := []struct {
		name     string
		stream   bool
		chunked  bool
		wantCode int
	}{
		{"held, Content-Length", false, false, 200},
		{"held, chunked", false, true, 200},
		{"streamed, Content-Length", true, false, 502},
		{"streamed, chunked", true, true, 502},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reset := rawBackend(t, func(c net.Conn) {
				if req, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
					_, _ = io.Copy(io.Discard, req.Body)
				}
				_ = c.(*net.TCPConn).SetLinger(0)
			})
			lengths := make(chan int64, 1)
			good := startBackend(t, "good", func(w http.ResponseWriter, r *http.Request) {
				lengths <- r.ContentLength
				h := sha256.New()
				n, _ := io.Copy(h, r.Body)
				fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
			})
			tmp := t.TempDir()
			p := startProxy(t, Options{MaxBodySize: -1, StreamRequestBodies: tc.stream, TempDir: tmp},
				[]Route{route("app.test", reset, good.addr)})
			req, err := http.NewRequest("PUT", p.url, &patternReader{left: size})
			require.NoError(t, err)
			req.Host = "app.test"
			if !tc.chunked {
				req.ContentLength = size
			}
			resp, err := newClient().Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, tc.wantCode, resp.StatusCode, string(body))
			if tc.wantCode == 200 {
				require.Equal(t, wantBody, string(body))
				require.Equal(t, int64(size), <-lengths, "a held body leaves with its length, chunked or not")
			}
			left, err := os.ReadDir(tmp)
			require.NoError(t, err)
			require.Empty(t, left, "held bodies leave no file behind")
		})
	}
}

// TestHeldBodyOverLimitIs413: a chunked body that passes MaxBodySize while
// it is being held gets 413, and its file is gone.
func TestHeldBodyOverLimitIs413(t *testing.T) {
	b := startBackend(t, "b", nil)
	tmp := t.TempDir()
	p := startProxy(t, Options{MaxBodySize: 1 << 20, TempDir: tmp}, []Route{route("app.test", b.addr)})
	req, err := http.NewRequest("PUT", p.url, &patternReader{left: 2 << 20})
	require.NoError(t, err)
	req.Host = "app.test"
	resp, err := newClient().Do(req)
	if err == nil { // the proxy may close while the client is still sending
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, 413, resp.StatusCode)
		require.Equal(t, msgTooLarge, string(body))
	}
	require.Zero(t, b.hits.Load())
	left, err := os.ReadDir(tmp)
	require.NoError(t, err)
	require.Empty(t, left)
}

// TestBodyThatCannotBeHeldIs500: when a body larger than RetryBuffer cannot
// be written to TempDir (missing, full), the proxy answers 500, its own
// fault, and no backend is tried or blamed.
func TestBodyThatCannotBeHeldIs500(t *testing.T) {
	b := startBackend(t, "b", nil)
	p := startProxy(t, Options{RetryBuffer: 4, TempDir: filepath.Join(t.TempDir(), "missing")},
		[]Route{route("app.test", b.addr)})
	code, body, _ := do(t, newClient(), "PUT", p.url, "app.test", strings.NewReader(strings.Repeat("x", 100)))
	require.Equal(t, 500, code)
	require.Equal(t, msgHoldFailed, body)
	require.Zero(t, b.hits.Load())
	require.Zero(t, p.Status().Routes[0].Backends[0].Failures)
}

// The disk failing is logged once when it starts and once when it ends, not
// for every request answered 500 meanwhile.
func TestBodyHoldFailureIsLoggedPerTransition(t *testing.T) {
	b := startBackend(t, "b", nil)
	dir := filepath.Join(t.TempDir(), "missing")
	var logs lockedBuffer
	p := startProxy(t, Options{RetryBuffer: 4, TempDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		[]Route{route("app.test", b.addr)})
	put := func() int {
		code, _, _ := do(t, newClient(), "PUT", p.url, "app.test", strings.NewReader(strings.Repeat("x", 100)))
		return code
	}
	for range 3 {
		require.Equal(t, 500, put())
	}
	require.Equal(t, 1, strings.Count(logs.String(), "cannot be held"), logs.String())
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.Equal(t, 200, put())
	require.Equal(t, 200, put())
	require.Equal(t, 1, strings.Count(logs.String(), "held on disk again"), logs.String())
}
