package table

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// counter is a real HTTP server on 127.0.0.1 that counts what it gets.
type counter struct {
	mu      sync.Mutex
	byKey   map[string]int // "GET host" -> requests
	conns   int
	bodies  []string
	srv     *httptest.Server
	delay   time.Duration
	failing bool
}

func newCounter(t *testing.T, delay time.Duration) *counter {
	c := &counter{byKey: map[string]int{}, delay: delay}
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.byKey[r.Method+" "+r.Host]++
		if r.Method == http.MethodPost {
			c.bodies = append(c.bodies, r.Header.Get("Content-Type")+" "+string(b))
		}
		failing := c.failing
		c.mu.Unlock()
		time.Sleep(c.delay)
		if failing {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
		}
		io.WriteString(w, "ok\n")
	}))
	c.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			c.mu.Lock()
			c.conns++
			c.mu.Unlock()
		}
	}
	c.srv.Start()
	t.Cleanup(c.srv.Close)
	return c
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Target
		err  bool
	}{
		{in: "local=http://127.0.0.1:8080/", want: Target{Name: "local", URL: "http://127.0.0.1:8080/"}},
		{in: "eu=http://127.0.0.1:80/,host=hello.test", want: Target{Name: "eu", URL: "http://127.0.0.1:80/", Host: "hello.test"}},
		{in: "noname", err: true},
		{in: "x=ftp://a", err: true},
		{in: "x=http://a,port=1", err: true},
	} {
		got, err := ParseTarget(tc.in)
		if tc.err {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got)
	}
}

func TestSummarise(t *testing.T) {
	for _, tc := range []struct {
		secs                     []float64
		mean, stddev, minS, maxS float64
	}{
		{secs: []float64{1}, mean: 1, minS: 1, maxS: 1},
		{secs: []float64{1, 2, 3}, mean: 2, stddev: 1, minS: 1, maxS: 3},
		{secs: []float64{0.5, 0.5, 0.5, 0.5}, mean: 0.5, minS: 0.5, maxS: 0.5},
	} {
		c := summarise("t", "GET", 10, tc.secs)
		require.InDelta(t, tc.mean, c.Mean, 1e-12)
		require.InDelta(t, tc.stddev, c.Stddev, 1e-12)
		require.Equal(t, tc.minS, c.Min)
		require.Equal(t, tc.maxS, c.Max)
		require.Equal(t, len(tc.secs), c.Runs)
	}
}

func TestRunCountsRequestsAndConnections(t *testing.T) {
	const delay = 2 * time.Millisecond
	a, b := newCounter(t, delay), newCounter(t, delay)
	cfg := Config{
		Targets: []Target{{Name: "a", URL: a.srv.URL + "/"}, {Name: "b", URL: b.srv.URL + "/", Host: "app.test"}},
		Counts:  []int{1, 3}, Runs: 4, Warmup: 1,
	}
	var cells []Cell
	cfg.OnCell = func(c Cell) { cells = append(cells, c) }
	res, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Len(t, res.Cells, 2*2*2)
	require.Equal(t, res.Cells, cells)

	// Per target: runs x (1+3) per method, plus one warm-up GET.
	require.Equal(t, map[string]int{"GET " + a.srv.Listener.Addr().String(): 4*4 + 1, "POST " + a.srv.Listener.Addr().String(): 4 * 4}, a.byKey)
	require.Equal(t, map[string]int{"GET app.test": 4*4 + 1, "POST app.test": 4 * 4}, b.byKey)
	// One connection per run (keep-alive within it), one for the warm-up.
	require.Equal(t, 4*2*2+1, a.conns)
	require.Contains(t, a.bodies[0], "application/json "+PostBody)

	for _, c := range res.Cells {
		require.Equal(t, 4, c.Runs)
		require.LessOrEqual(t, c.Min, c.Mean)
		require.LessOrEqual(t, c.Mean, c.Max)
		// A lower bound, not a performance figure: N requests each slept.
		require.GreaterOrEqual(t, c.Min, (time.Duration(c.Requests) * delay).Seconds())
	}
	// The paper's row order: for each count, GET then POST.
	require.Equal(t, "GET", res.Cells[0].Method)
	require.Equal(t, 1, res.Cells[0].Requests)
	require.Equal(t, "POST", res.Cells[1].Method)
	require.Equal(t, 3, res.Cells[2].Requests)
}

func TestRunFailsOnBadStatus(t *testing.T) {
	c := newCounter(t, 0)
	c.failing = true
	_, err := Run(context.Background(), Config{Targets: []Target{{Name: "x", URL: c.srv.URL}}, Runs: 1, Warmup: -1})
	require.ErrorContains(t, err, "status 502")
}

func TestConfigBounds(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Targets: []Target{{Name: "x", URL: "http://127.0.0.1:1"}}, Counts: []int{0}},
		{Targets: []Target{{Name: "x", URL: "http://127.0.0.1:1"}}, Runs: 100000},
		{Targets: []Target{{Name: "x", URL: "http://127.0.0.1:1"}}, Methods: []string{"DELETE"}},
		{Targets: []Target{{Name: "x", URL: "http://127.0.0.1:1"}, {Name: "x", URL: "http://127.0.0.1:2"}}},
	} {
		_, err := Run(context.Background(), cfg)
		require.Error(t, err)
	}
}

func sampleResult() *Result {
	r := &Result{Runs: 2, Counts: []int{1, 10, 25}, Methods: []string{"GET", "POST"},
		Targets: []Target{{Name: "local", URL: "http://127.0.0.1:1/"}}}
	for _, n := range r.Counts {
		for _, m := range r.Methods {
			r.Cells = append(r.Cells, summarise("local", m, n, []float64{0.001 * float64(n), 0.003 * float64(n)}))
		}
	}
	return r
}

func TestFormats(t *testing.T) {
	r := sampleResult()
	for _, tc := range []struct {
		format string
		paper  bool
		check  func(t *testing.T, out string)
	}{
		{format: "markdown", paper: true, check: func(t *testing.T, out string) {
			lines := strings.Split(strings.TrimSpace(out), "\n")
			require.Equal(t, "| measurement | local | paper: GKE (3 nodes) | paper: Front in europe-west3 | paper: Front in asia-east1 |", lines[0])
			// A GET block, then a POST block, as in the paper.
			require.Equal(t, "| GET, 1 request | 0.00200 ± 0.00141 [0.00100, 0.00300] | 0.18705 | 0.35105 | 0.65478 |", lines[2])
			require.True(t, strings.HasPrefix(lines[3], "| GET, 10 requests |"), lines[3])
			require.True(t, strings.HasPrefix(lines[4], "| GET, 25 requests |"), lines[4])
			require.True(t, strings.HasPrefix(lines[5], "| POST, 1 request |"), lines[5])
			require.Equal(t, "| POST, 25 requests | 0.05000 ± 0.03536 [0.02500, 0.07500] | 5.30200 | 10.03058 | 16.40684 |", lines[7])
		}},
		{format: "markdown", check: func(t *testing.T, out string) {
			require.NotContains(t, out, "paper")
			require.Contains(t, out, "| GET, 10 requests | 0.02000 ± ")
		}},
		{format: "csv", paper: true, check: func(t *testing.T, out string) {
			rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
			require.NoError(t, err)
			require.Equal(t, CSVHeader, rows[0])
			require.Len(t, rows, 1+6+3*6)
			require.Equal(t, []string{"local", "POST", "10", "2", "0.02000", "0.01414", "0.01000", "0.03000"}, rows[4])
			require.Equal(t, "paper: GKE (3 nodes)", rows[7][0])
			v, err := strconv.ParseFloat(rows[7][4], 64)
			require.NoError(t, err)
			require.Equal(t, 0.18705, v)
		}},
		{format: "json", paper: true, check: func(t *testing.T, out string) {
			var got struct {
				Runs    int      `json:"runs"`
				Counts  []int    `json:"counts"`
				Methods []string `json:"methods"`
				Targets []Target `json:"targets"`
				Cells   []Cell   `json:"cells"`
				Paper   []struct {
					Name    string                        `json:"name"`
					Seconds map[string]map[string]float64 `json:"seconds"`
				} `json:"paper"`
			}
			dec := json.NewDecoder(strings.NewReader(out))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&got))
			require.Equal(t, 2, got.Runs)
			require.Equal(t, r.Cells, got.Cells)
			require.Len(t, got.Paper, 3)
			require.Equal(t, 16.40684, got.Paper[2].Seconds["POST"]["25"])
		}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, Write(&buf, tc.format, r, Options{Paper: tc.paper}))
			tc.check(t, buf.String())
		})
	}
	require.Error(t, Write(io.Discard, "xml", r, Options{}))
}
