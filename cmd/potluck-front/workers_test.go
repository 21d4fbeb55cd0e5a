package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/internal/acmetest"
	"potluck/internal/freeport"
	"potluck/internal/mainexec"
)

// TestWorkers runs a standalone Front of two worker processes (workers: 2,
// front/workers) and checks what an operator relies on: both workers
// serve the shared listeners; a TLS session made by one worker resumes on
// the other; a killed worker is replaced without a refused or failed
// connection; SIGHUP reloads every worker; and the workers stop with the
// master.
func TestWorkers(t *testing.T) {
	dir := t.TempDir()
	ca, certFile, keyFile := acmetest.CertificateFiles(t, dir, "site.test")
	ports, err := freeport.TCPs(3)
	require.NoError(t, err)
	plain, secure, admin := ports[0], ports[1], ports[2]
	config := filepath.Join(dir, "front.yaml")
	writeConfig := func(backend string) {
		tmp := config + ".tmp"
		require.NoError(t, os.WriteFile(tmp, fmt.Appendf(nil, `workers: 2
listen: [%q]
admin: %q
tls:
  listen: [%q]
  certificates: [{cert: %q, key: %q}]
routes:
  - default: true
    backends: [%s]
`, plain, admin, secure, certFile, keyFile, backend), 0o600))
		require.NoError(t, os.Rename(tmp, config))
	}
	writeConfig(namedBackend(t, "one"))

	cmd := mainexec.Command("--config", config, "--log-level", "warn", "--watch-interval", "0", "--shutdown-timeout", "5s")
	cmd.Env = append(cmd.Env, "TMPDIR="+dir) // the workers' socket directory stays in the test's, even if the test kills the master
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(url string) (string, error) {
		resp, err := client.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: %s %s", url, resp.Status, body)
		}
		return string(body), err
	}
	require.Eventually(t, func() bool { _, err := get("http://" + plain + "/"); return err == nil }, 20*time.Second, 20*time.Millisecond)

	// Every request on a new connection: the kernel spreads them over the
	// workers' sockets.
	for range 60 {
		body, err := get("http://" + plain + "/")
		require.NoError(t, err)
		require.Equal(t, "one", body)
	}
	perWorker := requestsPerWorker(t, get, "http://"+admin+"/metrics")
	require.Len(t, perWorker, 2, "the merged /metrics has both workers")
	require.Positive(t, perWorker["0"], "worker 0 served some")
	require.Positive(t, perWorker["1"], "worker 1 served some")

	// TLS session resumption across workers: the workers share their
	// session ticket keys, so every connection after the first resumes,
	// whichever worker it reaches.
	tlsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: ca, ServerName: "site.test", ClientSessionCache: tls.NewLRUClientSessionCache(4)},
	}}
	before := requestsPerWorker(t, get, "http://"+admin+"/metrics")
	for i := range 30 {
		resp, err := tlsClient.Get("https://" + secure + "/")
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		if i > 0 {
			require.True(t, resp.TLS.DidResume, "connection %d did not resume its TLS session", i)
		}
	}
	after := requestsPerWorker(t, get, "http://"+admin+"/metrics")
	require.Greater(t, after["0"], before["0"], "worker 0 served HTTPS")
	require.Greater(t, after["1"], before["1"], "worker 1 served HTTPS")

	// Worker 1's own endpoints, through the master.
	body, err := get("http://" + admin + "/workers/1/status")
	require.NoError(t, err)
	require.Contains(t, body, `"routes"`)
	_, err = get("http://" + admin + "/workers/2/status")
	require.ErrorContains(t, err, `404 Not Found {"error":"no worker \"2\": workers are numbered 0 to 1"}`)

	// A killed worker: its socket stays open in the master, so the
	// connections that reach it wait for the replacement.
	st := status(t, get, admin)
	killed := st[0].PID
	require.NoError(t, syscall.Kill(killed, syscall.SIGKILL))
	for i := range 50 {
		body, err := get("http://" + plain + "/")
		require.NoError(t, err, "request %d after the kill", i)
		require.Equal(t, "one", body)
	}
	require.Eventually(t, func() bool {
		st := status(t, get, admin)
		return st[0].Running && st[0].PID != killed && st[0].Restarts == 1 && st[0].LastExit == "signal: killed"
	}, 10*time.Second, 50*time.Millisecond)

	// SIGHUP: both workers take the new backend.
	writeConfig(namedBackend(t, "two"))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		for range 20 {
			if body, err := get("http://" + plain + "/"); err != nil || body != "two" {
				return false
			}
		}
		return true
	}, 10*time.Second, 100*time.Millisecond)

	// SIGTERM: the master stops its workers and exits cleanly.
	st = status(t, get, admin)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err)
		exited <- err // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("the master did not exit")
	}
	for _, w := range st {
		require.ErrorIs(t, syscall.Kill(w.PID, 0), syscall.ESRCH, "worker %d (pid %d) outlived its master", w.Worker, w.PID)
	}
}

// namedBackend is an HTTP server answering its name.
func namedBackend(t *testing.T, name string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) }))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

var routeRequests = regexp.MustCompile(`(?m)^potluck_lb_route_requests_total\{worker="(\d+)",route="default"\} (\d+)$`)

// requestsPerWorker reads the requests each worker counted from the
// master's merged /metrics.
func requestsPerWorker(t *testing.T, get func(string) (string, error), url string) map[string]int {
	t.Helper()
	body, err := get(url)
	require.NoError(t, err)
	out := map[string]int{}
	for _, m := range routeRequests.FindAllStringSubmatch(body, -1) {
		n, _ := strconv.Atoi(m[2])
		out[m[1]] = n
	}
	return out
}

type workerState struct {
	Worker   int    `json:"worker"`
	Running  bool   `json:"running"`
	PID      int    `json:"pid"`
	Restarts int    `json:"restarts"`
	LastExit string `json:"last_exit"`
}

func status(t *testing.T, get func(string) (string, error), admin string) []workerState {
	t.Helper()
	body, err := get("http://" + admin + "/status")
	require.NoError(t, err)
	var st struct {
		Workers []workerState `json:"workers"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	require.Len(t, st.Workers, 2)
	return st.Workers
}
