// Package load is a closed-loop HTTP load generator: C workers each send a
// request, wait for the answer and send the next, until a duration or a
// request count is reached (always bounded by both). It reports req/s and
// latency percentiles from the sorted samples, and can print a live
// progress line once a second.
package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits keep every run bounded even when asked for "forever".
const (
	MaxDuration    = time.Hour
	MaxCount       = 100_000_000
	MaxConcurrency = 10_000
	// maxSamples caps stored latencies (8 bytes each); beyond it the run
	// still counts requests but percentiles cover the first maxSamples.
	maxSamples = 20_000_000
)

// Config says what to send and for how long.
type Config struct {
	URL string
	// Host overrides the Host header; "" keeps the URL's.
	Host        string
	Method      string // default GET
	Body        string // sent with POST/PUT/PATCH
	ContentType string // default application/json when Body is set
	// Concurrency is the number of workers, each with its own connection.
	Concurrency int
	// Duration ends the run (default 10s when Count is 0; never above MaxDuration).
	Duration time.Duration
	// Count ends the run after this many requests (0: only Duration counts).
	Count int
	// Timeout bounds one request (default 10s).
	Timeout time.Duration
	// Progress, if set, receives a live line once per ProgressEvery (default 1s).
	Progress      io.Writer
	ProgressEvery time.Duration
}

func (c *Config) withDefaults() error {
	if !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
		return fmt.Errorf("load: URL %q must start with http:// or https://", c.URL)
	}
	if c.Method == "" {
		c.Method = http.MethodGet
	}
	c.Method = strings.ToUpper(c.Method)
	if c.Body != "" && c.ContentType == "" {
		c.ContentType = "application/json"
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.Duration == 0 && c.Count == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Duration == 0 {
		c.Duration = MaxDuration // a count alone is still bounded in time
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = time.Second
	}
	switch {
	case c.Concurrency < 1 || c.Concurrency > MaxConcurrency:
		return fmt.Errorf("load: concurrency %d outside 1..%d", c.Concurrency, MaxConcurrency)
	case c.Duration < 0 || c.Duration > MaxDuration:
		return fmt.Errorf("load: duration %v outside 0..%v", c.Duration, MaxDuration)
	case c.Count < 0 || c.Count > MaxCount:
		return fmt.Errorf("load: count %d outside 0..%d", c.Count, MaxCount)
	}
	return nil
}

// Report is the outcome of a run (JSON: durations in seconds, see MarshalJSON).
type Report struct {
	Requests  int
	Errors    int         // transport errors and non-2xx answers
	Statuses  map[int]int // answers by status code
	FirstErr  string
	Elapsed   time.Duration
	PerSecond float64
	Latency   Percentiles
}

// MarshalJSON writes the report with durations in seconds.
func (r *Report) MarshalJSON() ([]byte, error) {
	l := r.Latency
	return json.Marshal(struct {
		Requests  int                `json:"requests"`
		Errors    int                `json:"errors"`
		Statuses  map[int]int        `json:"statuses"`
		FirstErr  string             `json:"first_error,omitempty"`
		ElapsedS  float64            `json:"elapsed_s"`
		PerSecond float64            `json:"requests_per_second"`
		LatencyS  map[string]float64 `json:"latency_s"`
	}{r.Requests, r.Errors, r.Statuses, r.FirstErr, r.Elapsed.Seconds(), r.PerSecond, map[string]float64{
		"mean": l.Mean.Seconds(), "p50": l.P50.Seconds(), "p90": l.P90.Seconds(), "p99": l.P99.Seconds(), "max": l.Max.Seconds(),
	}})
}

// Percentiles of request latency (successful and failed requests alike).
type Percentiles struct {
	Mean, P50, P90, P99, Max time.Duration
}

type worker struct {
	samples  []time.Duration
	statuses map[int]int
	errors   int
	firstErr string
}

// Run sends load until ctx ends, Duration passes or Count requests are done.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()

	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: cfg.Concurrency,
		MaxConnsPerHost:     cfg.Concurrency,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: cfg.Timeout}

	var issued, done, failed atomic.Int64
	workers := make([]*worker, cfg.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		w := &worker{statuses: map[int]int{}}
		workers[i] = w
		wg.Go(func() {
			for ctx.Err() == nil {
				if cfg.Count > 0 && issued.Add(1) > int64(cfg.Count) {
					return
				}
				t0 := time.Now()
				code, err := send(ctx, client, cfg)
				lat := time.Since(t0)
				if err != nil && ctx.Err() != nil {
					return // cut off by the end of the run: not a result
				}
				if len(w.samples) < maxSamples/cfg.Concurrency {
					w.samples = append(w.samples, lat)
				}
				if err != nil || code < 200 || code > 299 {
					w.errors++
					failed.Add(1)
					if w.firstErr == "" {
						if err != nil {
							w.firstErr = err.Error()
						} else {
							w.firstErr = fmt.Sprintf("status %d", code)
						}
					}
				}
				if err == nil {
					w.statuses[code]++
				}
				done.Add(1)
			}
		})
	}

	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	if cfg.Progress != nil {
		progressDone.Go(func() {
			tick := time.NewTicker(cfg.ProgressEvery)
			defer tick.Stop()
			var last int64
			lastT := start
			for {
				select {
				case <-stopProgress:
					fmt.Fprint(cfg.Progress, "\r\033[K")
					return
				case now := <-tick.C:
					n := done.Load()
					rate := float64(n-last) / now.Sub(lastT).Seconds()
					last, lastT = n, now
					fmt.Fprintf(cfg.Progress, "\r\033[K%5.0fs  %d requests  %.0f req/s  %d errors",
						now.Sub(start).Seconds(), n, rate, failed.Load())
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopProgress)
	progressDone.Wait()

	rep := &Report{Statuses: map[int]int{}, Elapsed: elapsed}
	var all []time.Duration
	for _, w := range workers {
		all = append(all, w.samples...)
		rep.Errors += w.errors
		for k, v := range w.statuses {
			rep.Statuses[k] += v
		}
		if rep.FirstErr == "" {
			rep.FirstErr = w.firstErr
		}
	}
	rep.Requests = int(done.Load())
	rep.Latency = Summarise(all)
	if elapsed > 0 {
		rep.PerSecond = float64(rep.Requests) / elapsed.Seconds()
	}
	if rep.Requests == 0 {
		return rep, errors.New("load: no request completed")
	}
	return rep, nil
}

// Summarise returns the percentiles of samples (nearest rank on the sorted
// samples). It sorts samples in place.
func Summarise(samples []time.Duration) Percentiles {
	if len(samples) == 0 {
		return Percentiles{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	rank := func(p float64) time.Duration {
		// Nearest rank: the smallest sample with at least p of them at or below it.
		i := int(float64(len(samples))*p+0.999999999) - 1
		return samples[min(max(i, 0), len(samples)-1)]
	}
	return Percentiles{
		Mean: sum / time.Duration(len(samples)),
		P50:  rank(0.50), P90: rank(0.90), P99: rank(0.99),
		Max: samples[len(samples)-1],
	}
}

func send(ctx context.Context, client *http.Client, cfg Config) (int, error) {
	var body io.Reader
	if cfg.Body != "" {
		body = strings.NewReader(cfg.Body)
	}
	req, err := http.NewRequestWithContext(ctx, cfg.Method, cfg.URL, body)
	if err != nil {
		return 0, err
	}
	if cfg.Host != "" {
		req.Host = cfg.Host
	}
	if cfg.Body != "" {
		req.Header.Set("Content-Type", cfg.ContentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 16<<20))
	resp.Body.Close()
	return resp.StatusCode, err
}

// WriteText writes a human summary.
func WriteText(w io.Writer, r *Report) error {
	codes := make([]int, 0, len(r.Statuses))
	for c := range r.Statuses {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var st []string
	for _, c := range codes {
		st = append(st, fmt.Sprintf("%d×%d", r.Statuses[c], c))
	}
	l := r.Latency
	_, err := fmt.Fprintf(w, "requests  %d in %.2fs, %.0f req/s, %d errors\nstatuses  %s\nlatency   mean %v  p50 %v  p90 %v  p99 %v  max %v\n",
		r.Requests, r.Elapsed.Seconds(), r.PerSecond, r.Errors, strings.Join(st, " "),
		round(l.Mean), round(l.P50), round(l.P90), round(l.P99), round(l.Max))
	if err == nil && r.FirstErr != "" {
		_, err = fmt.Fprintf(w, "first error: %s\n", r.FirstErr)
	}
	return err
}

func round(d time.Duration) time.Duration {
	switch {
	case d > time.Second:
		return d.Round(time.Millisecond)
	case d > time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// WriteJSON writes the report as one JSON object.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
