// Package table measures the paper's Table 1: for every target, the mean
// time of N sequential GET and POST requests (N = 1, 10, 25) over R runs
// (15 in the paper), and writes the table in the paper's layout as
// Markdown, CSV or JSON with the paper's published columns alongside.
//
// One run is the wall time of N sequential requests on one fresh keep-alive
// client: the connection is set up once per run and reused for its N
// requests, as a script that opens a session and loops would see it.
package table

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"
	"unicode"
)

// Target is one system to measure.
type Target struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Host overrides the Host header (a Front routes by it); "" keeps the URL's.
	Host string `json:"host,omitempty"`
}

// ParseTarget reads "name=URL[,host=HOST]".
func ParseTarget(s string) (Target, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" || rest == "" {
		return Target{}, fmt.Errorf("target %q: want name=URL[,host=HOST]", s)
	}
	if strings.ContainsFunc(name, unicode.IsSpace) {
		return Target{}, fmt.Errorf("target name %q has a space: use one word such as %q (spaces separate targets in POTLUCK_TARGET)", name, strings.Join(strings.Fields(name), "-"))
	}
	t := Target{Name: name}
	parts := strings.Split(rest, ",")
	t.URL = parts[0]
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k != "host" || v == "" {
			return Target{}, fmt.Errorf("target %q: unknown option %q (only host=HOST)", s, p)
		}
		t.Host = v
	}
	if !strings.HasPrefix(t.URL, "http://") && !strings.HasPrefix(t.URL, "https://") {
		return Target{}, fmt.Errorf("target %q: URL must start with http:// or https://", s)
	}
	return t, nil
}

// PostBody is what a POST sends: a small JSON object the sample app
// (bench/app) stores and answers with 201.
const PostBody = `{"name":"potluck","note":"table 1"}`

// Config says what to measure.
type Config struct {
	Targets []Target
	// Counts are the numbers of sequential requests per run (default 1, 10, 25).
	Counts []int
	// Methods are measured in this order for each count (default GET, POST).
	Methods []string
	// Runs per cell (default 15, the paper's).
	Runs int
	// Timeout bounds one request (default 30s).
	Timeout time.Duration
	// Warmup requests per target before measuring (negative: none; 0: 2):
	// they open tunnels and the Front's upstream connections, which the
	// paper's long-running clusters had open already.
	Warmup int
	// OnCell, if set, is called after each cell is measured (progress).
	OnCell func(Cell)
}

func (c *Config) withDefaults() error {
	if len(c.Targets) == 0 {
		return errors.New("table: no targets")
	}
	if len(c.Counts) == 0 {
		c.Counts = []int{1, 10, 25}
	}
	if len(c.Methods) == 0 {
		c.Methods = []string{http.MethodGet, http.MethodPost}
	}
	if c.Runs == 0 {
		c.Runs = 15
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = 2
	}
	for _, n := range c.Counts {
		if n < 1 || n > 10000 {
			return fmt.Errorf("table: request count %d outside 1..10000", n)
		}
	}
	seen := map[string]bool{}
	for _, t := range c.Targets {
		if seen[t.Name] {
			// Cells are found by target name: a second target of the same
			// name would print the first one's numbers.
			return fmt.Errorf("table: target name %q given twice; give each target its own name", t.Name)
		}
		seen[t.Name] = true
	}
	if c.Runs < 1 || c.Runs > 1000 {
		return fmt.Errorf("table: runs %d outside 1..1000", c.Runs)
	}
	for i, m := range c.Methods {
		m = strings.ToUpper(m)
		if m != http.MethodGet && m != http.MethodPost {
			return fmt.Errorf("table: method %q: only GET and POST", m)
		}
		c.Methods[i] = m
	}
	return nil
}

// Cell is one measurement for one target: Runs runs of Requests sequential
// requests. Seconds are per run (all N requests), as in the paper.
type Cell struct {
	Target   string  `json:"target"`
	Method   string  `json:"method"`
	Requests int     `json:"requests"`
	Runs     int     `json:"runs"`
	Mean     float64 `json:"mean_s"`
	Stddev   float64 `json:"stddev_s"`
	Min      float64 `json:"min_s"`
	Max      float64 `json:"max_s"`
}

// Result is a measured table.
type Result struct {
	Runs    int      `json:"runs"`
	Counts  []int    `json:"counts"`
	Methods []string `json:"methods"`
	Targets []Target `json:"targets"`
	Cells   []Cell   `json:"cells"`
}

// Cell returns the cell of target, method and count.
func (r *Result) Cell(target, method string, requests int) (Cell, bool) {
	for _, c := range r.Cells {
		if c.Target == target && c.Method == method && c.Requests == requests {
			return c, true
		}
	}
	return Cell{}, false
}

// Run measures every cell for every target, one after another.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	res := &Result{Runs: cfg.Runs, Counts: cfg.Counts, Methods: cfg.Methods, Targets: cfg.Targets}
	for _, t := range cfg.Targets {
		if cfg.Warmup > 0 {
			if _, _, err := session(ctx, cfg.Timeout, t, http.MethodGet, cfg.Warmup); err != nil {
				return nil, fmt.Errorf("table: %s: warm-up: %w", t.Name, err)
			}
		}
		for _, n := range cfg.Counts {
			for _, m := range cfg.Methods {
				cell, err := measure(ctx, cfg, t, m, n)
				if err != nil {
					return nil, err
				}
				res.Cells = append(res.Cells, cell)
				if cfg.OnCell != nil {
					cfg.OnCell(cell)
				}
			}
		}
	}
	return res, nil
}

func measure(ctx context.Context, cfg Config, t Target, method string, n int) (Cell, error) {
	secs := make([]float64, 0, cfg.Runs)
	for run := range cfg.Runs {
		took, i, err := session(ctx, cfg.Timeout, t, method, n)
		if err != nil {
			return Cell{}, fmt.Errorf("table: %s %s x%d, run %d, request %d: %w", t.Name, method, n, run+1, i+1, err)
		}
		secs = append(secs, took.Seconds())
	}
	return summarise(t.Name, method, n, secs), nil
}

// session sends n sequential requests on one fresh keep-alive client, then
// closes its connection. took is the time from creating the client to the
// last answer (the close is not counted); on an error i is the index of the
// failed request.
func session(ctx context.Context, timeout time.Duration, t Target, method string, n int) (took time.Duration, i int, err error) {
	start := time.Now()
	client := newClient(timeout)
	defer client.CloseIdleConnections()
	for i = range n {
		if err = do(ctx, client, t, method); err != nil {
			return 0, i, err
		}
	}
	return time.Since(start), n, nil
}

func summarise(target, method string, n int, secs []float64) Cell {
	c := Cell{Target: target, Method: method, Requests: n, Runs: len(secs), Min: math.Inf(1)}
	var sum float64
	for _, s := range secs {
		sum += s
		c.Min = min(c.Min, s)
		c.Max = max(c.Max, s)
	}
	c.Mean = sum / float64(len(secs))
	if len(secs) > 1 {
		var sq float64
		for _, s := range secs {
			sq += (s - c.Mean) * (s - c.Mean)
		}
		c.Stddev = math.Sqrt(sq / float64(len(secs)-1))
	}
	return c
}

// newClient is a keep-alive client with one connection per host: the N
// requests of a run share it.
func newClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:               nil, // the benchmark goes where it is told, never via a proxy
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

func do(ctx context.Context, client *http.Client, t Target, method string) error {
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(PostBody)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.URL, body)
	if err != nil {
		return err
	}
	if t.Host != "" {
		req.Host = t.Host
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	// Read it all: the connection goes back to the pool only when drained.
	var buf bytes.Buffer
	_, err = io.Copy(&buf, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("status %d: %.200s", resp.StatusCode, strings.TrimSpace(buf.String()))
	}
	return nil
}
