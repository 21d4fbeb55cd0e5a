package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/bench/wrk"
	"potluck/front/standalone"
)

func TestMedianTakesEachFigureAlone(t *testing.T) {
	m := median([]measured{
		{Result: wrk.Result{RPS: 3, P99: 9}, cpu: 1},
		{Result: wrk.Result{RPS: 1, P99: 7}, cpu: 3},
		{Result: wrk.Result{RPS: 2, P99: 8}, cpu: 2},
	})
	require.InDelta(t, 2, m.RPS, 0)
	require.Equal(t, time.Duration(8), m.P99)
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
	conf, err := os.ReadFile(filepath.Join(c.dir, "nginx.conf"))
	require.NoError(t, err)
	c.stop()
	for _, want := range []string{"server_name " + sampleDomain, "server_name " + fastDomain, "server 127.0.9.2:5001 max_fails=1", "keepalive 64", "client_max_body_size 0"} {
		require.True(t, strings.Contains(string(conf), want), want)
	}
	require.NoDirExists(t, c.dir, "its directory goes with it")
}

func TestSumCounter(t *testing.T) {
	text := `# HELP potluck_back_forward_accepted_total Tunnel connections relayed to an instance.
# TYPE potluck_back_forward_accepted_total counter
potluck_back_forward_accepted_total{port="5000"} 64
potluck_back_forward_accepted_total{port="5001"} 3
potluck_back_forward_accepted_totally 9
potluck_back_forward_refused_total{port="5000"} 2
`
	n, err := sumCounter(strings.NewReader(text), "potluck_back_forward_accepted_total")
	require.NoError(t, err)
	require.InDelta(t, 67, n, 0)
	_, err = sumCounter(strings.NewReader("potluck_back_forward_accepted_total{port=\"1\"} x\n"), "potluck_back_forward_accepted_total")
	require.Error(t, err)
}
