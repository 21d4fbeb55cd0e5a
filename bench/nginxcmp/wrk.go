package main

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

type wrkResult struct {
	rps       float64
	p50, p99  time.Duration
	errors    int
	cpuPerReq time.Duration // proxy process CPU time per request
	// sysPerReq and backendSysPerReq are read+write syscalls per request.
	sysPerReq, backendSysPerReq float64
	idlePct                     float64 // idle share of the machine during the run
	// backendCPUPerReq is the backends' CPU per request: how the proxy's
	// connection use changes its neighbours' cost.
	backendCPUPerReq time.Duration
}

var (
	reRPS    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reP50    = regexp.MustCompile(`\s50%\s+([0-9.]+)(us|ms|s)`)
	reP99    = regexp.MustCompile(`\s99%\s+([0-9.]+)(us|ms|s)`)
	reNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	reSock   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func runWrk(s settings, addr string, d time.Duration) (wrkResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, s.wrkBin, "-t"+strconv.Itoa(s.threads), "-c"+strconv.Itoa(s.connections),
		"-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", "http://"+addr+"/").CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	return parseWrk(string(out))
}

func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, errors.New("no Requests/sec in wrk output: " + out)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	var err error
	if r.p50, err = latency(reP50, out); err != nil {
		return r, err
	}
	if r.p99, err = latency(reP99, out); err != nil {
		return r, err
	}
	if m := reNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.errors += n
	}
	if m := reSock.FindStringSubmatch(out); m != nil {
		for _, v := range m[1:] {
			n, _ := strconv.Atoi(v)
			r.errors += n
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

func median(rs []wrkResult) wrkResult {
	pick := func(get func(wrkResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	return wrkResult{
		rps:              pick(func(r wrkResult) float64 { return r.rps }),
		p50:              time.Duration(pick(func(r wrkResult) float64 { return float64(r.p50) })),
		p99:              time.Duration(pick(func(r wrkResult) float64 { return float64(r.p99) })),
		cpuPerReq:        time.Duration(pick(func(r wrkResult) float64 { return float64(r.cpuPerReq) })),
		backendCPUPerReq: time.Duration(pick(func(r wrkResult) float64 { return float64(r.backendCPUPerReq) })),
	}
}
