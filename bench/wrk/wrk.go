// Package wrk runs the wrk load generator (closed loop: every connection
// sends its next request when the answer is in) and reads its report, for
// the benchmarks that compare proxies with it.
package wrk

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// Options is one run.
type Options struct {
	Bin      string // default "wrk"
	Threads  int
	Conns    int
	Duration time.Duration // whole seconds
	URL      string
	Host     string // Host header; "" sends the URL's
}

// Result is what wrk reported.
type Result struct {
	RPS      float64
	Requests float64
	P50, P99 time.Duration
	// Errors counts non-2xx/3xx answers and socket errors.
	Errors int
}

// Run runs wrk, bounded by its duration plus 30 s.
func Run(ctx context.Context, o Options) (Result, error) {
	bin := o.Bin
	if bin == "" {
		bin = "wrk"
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration+30*time.Second)
	defer cancel()
	args := []string{"-t" + strconv.Itoa(o.Threads), "-c" + strconv.Itoa(o.Conns),
		"-d" + strconv.Itoa(int(o.Duration.Seconds())) + "s", "--latency"}
	if o.Host != "" {
		args = append(args, "-H", "Host: "+o.Host)
	}
	out, err := exec.CommandContext(ctx, bin, append(args, o.URL)...).CombinedOutput()
	if err != nil {
		return Result{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	return Parse(string(out))
}

var (
	reRequests = regexp.MustCompile(`(\d+) requests in`)
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reP50      = regexp.MustCompile(`\s50%\s+([0-9.]+)(us|ms|s)`)
	reP99      = regexp.MustCompile(`\s99%\s+([0-9.]+)(us|ms|s)`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	reSock     = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// Parse reads wrk's report (with --latency).
func Parse(out string) (Result, error) {
	var r Result
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, errors.New("no Requests/sec in wrk output: " + out)
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := reRequests.FindStringSubmatch(out); m != nil {
		r.Requests, _ = strconv.ParseFloat(m[1], 64)
	}
	var err error
	if r.P50, err = latency(reP50, out); err != nil {
		return r, err
	}
	if r.P99, err = latency(reP99, out); err != nil {
		return r, err
	}
	if m := reNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.Errors += n
	}
	if m := reSock.FindStringSubmatch(out); m != nil {
		for _, v := range m[1:] {
			n, _ := strconv.Atoi(v)
			r.Errors += n
		}
	}
	return r, nil
}

func latency(re *regexp.Regexp, out string) (time.Duration, error) {
	m := re.FindStringSubmatch(out)
	if m == nil {
		return 0, errors.New("no latency percentile in wrk output")
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[2]]
	return time.Duration(v * float64(unit)), nil
}

// Short rounds a latency for a table to the precision wrk reports (two
// decimals of its unit).
func Short(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(100 * time.Nanosecond)
	}
}

// MedianOf is the median of one figure over rounds (the upper one for an
// even count), each figure on its own, as the benchmark tables report them.
func MedianOf[T any](rounds []T, get func(T) float64) float64 {
	if len(rounds) == 0 {
		return 0
	}
	v := make([]float64, len(rounds))
	for i, r := range rounds {
		v[i] = get(r)
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

// MedianDuration is MedianOf for a duration figure.
func MedianDuration[T any](rounds []T, get func(T) time.Duration) time.Duration {
	return time.Duration(MedianOf(rounds, func(r T) float64 { return float64(get(r)) }))
}
