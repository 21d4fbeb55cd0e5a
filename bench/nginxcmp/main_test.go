package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/front/standalone"
	"potluck/internal/cli"
	"potluck/lb"
)

const wrkSample = `Running 10s test @ http://127.0.0.1:40001/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    3.01ms  60.12ms   95.12%
    Req/Sec    15.10k     1.20k   18.00k    70.00%
  Latency Distribution
     50%    1.46ms
     75%    2.01ms
     90%    3.10ms
     99%  205.06ms
  300000 requests in 10.00s, 40.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  30000.12
Transfer/sec:      4.00MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkSample)
	require.NoError(t, err)
	require.InDelta(t, 30000.12, r.rps, 0.001)
	require.Equal(t, 1460*time.Microsecond, r.p50)
	require.Equal(t, 205060*time.Microsecond, r.p99)
	require.Equal(t, 3, r.errors)

	_, err = parseWrk("unable to connect to 127.0.0.1:1 Connection refused")
	require.Error(t, err)
}

func TestMedian(t *testing.T) {
	m := median([]wrkResult{{rps: 3, p99: 9}, {rps: 1, p99: 7}, {rps: 2, p99: 8}})
	require.Equal(t, 2.0, m.rps)
	require.Equal(t, time.Duration(8), m.p99)
}

// The two proxies get the same upstream: same servers, max_fails=1,
// fail_timeout=20s, keep-alive, the client's Host passed on, X-Forwarded-*
// and X-Real-IP added, no access log.
func TestConfigsAreEquivalent(t *testing.T) {
	dir := t.TempDir()
	backends := []string{"127.0.0.1:1001", "127.0.0.1:1002"}
	require.NoError(t, writeNginxConf(dir, "127.0.0.1:2000", backends))
	require.NoError(t, writeFrontConf(dir, "front.yaml", "127.0.0.1:2001", "127.0.0.1:2002", backends, ""))
	require.NoError(t, writeFrontConf(dir, "front-pipe.yaml", "127.0.0.1:2003", "127.0.0.1:2004", backends,
		"backend_pool:\n  pipeline: 2\n  pipeline_depth: 0\n"))
	ngx, err := os.ReadFile(filepath.Join(dir, "nginx.conf"))
	require.NoError(t, err)
	for _, want := range []string{
		"worker_processes auto;", "access_log off;", "keepalive 64;", "proxy_http_version 1.1;",
		`proxy_set_header Connection "";`, "proxy_set_header Host $host;",
		// the headers potluck-front adds by default, so both do the same work
		"proxy_set_header X-Real-IP $remote_addr;", "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
		"proxy_set_header X-Forwarded-Proto $scheme;", "proxy_set_header X-Forwarded-Host $host;",
		"server 127.0.0.1:1001 max_fails=1 fail_timeout=20s;", "server 127.0.0.1:1002 max_fails=1 fail_timeout=20s;",
	} {
		require.Contains(t, string(ngx), want)
	}
	cfg, _, err := standalone.Load(filepath.Join(dir, "front.yaml"))
	require.NoError(t, err)
	require.False(t, cfg.Options.AccessLog)
	require.Len(t, cfg.Routes, 1)
	require.True(t, cfg.Routes[0].Default)
	for i, b := range cfg.Routes[0].Backends {
		require.Equal(t, lb.Backend{Addr: backends[i], MaxFails: 1, FailTimeout: 20 * time.Second}, b)
	}
	require.Zero(t, cfg.Options.PipelineBackends, "the plain contender does not pipeline")
	pipe, _, err := standalone.Load(filepath.Join(dir, "front-pipe.yaml"))
	require.NoError(t, err)
	require.Equal(t, 2, pipe.Options.PipelineBackends)
	require.Equal(t, cfg.Routes, pipe.Routes, "same upstream otherwise")
}

func TestSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		vars map[string]string
		want string // error substring; "" for success
	}{
		{name: "defaults"},
		{name: "environment twin", vars: map[string]string{"POTLUCK_ROUNDS": "5"}},
		{name: "bad environment twin", vars: map[string]string{"POTLUCK_DURATION": "long"}, want: `POTLUCK_DURATION="long" (the environment twin of --duration)`},
		{name: "zero rounds", args: []string{"--rounds", "0"}, want: "at least 1"},
		{name: "sub-second runs", args: []string{"--duration", "500ms"}, want: "at least 1s"},
		{name: "unknown flag", args: []string{"--bogus"}, want: "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, out, _ := cli.BufferEnv(tc.vars)
			s, err := parseSettings(tc.args, env)
			if tc.want != "" {
				require.ErrorContains(t, err, tc.want)
				require.Equal(t, 2, cli.ExitCode(err))
				return
			}
			require.NoError(t, err)
			require.Equal(t, 10*time.Second, s.duration)
			require.Empty(t, out.String())
		})
	}
	env, out, _ := cli.BufferEnv(nil)
	_, err := parseSettings([]string{"--help"}, env)
	require.Equal(t, 0, cli.ExitCode(err))
	require.Contains(t, out.String(), "--front-gomaxprocs  [POTLUCK_FRONT_GOMAXPROCS]")
}
