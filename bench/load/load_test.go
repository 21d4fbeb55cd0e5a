package load

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func server(t *testing.T, h http.HandlerFunc) *httptest.Server {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func TestSummarise(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	var hundred []int
	for i := 100; i >= 1; i-- {
		hundred = append(hundred, i)
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		want Percentiles
	}{
		{name: "empty", in: nil, want: Percentiles{}},
		{name: "one", in: ms(7), want: Percentiles{Mean: 7 * time.Millisecond, P50: 7 * time.Millisecond, P90: 7 * time.Millisecond, P99: 7 * time.Millisecond, Max: 7 * time.Millisecond}},
		{name: "1..100 unsorted", in: ms(hundred...), want: Percentiles{Mean: 50500 * time.Microsecond, P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, Summarise(tc.in)) })
	}
}

func TestCountIsHonoured(t *testing.T) {
	var got atomic.Int64
	var hosts atomic.Value
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		hosts.Store(r.Host)
		b, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPost && string(b) != `{"a":"b"}` {
			http.Error(w, "bad body", 400)
			return
		}
		io.WriteString(w, "ok")
	})
	for _, tc := range []struct {
		method string
		c, n   int
	}{{"GET", 1, 10}, {"GET", 4, 101}, {"POST", 3, 30}} {
		got.Store(0)
		rep, err := Run(context.Background(), Config{URL: s.URL, Host: "app.test", Method: tc.method, Body: map[bool]string{true: `{"a":"b"}`}[tc.method == "POST"], Concurrency: tc.c, Count: tc.n})
		require.NoError(t, err)
		require.Equal(t, tc.n, rep.Requests)
		require.Equal(t, int64(tc.n), got.Load())
		require.Zero(t, rep.Errors, rep.FirstErr)
		require.Equal(t, map[int]int{200: tc.n}, rep.Statuses)
		require.Equal(t, "app.test", hosts.Load())
		require.LessOrEqual(t, rep.Latency.P50, rep.Latency.P99)
		require.LessOrEqual(t, rep.Latency.P99, rep.Latency.Max)
	}
}

func TestDurationStopsTheRun(t *testing.T) {
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond)
		io.WriteString(w, "ok")
	})
	start := time.Now()
	rep, err := Run(context.Background(), Config{URL: s.URL, Concurrency: 2, Duration: 300 * time.Millisecond})
	require.NoError(t, err)
	require.Less(t, time.Since(start), 10*time.Second, "a bounded run must stop by itself")
	require.Positive(t, rep.Requests)
	require.Positive(t, rep.PerSecond)
}

func TestCountAloneIsBoundedInTime(t *testing.T) {
	cfg := Config{URL: "http://127.0.0.1:1/", Count: 5}
	require.NoError(t, cfg.withDefaults())
	require.Equal(t, MaxDuration, cfg.Duration)
	cfg = Config{URL: "http://127.0.0.1:1/"}
	require.NoError(t, cfg.withDefaults())
	require.Equal(t, 10*time.Second, cfg.Duration)
}

func TestErrorsAreCounted(t *testing.T) {
	var n atomic.Int64
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			http.Error(w, "nope", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	rep, err := Run(context.Background(), Config{URL: s.URL, Count: 20})
	require.NoError(t, err)
	require.Equal(t, 10, rep.Errors)
	require.Equal(t, map[int]int{200: 10, 503: 10}, rep.Statuses)
	require.Equal(t, "status 503", rep.FirstErr)
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{URL: "127.0.0.1:80"},
		{URL: "http://127.0.0.1:1", Concurrency: -1},
		{URL: "http://127.0.0.1:1", Duration: 2 * MaxDuration},
		{URL: "http://127.0.0.1:1", Count: -3},
	} {
		_, err := Run(context.Background(), cfg)
		require.Error(t, err)
	}
}

func TestProgressAndOutput(t *testing.T) {
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		io.WriteString(w, "ok")
	})
	var progress bytes.Buffer
	rep, err := Run(context.Background(), Config{URL: s.URL, Duration: 250 * time.Millisecond, Progress: &progress, ProgressEvery: 50 * time.Millisecond})
	require.NoError(t, err)
	require.Contains(t, progress.String(), "req/s")

	var text bytes.Buffer
	require.NoError(t, WriteText(&text, rep))
	require.Contains(t, text.String(), "p99")
	var js bytes.Buffer
	require.NoError(t, WriteJSON(&js, rep))
	var back map[string]any
	require.NoError(t, json.Unmarshal(js.Bytes(), &back))
	for _, k := range []string{"requests", "errors", "requests_per_second", "latency_s", "elapsed_s"} {
		require.Contains(t, back, k)
	}
	require.True(t, strings.Contains(js.String(), `"p99"`))
}
