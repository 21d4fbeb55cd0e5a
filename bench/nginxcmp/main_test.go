package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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

func TestConfigsAreEquivalent(t *testing.T) {
	dir := t.TempDir()
	backends := []string{"127.0.0.1:1001", "127.0.0.1:1002"}
	require.NoError(t, writeNginxConf(dir, "127.0.0.1:2000", backends))
	require.NoError(t, writeFrontConf(dir, "127.0.0.1:2001", "127.0.0.1:2002", backends))
}
