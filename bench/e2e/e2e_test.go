package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/front/standalone"
)

const wrkSample = `Running 3s test @ http://127.0.0.1:40001/
  2 threads and 64 connections
  Latency Distribution
     50%    1.46ms
     75%    2.01ms
     90%    3.10ms
     99%  205.06ms
  90000 requests in 3.00s, 12.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:  30000.12
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkSample)
	require.NoError(t, err)
	require.InDelta(t, 30000.12, r.rps, 0.001)
	require.InDelta(t, 90000, r.requests, 0)
	require.Equal(t, 1460*time.Microsecond, r.p50)
	require.Equal(t, 205060*time.Microsecond, r.p99)
	require.Equal(t, 6, r.errors, "non-2xx and socket errors both count")
	_, err = parseWrk("unable to connect to 127.0.0.1:1 Connection refused")
	require.ErrorContains(t, err, "no Requests/sec")
}

func TestMedianTakesEachFigureAlone(t *testing.T) {
	m := median([]measured{
		{wrkResult: wrkResult{rps: 3, p99: 9}, cpu: 1},
		{wrkResult: wrkResult{rps: 1, p99: 7}, cpu: 3},
		{wrkResult: wrkResult{rps: 2, p99: 8}, cpu: 2},
	})
	require.InDelta(t, 2, m.rps, 0)
	require.Equal(t, time.Duration(8), m.p99)
	require.Equal(t, time.Duration(2), m.cpu)
}

// The standalone Front's generated config must load, with one route per
// domain to the same upstreams NGINX gets.
func TestStandaloneConfigLoads(t *testing.T) {
	dir := t.TempDir()
	apps := []app{
		{name: "sample", domain: sampleDomain, upstreams: []string{"127.0.9.2:5000", "127.0.9.3:5000"}},
		{name: "fast", domain: fastDomain, upstreams: []string{"127.0.9.2:5001", "127.0.9.3:5001"}},
	}
	c, _, err := startStandalone("/bin/true", dir, apps)
	require.NoError(t, err)
	c.stop()
	cfg, _, err := standalone.Load(filepath.Join(dir, "front-standalone.yaml"))
	require.NoError(t, err)
	require.Len(t, cfg.Routes, 2)
	require.Equal(t, []string{fastDomain}, cfg.Routes[1].Hosts)
	require.Len(t, cfg.Routes[1].Backends, 2)
}

func TestNginxConfigServesEveryDomain(t *testing.T) {
	apps := []app{{domain: sampleDomain, upstreams: []string{"127.0.9.2:5000"}}, {domain: fastDomain, upstreams: []string{"127.0.9.2:5001"}}}
	c, _, err := startNginx("/bin/true", apps)
	require.NoError(t, err)
	conf, err := os.ReadFile(filepath.Join(c.cmd.Args[2], "nginx.conf"))
	require.NoError(t, err)
	c.stop()
	for _, want := range []string{"server_name " + sampleDomain, "server_name " + fastDomain, "server 127.0.9.2:5001 max_fails=1", "keepalive 64", "client_max_body_size 0"} {
		require.True(t, strings.Contains(string(conf), want), want)
	}
	require.NoDirExists(t, c.cmd.Args[2], "its directory goes with it")
}
