package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"potluck/internal/freeport"

	"github.com/stretchr/testify/require"
)

func TestHelpDocumentsEveryFlagWithItsEnv(t *testing.T) {
	var out bytes.Buffer
	code := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &out, &out)
	require.Equal(t, 0, code)
	for _, f := range []string{"config", "check", "watch-interval", "shutdown-timeout", "log-level", "log-format", "pprof"} {
		require.Contains(t, out.String(), "-"+f)
		env := "POTLUCK_" + strings.ToUpper(strings.ReplaceAll(f, "-", "_"))
		require.Contains(t, out.String(), env)
	}
}

func TestEnvAndCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(good, []byte("routes: [{default: true, backends: [127.0.0.1:9]}]\n"), 0o600))
	require.NoError(t, os.WriteFile(bad, []byte("routes: [{default: true, backends: [{addr: '127.0.0.1:9', weight: -2}]}]\n"), 0o600))
	env := func(cfg string) func(string) string {
		return func(k string) string {
			return map[string]string{"POTLUCK_CONFIG": cfg, "POTLUCK_CHECK": "true"}[k]
		}
	}
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run(context.Background(), nil, env(good), &out, &errOut), errOut.String())
	require.Contains(t, out.String(), "OK (1 listeners, 1 routes)")
	errOut.Reset()
	require.Equal(t, 1, run(context.Background(), nil, env(bad), &out, &errOut))
	require.Contains(t, errOut.String(), "routes[0].backends[0].weight")
	errOut.Reset()
	require.Equal(t, 2, run(context.Background(), nil, func(string) string { return "" }, &out, &errOut))
	require.Contains(t, errOut.String(), "--config (or POTLUCK_CONFIG) is required")
}

func freeAddr(t *testing.T) string {
	addr, err := freeport.TCP()
	require.NoError(t, err)
	return addr
}

// TestServesAndDrainsOnStop runs the command as main does, with a context
// that SIGTERM would cancel.
func TestServesAndDrainsOnStop(t *testing.T) {
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		_, _ = io.WriteString(w, "hello")
	})}
	bln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = backend.Serve(bln) }()
	defer backend.Close()
	listen, admin := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "front.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(
		"listen: [%q]\nadmin: %q\nroutes: [{default: true, backends: [%q]}]\n", listen, admin, bln.Addr().String())), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	exit := make(chan int, 1)
	var logs bytes.Buffer
	go func() {
		exit <- run(ctx, []string{"--config", cfg, "--log-format", "json"}, func(string) string { return "" }, io.Discard, &logs)
	}()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + admin + "/status")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, 5*time.Second, 20*time.Millisecond)
	result := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + listen + "/")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	time.Sleep(50 * time.Millisecond) // the request is in flight
	cancel()                          // what SIGTERM does
	require.Equal(t, "hello", <-result, "in-flight request drained")
	require.Equal(t, 0, <-exit)
}
