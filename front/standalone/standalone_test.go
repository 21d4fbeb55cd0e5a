package standalone

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/lb"
)

func TestParseRejectsBadConfigNamingTheField(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"no routes", "listen: [':80']\n", "routes: at least one route is needed"},
		{"unknown key", "routes: []\nlisten_on: x\n", "field listen_on not found"},
		{"bad listen", "listen: ['80']\nroutes: [{default: true, backends: [a:1]}]\n", `listen[0]: "80" is not host:port`},
		{"bad admin", "admin: nope\nroutes: [{default: true, backends: [a:1]}]\n", `admin: "nope"`},
		{"bad duration", "routes: [{default: true, backends: [{addr: 'a:1', fail_timeout: '20'}]}]\n",
			`routes[0].backends[0].fail_timeout: "20" is not a positive duration`},
		{"bad timeout", "timeouts: {read: soon}\nroutes: [{default: true, backends: [a:1]}]\n", `timeouts.read: "soon"`},
		{"bad client timeout", "timeouts: {client_header: 0s}\nroutes: [{default: true, backends: [a:1]}]\n", `timeouts.client_header: "0s"`},
		{"negative max_client_conns", "max_client_conns: -1\nroutes: [{default: true, backends: [a:1]}]\n", "max_client_conns: -1 is negative"},
		{"bad size", "max_body_size: lots\nroutes: [{default: true, backends: [a:1]}]\n", `max_body_size: "lots" is not a size`},
		{"bad temp_dir", "temp_dir: /nonexistent/potluck\nroutes: [{default: true, backends: [a:1]}]\n", `temp_dir: "/nonexistent/potluck" is not a directory`},
		{"bad fail_on", "health: {fail_on: [4xx]}\nroutes: [{default: true, backends: [a:1]}]\n", `health.fail_on[0]: "4xx"`},
		{"negative max_fails", "routes: [{default: true, backends: [{addr: 'a:1', max_fails: -1}]}]\n", "routes[0].backends[0].max_fails"},
		{"backend without port", "routes: [{hosts: [x], backends: [a]}]\n", `routes[0].backends[0].addr: "a" is not host:port`},
		{"route without backends", "routes: [{hosts: [x]}]\n", "routes[0].backends: a route needs at least one backend"},
		{"two defaults", "routes: [{default: true, backends: [a:1]}, {default: true, backends: [b:1]}]\n", "routes[1].default"},
		{"duplicate host", "routes: [{hosts: [x], backends: [a:1]}, {hosts: [X], backends: [b:1]}]\n", `routes[1].hosts[0]: host "x"`},
		{"not yaml", "routes: [\n", "parse YAML"},
		{"no workers", "workers: 0\nroutes: [{default: true, backends: [a:1]}]\n", "workers: 0 is outside 1..64 (or auto: one per core)"},
		{"too many workers", "workers: 65\nroutes: [{default: true, backends: [a:1]}]\n", "workers: 65 is outside 1..64"},
		{"workers not a number", "workers: many\nroutes: [{default: true, backends: [a:1]}]\n", `workers: "many" is not a number of processes or auto`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// yamlBlocks returns the ```yaml blocks of docs/front.md.
func yamlBlocks(t *testing.T) []string {
	data, err := os.ReadFile("../../docs/front.md")
	require.NoError(t, err)
	re := regexp.MustCompile("(?s)```yaml\n(.*?)```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		out = append(out, m[1])
	}
	require.Len(t, out, 2)
	return out
}

func TestDocumentedExamplesParse(t *testing.T) {
	blocks := yamlBlocks(t)
	short, err := Parse([]byte(blocks[0]))
	require.NoError(t, err)
	require.Equal(t, []string{":80"}, short.Listen)
	require.Equal(t, DefaultAdmin, short.Admin)
	require.Equal(t, []lb.Backend{
		{Addr: "10.0.0.1:8080", MaxFails: 1, FailTimeout: 20 * time.Second},
		{Addr: "10.0.0.2:8080", MaxFails: 1, FailTimeout: 20 * time.Second},
	}, short.Routes[0].Backends)

	full, err := Parse([]byte(blocks[1]))
	require.NoError(t, err)
	require.Len(t, full.Routes, 2)
	require.Equal(t, 2, full.Routes[0].Backends[1].Weight)
	require.Equal(t, int64(1<<20), full.Options.MaxBodySize)
	require.Equal(t, 5*time.Second, full.Options.Timeouts.Connect)
	require.Equal(t, 64<<10, full.Options.RetryBuffer)
	require.False(t, full.Options.StreamRequestBodies, "request bodies are held by default, as in NGINX")
	require.Equal(t, 60*time.Second, full.Options.ClientHeaderTimeout)
	require.Equal(t, 60*time.Second, full.Options.ClientBodyTimeout)
	require.Equal(t, 60*time.Second, full.Options.ClientSendTimeout)
	require.Equal(t, 75*time.Second, full.Options.ClientIdleTimeout)
	require.Equal(t, 10000, full.Options.MaxClientConns)

	streamed, err := Parse([]byte("request_buffering: false\nroutes: [{default: true, backends: [a:1]}]\n"))
	require.NoError(t, err)
	require.True(t, streamed.Options.StreamRequestBodies)
}

func TestWorkersSetting(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want int
	}{
		{"", 1},
		{"workers: 1\n", 1},
		{"workers: 3\n", 3},
		{"workers: auto\n", min(runtime.NumCPU(), MaxWorkers)},
		{"workers: AUTO\n", min(runtime.NumCPU(), MaxWorkers)},
	} {
		cfg, err := Parse([]byte(tc.yaml + "routes: [{default: true, backends: [a:1]}]\n"))
		require.NoError(t, err, tc.yaml)
		require.Equal(t, tc.want, cfg.Workers, tc.yaml)
	}
}

func TestMaxFailsZeroDisablesHealth(t *testing.T) {
	cfg, err := Parse([]byte("health: {max_fails: 0}\nroutes: [{default: true, backends: [a:1, {addr: 'b:1', max_fails: 3}]}]\n"))
	require.NoError(t, err)
	require.Equal(t, lb.DisableHealth, cfg.Routes[0].Backends[0].MaxFails)
	require.Equal(t, 3, cfg.Routes[0].Backends[1].MaxFails)
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func backend(t *testing.T, name string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, name)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func writeConfig(t *testing.T, path string, backends ...string) {
	cfg := fmt.Sprintf("listen: ['127.0.0.1:0']\nadmin: '127.0.0.1:0'\nroutes:\n  - hosts: [app.test]\n    backends: [%s]\n",
		strings.Join(backends, ", "))
	writeFile(t, path, cfg)
}

func writeFile(t *testing.T, path, content string) {
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, path)) // atomic, as editors and config managers do
}

func get(t *testing.T, url string) (int, string) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = "app.test"
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestReloadOnFileChangeAndSIGHUP(t *testing.T) {
	a, b := backend(t, "a"), backend(t, "b")
	path := filepath.Join(t.TempDir(), "front.yaml")
	writeConfig(t, path, a)
	logs := &syncBuffer{}
	s, err := Start(RunOptions{ConfigPath: path, WatchInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	url := "http://" + s.Addrs()[0].String()
	code, body := get(t, url)
	require.Equal(t, 200, code)
	require.Equal(t, "a", body)

	// File change: picked up by the watcher.
	writeConfig(t, path, b)
	require.Eventually(t, func() bool { _, body := get(t, url); return body == "b" }, 5*time.Second, 20*time.Millisecond)

	// Invalid file: refused, the old table keeps serving.
	writeFile(t, path, "routes: [{hosts: [app.test], backends: [{addr: 'x:1', fail_timeout: 'soon'}]}]\n")
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "config reload refused") }, 5*time.Second, 20*time.Millisecond)
	require.Contains(t, logs.String(), "routes[0].backends[0].fail_timeout")
	_, body = get(t, url)
	require.Equal(t, "b", body)

	// Admin endpoints are up.
	resp, err := http.Get("http://" + s.AdminAddr().String() + "/metrics")
	require.NoError(t, err)
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(m), `potluck_lb_route_requests_total{route="app.test"}`)

	cancel()
	require.NoError(t, <-done)
}

func TestReloadOnSIGHUP(t *testing.T) {
	a, b := backend(t, "a"), backend(t, "b")
	path := filepath.Join(t.TempDir(), "front.yaml")
	writeConfig(t, path, a)
	logs := &syncBuffer{}
	s, err := Start(RunOptions{ConfigPath: path, Logger: slog.New(slog.NewTextHandler(logs, nil))}) // no file watcher
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	url := "http://" + s.Addrs()[0].String()
	require.Eventually(t, func() bool { _, body := get(t, url); return body == "a" }, 5*time.Second, 20*time.Millisecond)
	writeConfig(t, path, b)
	time.Sleep(50 * time.Millisecond)
	_, body := get(t, url)
	require.Equal(t, "a", body, "nothing reloads without the signal")
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	require.Eventually(t, func() bool { _, body := get(t, url); return body == "b" }, 5*time.Second, 20*time.Millisecond)
	require.Contains(t, logs.String(), "SIGHUP")
	cancel()
	require.NoError(t, <-done)
}

func TestJSONConfigIsAccepted(t *testing.T) {
	cfg, err := Parse([]byte(`{"listen": ["127.0.0.1:8080"], "routes": [{"hosts": ["a.test"], "backends": ["127.0.0.1:9000", {"addr": "127.0.0.1:9001", "weight": 3}]}]}`))
	require.NoError(t, err)
	require.Equal(t, []string{"127.0.0.1:8080"}, cfg.Listen)
	require.Equal(t, 3, cfg.Routes[0].Backends[1].Weight)
}
