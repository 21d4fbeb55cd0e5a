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

	"github.com/stretchr/testify/require"

	"potluck/front"
	"potluck/internal/cli"
	"potluck/internal/freeport"
)

func TestHelpDocumentsEveryFlagWithItsEnv(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		env, out, errb := cli.BufferEnv(nil)
		require.Equal(t, 0, run(context.Background(), args, env))
		require.Empty(t, errb.String(), "help goes to stdout")
		for _, f := range []string{"config", "check", "watch-interval", "core", "join-token", "join-token-file", "endpoint",
			"listen", "admin", "max-body", "pipeline", "shutdown-timeout", "log-level", "log-format", "pprof"} {
			require.Contains(t, out.String(), "--"+f+"  ["+cli.EnvName(f)+"]")
		}
		require.Contains(t, out.String(), "--version\n")
	}
}

func TestFlagsAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "join.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("file-token\n"), 0o600))
	cluster := []string{"--core", "http://127.0.0.1:1", "--endpoint", "127.0.0.1:51820"}
	for _, tc := range []struct {
		name  string
		args  []string
		vars  map[string]string
		check func(t *testing.T, f *flags)
	}{
		{"defaults", cluster, nil, func(t *testing.T, f *flags) {
			require.Equal(t, ":80", f.listen)
			require.Equal(t, "127.0.0.1:9080", f.admin)
			require.Equal(t, 60*time.Second, f.readT)
			require.Equal(t, cli.Size(256<<20), f.memory)
			require.Equal(t, defaultGCPercent, f.gcPercent)
			require.True(t, f.gcSet)
		}},
		{"GOGC wins over the default", cluster, map[string]string{"GOGC": "150"}, func(t *testing.T, f *flags) {
			require.False(t, f.gcSet, "the runtime's GOGC stays")
		}},
		{"the flag's twin wins over GOGC", cluster, map[string]string{"GOGC": "150", "POTLUCK_GC_PERCENT": "800"}, func(t *testing.T, f *flags) {
			require.Equal(t, 800, f.gcPercent)
			require.True(t, f.gcSet)
		}},
		{"environment", nil, map[string]string{"POTLUCK_CORE": "http://a:1,http://b:1", "POTLUCK_ENDPOINT": "1.2.3.4:5", "POTLUCK_READ_TIMEOUT": "5s", "POTLUCK_MEMORY": "1GiB", "POTLUCK_ACCESS_LOG": "true"},
			func(t *testing.T, f *flags) {
				require.Equal(t, cli.StringList{"http://a:1", "http://b:1"}, f.cores)
				require.Equal(t, 5*time.Second, f.readT)
				require.Equal(t, cli.Size(1<<30), f.memory)
				require.True(t, f.accessLog)
			}},
		{"empty variable turns the admin listener off", cluster, map[string]string{"POTLUCK_ADMIN": ""}, func(t *testing.T, f *flags) {
			require.Empty(t, f.admin)
		}},
		{"flag wins", append([]string{"--listen", ":8080", "--join-token", "flag-token"}, cluster...), map[string]string{"POTLUCK_LISTEN": ":9999", "POTLUCK_JOIN_TOKEN": "env-token"},
			func(t *testing.T, f *flags) {
				require.Equal(t, ":8080", f.listen)
				require.Equal(t, "flag-token", f.joinToken)
			}},
		{"h2 server", append([]string{"--https-listen", "127.0.0.1:8443", "--listen", "127.0.0.1:8080", "--h2-server", "native"}, cluster...), nil, func(t *testing.T, f *flags) {
			require.Equal(t, front.H2Native, f.https.H2Server)
		}},
		{"h2 server default", append([]string{"--https-listen", "127.0.0.1:8443", "--listen", "127.0.0.1:8080"}, cluster...), nil, func(t *testing.T, f *flags) {
			require.Equal(t, front.DefaultH2Server, f.https.H2Server)
		}},
		{"join token file", cluster, map[string]string{"POTLUCK_JOIN_TOKEN_FILE": tokenFile, "POTLUCK_JOIN_TOKEN": "env-token"}, func(t *testing.T, f *flags) {
			require.Equal(t, "file-token", f.joinToken, "the file wins over the inline token")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _, _ := cli.BufferEnv(tc.vars)
			f, err := parseFlags(tc.args, env)
			require.NoError(t, err)
			tc.check(t, f)
		})
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"unknown flag", []string{"--bogus"}, nil, "flag provided but not defined: -bogus"},
		{"no mode", nil, nil, "--config (or POTLUCK_CONFIG) is required"},
		{"both modes", []string{"--config", "x.yaml", "--core", "http://c"}, nil, "exclude each other"},
		{"no endpoint", []string{"--core", "http://c"}, nil, "--endpoint is required"},
		{"pipeline out of range", []string{"--core", "http://c", "--endpoint", "127.0.0.1:51820", "--pipeline", "65"}, nil, "--pipeline 65: 0 (off) to 64"},
		{"gc percent out of range", []string{"--config", "x.yaml", "--gc-percent", "0"}, nil, "--gc-percent 0: 25 to 10000"},
		{"pipeline stall out of range", []string{"--config", "x.yaml", "--pipeline-stall", "0s"}, nil, "--pipeline-stall 0s: 1ms to 1m"},
		{"bad variable", []string{"--config", "x.yaml"}, map[string]string{"POTLUCK_WATCH_INTERVAL": "often"}, `POTLUCK_WATCH_INTERVAL="often" (the environment twin of --watch-interval)`},
		{"unknown h2 server", []string{"--core", "http://c", "--endpoint", "127.0.0.1:51820", "--https-listen", ":8443", "--h2-server", "fast"}, nil, `--h2-server: h2 server "fast"`},
		{"bad log level", []string{"--config", "x.yaml", "--log-level", "loud"}, nil, "log level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, out, errb := cli.BufferEnv(tc.vars)
			require.Equal(t, 2, run(context.Background(), tc.args, env))
			require.Empty(t, out.String())
			require.Equal(t, 1, strings.Count(errb.String(), "\n"), errb.String())
			require.Contains(t, errb.String(), "potluck-front: ")
			require.Contains(t, errb.String(), tc.want)
		})
	}
}

func TestEnvAndCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(good, []byte("routes: [{default: true, backends: [127.0.0.1:9]}]\n"), 0o600))
	require.NoError(t, os.WriteFile(bad, []byte("routes: [{default: true, backends: [{addr: '127.0.0.1:9', weight: -2}]}]\n"), 0o600))
	env, out, errOut := cli.BufferEnv(map[string]string{"POTLUCK_CONFIG": good, "POTLUCK_CHECK": "true"})
	require.Equal(t, 0, run(context.Background(), nil, env), errOut.String())
	require.Contains(t, out.String(), "OK (1 listeners, 1 routes, 1 workers)")
	env, _, errOut = cli.BufferEnv(map[string]string{"POTLUCK_CONFIG": bad, "POTLUCK_CHECK": "true"})
	require.Equal(t, 1, run(context.Background(), nil, env))
	require.Contains(t, errOut.String(), "routes[0].backends[0].weight")
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
		exit <- run(ctx, []string{"--config", cfg, "--log-format", "json"}, cli.Env{Lookup: cli.MapLookup(nil), Stdout: io.Discard, Stderr: &logs})
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

func TestVersion(t *testing.T) {
	// --version wins over anything else on the line and over bad variables.
	for _, args := range [][]string{{"--version"}, {"--config", "missing.yaml", "--version"}} {
		env, out, errb := cli.BufferEnv(map[string]string{"POTLUCK_READ_TIMEOUT": "bogus"})
		require.Equal(t, 0, run(context.Background(), args, env))
		require.Empty(t, errb.String())
		require.Regexp(t, `^potluck-front \S+, commit \S+, go1\.\S+ \w+/\w+\n$`, out.String())
	}
}

func TestPublicURL(t *testing.T) {
	tests := []struct{ given, endpoint, listen, want, err string }{
		{"", "203.0.113.9:51820", ":80", "http://203.0.113.9", ""},
		{"", "203.0.113.9:51820", "0.0.0.0:8080", "http://203.0.113.9:8080", ""},
		{"", "[2001:db8::1]:51820", ":80", "http://[2001:db8::1]", ""},
		{"https://edge.example.net/", "203.0.113.9:51820", ":80", "https://edge.example.net", ""},
		{"edge.example.net", "203.0.113.9:51820", ":80", "", "want http(s)://host[:port]"},
	}
	for _, tc := range tests {
		got, err := publicURL(tc.given, tc.endpoint, tc.listen)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
}
