package lb

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/internal/testenv"
)

// The parity tests run one scenario through lb and through a real NGINX on
// the same backends and require the same observable result. The NGINX half
// is skipped, saying so, only when no nginx binary is installed
// (scripts/install-deps.sh installs it, as CI runs it).

// nginxBinary returns the nginx binary; without one the test skips, or
// fails in CI (testenv.Missing).
func nginxBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if bin, err := exec.LookPath(p); err == nil {
			return bin
		}
	}
	testenv.Missing(t, "nginx is not installed (apt-get install nginx, or scripts/install-deps.sh)")
	return ""
}

// parityRoutes is the routing both proxies get: app.test to the scenario's
// backends, everything else to a default backend that names itself.
type parityRoutes struct {
	app []string
	def string
}

// startNginx runs NGINX in the foreground, one process, with the same
// semantics lb is configured with in startParityLB.
func startNginx(t *testing.T, r parityRoutes, readTimeout time.Duration) string {
	t.Helper()
	bin := nginxBinary(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	var servers strings.Builder
	for _, b := range r.app {
		fmt.Fprintf(&servers, "        server %s max_fails=1 fail_timeout=20s;\n", b)
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    client_max_body_size 20m;
    proxy_read_timeout %[5]dms;
    proxy_connect_timeout 5s;
    proxy_buffering off;
    upstream app {
%[2]s        keepalive 16;
    }
    upstream def { server %[3]s; keepalive 16; }
    server {
        listen %[4]s default_server;
        server_name _;
        location / { proxy_pass http://def; proxy_http_version 1.1;
                     proxy_set_header Connection ""; proxy_set_header Host $host; }
    }
    server {
        listen %[4]s;
        server_name app.test;
        location / { proxy_pass http://app; proxy_http_version 1.1;
                     proxy_set_header Connection ""; proxy_set_header Host $host; }
    }
}
`, dir, servers.String(), r.def, addr, readTimeout.Milliseconds())
	confPath := filepath.Join(dir, "nginx.conf")
	require.NoError(t, os.WriteFile(confPath, []byte(conf), 0o600))
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start on %s: %v\n%s", addr, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startParityLB(t *testing.T, r parityRoutes, readTimeout time.Duration) string {
	t.Helper()
	app := route("app.test", r.app...)
	p := startProxy(t, Options{MaxBodySize: 20 << 20, Timeouts: Timeouts{Read: readTimeout}},
		[]Route{app, {Default: true, Backends: []Backend{{Addr: r.def}}}})
	return p.addr
}

// observed is what a client sees for one raw request.
type observed struct {
	Status    int
	Body      string // a short body, or "<n bytes sha256 …>" for a long one
	Truncated bool   // the connection closed before the declared body ended
}

func observe(t *testing.T, addr, raw string, body io.Reader) observed {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	_, err = io.WriteString(c, raw)
	require.NoError(t, err)
	if body != nil {
		_, err = io.Copy(c, body)
		require.NoError(t, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	o := observed{Status: resp.StatusCode, Truncated: err != nil}
	if len(got) > 64 {
		sum := sha256.Sum256(got)
		o.Body = fmt.Sprintf("<%d bytes sha256 %s>", len(got), hex.EncodeToString(sum[:8]))
	} else {
		o.Body = string(got)
	}
	return o
}

// parityScenario builds fresh backends, then runs requests against addr.
type parityScenario struct {
	name string
	// setup returns the routes and a function that sends the scenario's
	// requests to a proxy and returns what is compared.
	setup func(t *testing.T) (parityRoutes, func(t *testing.T, addr string) any)
	// readTimeout is proxy_read_timeout; 0 = 10 s.
	readTimeout time.Duration
	want        any
}

func TestNginxParity(t *testing.T) {
	scenarios := []parityScenario{
		{
			name: "body cut short after Content-Length: status and bytes passed, then closed",
			setup: func(t *testing.T) (parityRoutes, func(*testing.T, string) any) {
				cut := rawBackend(t, func(c net.Conn) {
					_, _ = http.ReadRequest(bufio.NewReader(c))
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789")
				})
				def := startBackend(t, "default", nil)
				return parityRoutes{app: []string{cut}, def: def.addr}, func(t *testing.T, addr string) any {
					return observe(t, addr, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n", nil)
				}
			},
			want: observed{Status: 200, Body: "0123456789", Truncated: true},
		},
		{
			name: "backend resets a new connection after reading the request: once, then the next backend",
			setup: func(t *testing.T) (parityRoutes, func(*testing.T, string) any) {
				var accepted atomic.Int64
				reset := rawBackend(t, func(c net.Conn) {
					accepted.Add(1)
					_, _ = http.ReadRequest(bufio.NewReader(c))
					_ = c.(*net.TCPConn).SetLinger(0)
				})
				good := startBackend(t, "good", nil)
				def := startBackend(t, "default", nil)
				return parityRoutes{app: []string{reset, good.addr}, def: def.addr}, func(t *testing.T, addr string) any {
					var out []any
					for range 2 {
						out = append(out, observe(t, addr, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n", nil))
					}
					return append(out, accepted.Load())
				}
			},
			want: []any{observed{Status: 200, Body: "good"}, observed{Status: 200, Body: "good"}, int64(1)},
		},
		{
			name: "the last live backend times out, the other is down: 502",
			setup: func(t *testing.T) (parityRoutes, func(*testing.T, string) any) {
				var served atomic.Int64
				slowLater := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
					if served.Add(1) > 2 {
						time.Sleep(2 * time.Second)
					}
					_, _ = io.WriteString(w, "b")
				})
				def := startBackend(t, "default", nil)
				return parityRoutes{app: []string{deadAddr(t), slowLater.addr}, def: def.addr}, func(t *testing.T, addr string) any {
					// Two requests: one of them tries the refusing backend
					// first, which takes it out; b answers both.
					var out []int
					for range 3 {
						out = append(out, observe(t, addr, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n", nil).Status)
					}
					return out
				}
			},
			readTimeout: 300 * time.Millisecond,
			want:        []int{200, 200, 502},
		},
		{
			name: "a 10 MiB PUT to a backend that resets after reading it is retried from the buffered copy",
			setup: func(t *testing.T) (parityRoutes, func(*testing.T, string) any) {
				reset := rawBackend(t, func(c net.Conn) {
					req, err := http.ReadRequest(bufio.NewReader(c))
					if err == nil {
						_, _ = io.Copy(io.Discard, req.Body)
					}
					_ = c.(*net.TCPConn).SetLinger(0)
				})
				good := startBackend(t, "good", func(w http.ResponseWriter, r *http.Request) {
					h := sha256.New()
					n, _ := io.Copy(h, r.Body)
					fmt.Fprintf(w, "%d %x", n, h.Sum(nil)[:8])
				})
				def := startBackend(t, "default", nil)
				return parityRoutes{app: []string{reset, good.addr}, def: def.addr}, func(t *testing.T, addr string) any {
					const size = 10 << 20
					return observe(t, addr, fmt.Sprintf("PUT /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n", size),
						&patternReader{left: size})
				}
			},
			want: func() observed {
				h := sha256.New()
				_, _ = io.Copy(h, &patternReader{left: 10 << 20})
				return observed{Status: 200, Body: fmt.Sprintf("%d %x", 10<<20, h.Sum(nil)[:8])}
			}(),
		},
		{
			name: "Host with a trailing dot goes to the named site",
			setup: func(t *testing.T) (parityRoutes, func(*testing.T, string) any) {
				app := startBackend(t, "app", nil)
				def := startBackend(t, "default", nil)
				return parityRoutes{app: []string{app.addr}, def: def.addr}, func(t *testing.T, addr string) any {
					return observe(t, addr, "GET / HTTP/1.1\r\nHost: app.test.\r\n\r\n", nil)
				}
			},
			want: observed{Status: 200, Body: "app"},
		},
		{
			name: "Host with an empty label is refused",
			setup: func(t *testing.T) (parityRoutes, func(*testing.T, string) any) {
				app := startBackend(t, "app", nil)
				def := startBackend(t, "default", nil)
				return parityRoutes{app: []string{app.addr}, def: def.addr}, func(t *testing.T, addr string) any {
					return []any{observe(t, addr, "GET / HTTP/1.1\r\nHost: app.test..\r\n\r\n", nil).Status,
						app.hits.Load() + def.hits.Load()}
				}
			},
			want: []any{400, int64(0)},
		},
		{
			name: "Content-Length with Transfer-Encoding: 400, connection closed",
			setup: func(t *testing.T) (parityRoutes, func(*testing.T, string) any) {
				app := startBackend(t, "app", nil)
				def := startBackend(t, "default", nil)
				return parityRoutes{app: []string{app.addr}, def: def.addr}, func(t *testing.T, addr string) any {
					c, err := net.Dial("tcp", addr)
					require.NoError(t, err)
					defer c.Close()
					require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
					_, err = io.WriteString(c, "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n"+
						"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
					require.NoError(t, err)
					br := bufio.NewReader(c)
					resp, err := http.ReadResponse(br, nil)
					require.NoError(t, err)
					_, _ = io.Copy(io.Discard, resp.Body)
					_, err = br.ReadByte()
					return []any{resp.StatusCode, err == io.EOF, app.hits.Load()}
				}
			},
			want: []any{400, true, int64(0)},
		},
		{
			name: "HTTP/1.0 without Host is served by the default site",
			setup: func(t *testing.T) (parityRoutes, func(*testing.T, string) any) {
				app := startBackend(t, "app", nil)
				def := startBackend(t, "default", nil)
				return parityRoutes{app: []string{app.addr}, def: def.addr}, func(t *testing.T, addr string) any {
					var out []observed
					for range 3 {
						out = append(out, observe(t, addr, "GET / HTTP/1.0\r\n\r\n", nil))
					}
					return out
				}
			},
			want: []observed{{Status: 200, Body: "default"}, {Status: 200, Body: "default"}, {Status: 200, Body: "default"}},
		},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			rt := sc.readTimeout
			if rt == 0 {
				rt = 10 * time.Second
			}
			for _, proxy := range []string{"lb", "nginx"} {
				t.Run(proxy, func(t *testing.T) {
					routes, run := sc.setup(t)
					var addr string
					if proxy == "lb" {
						addr = startParityLB(t, routes, rt)
					} else {
						addr = startNginx(t, routes, rt)
					}
					require.Equal(t, sc.want, run(t, addr))
				})
			}
		})
	}
}
