package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"potluck/bench/procstat"
	"potluck/bench/wrk"
)

// printSetup records the machine, the tools' versions and the load.
func printSetup(s settings) {
	nv, _ := exec.Command(s.nginxBin, "-v").CombinedOutput()
	wv, _ := exec.Command(s.wrkBin, "-v").CombinedOutput()
	fmt.Printf("date: %s\nhost: %d cores (GOMAXPROCS %s), %s, %s\n", time.Now().UTC().Format(time.RFC3339), numCPU(),
		os.Getenv("GOMAXPROCS"), strings.TrimSpace(string(nv)), firstLine(string(wv)))
	procs := "default"
	if s.frontProcs > 0 {
		procs = strconv.Itoa(s.frontProcs)
	}
	fmt.Printf("load: wrk -t%d -c%d -d%s --latency, %d backends, 25-byte responses, %d rounds; potluck-front GOMAXPROCS %s\n\n",
		s.threads, s.connections, s.duration, s.backends, s.rounds, procs)
}

// printSummary prints each contender's medians, the ratios to NGINX and a
// warning for any round with errors.
func printSummary(s settings, results map[string][]wrkResult) {
	n, f := median(results["nginx"]), median(results["potluck-front"])
	fmt.Printf("\nmedian over %d rounds:\n", s.rounds)
	fmt.Printf("  nginx          %10.0f req/s  p50 %-9s p99 %-9s CPU/req %-8s backends %s\n", n.rps, wrk.Short(n.p50), wrk.Short(n.p99), wrk.Short(n.cpuPerReq), wrk.Short(n.backendCPUPerReq))
	fmt.Printf("  potluck-front  %10.0f req/s  p50 %-9s p99 %-9s CPU/req %-8s backends %s\n", f.rps, wrk.Short(f.p50), wrk.Short(f.p99), wrk.Short(f.cpuPerReq), wrk.Short(f.backendCPUPerReq))
	if s.pipeline > 0 {
		b := median(results["potluck-pipe"])
		fmt.Printf("  potluck-pipe   %10.0f req/s  p50 %-9s p99 %-9s CPU/req %-8s backends %s  (potluck-front, %d pipelined connections per backend)\n", b.rps, wrk.Short(b.p50), wrk.Short(b.p99), wrk.Short(b.cpuPerReq), wrk.Short(b.backendCPUPerReq), s.pipeline)
	}
	if s.baseline {
		b := median(results["fasthttp-raw"])
		fmt.Printf("  fasthttp-raw   %10.0f req/s  p50 %-9s p99 %-9s CPU/req %-8s backends %s  (ten-line fasthttp proxy, no lb)\n", b.rps, wrk.Short(b.p50), wrk.Short(b.p99), wrk.Short(b.cpuPerReq), wrk.Short(b.backendCPUPerReq))
	}
	fmt.Printf("ratio potluck-front/nginx: %s (target: throughput >= 1.30x, p99 <= 1.00x)\n", ratios(f, n))
	if s.pipeline > 0 {
		fmt.Printf("ratio potluck-pipe/nginx:  %s (target: throughput >= 1.30x, p99 <= 1.00x)\n", ratios(median(results["potluck-pipe"]), n))
	}
	if s.baseline {
		fmt.Printf("ratio fasthttp-raw/nginx:  %s\n", ratios(median(results["fasthttp-raw"]), n))
	}
	fmt.Printf("load average at the end: %s\n", procstat.LoadAvg())
	for name, rs := range results {
		for _, r := range rs {
			if r.errors > 0 {
				fmt.Printf("warning: %s had %d non-2xx or socket errors in a round\n", name, r.errors)
			}
		}
	}
}

// ratios is a contender's medians relative to NGINX's.
func ratios(c, nginx wrkResult) string {
	return fmt.Sprintf("throughput %.2fx, p50 %.2fx, p99 %.2fx, CPU/req %.2fx",
		c.rps/nginx.rps, float64(c.p50)/float64(nginx.p50), float64(c.p99)/float64(nginx.p99), float64(c.cpuPerReq)/float64(nginx.cpuPerReq))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
