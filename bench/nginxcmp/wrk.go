package main

import (
	"context"
	"time"

	"potluck/bench/wrk"
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

func runWrk(s settings, addr string, d time.Duration) (wrkResult, error) {
	r, err := wrk.Run(context.Background(), wrk.Options{Bin: s.wrkBin, Threads: s.threads, Conns: s.connections, Duration: d, URL: "http://" + addr + "/"})
	return fromWrk(r), err
}

func parseWrk(out string) (wrkResult, error) {
	r, err := wrk.Parse(out)
	return fromWrk(r), err
}

func fromWrk(r wrk.Result) wrkResult {
	return wrkResult{rps: r.RPS, p50: r.P50, p99: r.P99, errors: r.Errors}
}

func median(rs []wrkResult) wrkResult {
	return wrkResult{
		rps:              wrk.MedianOf(rs, func(r wrkResult) float64 { return r.rps }),
		p50:              wrk.MedianDuration(rs, func(r wrkResult) time.Duration { return r.p50 }),
		p99:              wrk.MedianDuration(rs, func(r wrkResult) time.Duration { return r.p99 }),
		cpuPerReq:        wrk.MedianDuration(rs, func(r wrkResult) time.Duration { return r.cpuPerReq }),
		backendCPUPerReq: wrk.MedianDuration(rs, func(r wrkResult) time.Duration { return r.backendCPUPerReq }),
	}
}
