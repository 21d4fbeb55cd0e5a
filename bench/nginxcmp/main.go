// Command nginxcmp is the `make bench-nginx` driver: it starts the same test
// backends for both proxies, runs NGINX (configured fairly: worker_processes
// auto, upstream keepalive, access_log off) and potluck-front with the
// equivalent config, drives them alternately with wrk for several rounds and
// prints req/s, p50 and p99 for each and the ratios. All traffic stays on
// 127.0.0.1; every run is bounded by --duration.
//
// `nginxcmp backend --addr A` runs one test backend (a fasthttp server with a
// 25-byte response), so backends live in their own processes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"potluck/internal/freeport"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "rawproxy" {
		if err := rawProxyMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "rawproxy:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "backend" {
		if err := backendMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "backend:", err)
			os.Exit(1)
		}
		return
	}
	if err := benchMain(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "nginxcmp:", err)
		os.Exit(1)
	}
}

func backendMain(args []string) error {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	body := []byte("Hello from a Potluck app\n") // 25 bytes, like the anchor figures
	s := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("text/plain")
			ctx.SetBody(body)
		},
		NoDefaultServerHeader: true,
	}
	return s.ListenAndServe(*addr)
}

// rawProxyMain is the baseline: the ten-line fasthttp proxy (one HostClient
// per backend, plain round robin, no health, no header handling). It shows
// what fasthttp itself costs here, apart from lb's work.
func rawProxyMain(args []string) error {
	fs := flag.NewFlagSet("rawproxy", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address (loopback only)")
	backends := fs.String("backends", "", "comma-separated backend addresses")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var clients []*fasthttp.HostClient
	for _, a := range strings.Split(*backends, ",") {
		clients = append(clients, &fasthttp.HostClient{Addr: a, MaxIdemponentCallAttempts: 1})
	}
	var next atomic.Uint64
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		hc := clients[next.Add(1)%uint64(len(clients))]
		if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
			ctx.Error("502 Bad Gateway\n", fasthttp.StatusBadGateway)
		}
	}}
	return s.ListenAndServe(*listen)
}

type settings struct {
	frontBin    string
	nginxBin    string
	wrkBin      string
	rounds      int
	duration    time.Duration
	connections int
	threads     int
	backends    int
	keep        bool
	profile     string
	frontProcs  int
	baseline    bool
	pipeline    int
	pipeDepth   int
	profilePipe bool
}

func benchMain(args []string) error {
	var s settings
	fs := flag.NewFlagSet("nginxcmp", flag.ContinueOnError)
	fs.StringVar(&s.frontBin, "front", "bin/potluck-front", "potluck-front binary")
	fs.StringVar(&s.nginxBin, "nginx", "nginx", "nginx binary")
	fs.StringVar(&s.wrkBin, "wrk", "wrk", "wrk binary")
	fs.IntVar(&s.rounds, "rounds", 3, "rounds; each runs NGINX and potluck-front once, alternating who goes first")
	fs.DurationVar(&s.duration, "duration", 10*time.Second, "wrk duration per run")
	fs.IntVar(&s.connections, "connections", 64, "wrk connections")
	fs.IntVar(&s.threads, "threads", 2, "wrk threads")
	fs.IntVar(&s.backends, "backends", 2, "number of backends")
	fs.BoolVar(&s.keep, "keep", false, "keep the temporary directory (configs, logs)")
	fs.StringVar(&s.profile, "profile", "", "write a 10 s CPU profile of potluck-front under load to this file")
	fs.BoolVar(&s.baseline, "baseline", true, "also run the ten-line fasthttp proxy (rawproxy) as a third contender")
	fs.IntVar(&s.pipeline, "pipeline", 1, "also run potluck-front with backend_pool.pipeline set to this (pipelined backend connections) as the contender potluck-pipe; 0 skips it")
	fs.IntVar(&s.pipeDepth, "pipeline-depth", 0, "backend_pool.pipeline_depth for potluck-pipe; 0 = lb's default")
	fs.BoolVar(&s.profilePipe, "profile-pipe", false, "with --profile: profile potluck-pipe instead of potluck-front")
	fs.IntVar(&s.frontProcs, "front-gomaxprocs", 0, "GOMAXPROCS for potluck-front; 0 = Go's default (all cores)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, bin := range []string{s.frontBin, s.nginxBin, s.wrkBin} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found (run scripts/install-deps.sh --bench and make build): %w", bin, err)
		}
	}
	dir, err := os.MkdirTemp("", "potluck-bench-nginx-")
	if err != nil {
		return err
	}
	if !s.keep {
		defer os.RemoveAll(dir)
	} else {
		fmt.Println("work dir:", dir)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	var backendAddrs []string
	var backendPIDs []int
	for range s.backends {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		pid, err := startProcPID(ctx, dir, "backend-"+addr, nil, self, "backend", "--addr", addr)
		if err != nil {
			return err
		}
		backendPIDs = append(backendPIDs, pid)
		backendAddrs = append(backendAddrs, addr)
	}
	nginxAddr, err := freeAddr()
	if err != nil {
		return err
	}
	frontAddr, err := freeAddr()
	if err != nil {
		return err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return err
	}
	if err := writeNginxConf(dir, nginxAddr, backendAddrs); err != nil {
		return err
	}
	if err := writeFrontConf(dir, "front.yaml", frontAddr, adminAddr, backendAddrs, ""); err != nil {
		return err
	}
	nginxPID, err := startProcPID(ctx, dir, "nginx", nil, s.nginxBin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	if err != nil {
		return err
	}
	frontArgs := []string{"--config", filepath.Join(dir, "front.yaml"), "--log-level", "warn", "--watch-interval", "0"}
	if s.profile != "" {
		frontArgs = append(frontArgs, "--pprof")
	}
	var frontEnv []string
	if s.frontProcs > 0 {
		frontEnv = append(frontEnv, "GOMAXPROCS="+strconv.Itoa(s.frontProcs))
	}
	frontPID, err := startProcPID(ctx, dir, "potluck-front", frontEnv, s.frontBin, frontArgs...)
	if err != nil {
		return err
	}
	pids := map[string]int{"nginx": nginxPID, "potluck-front": frontPID}
	contenders := []string{"nginx", "potluck-front"}
	var pipeAddr, pipeAdmin string
	if s.pipeline > 0 {
		if pipeAddr, err = freeAddr(); err != nil {
			return err
		}
		if pipeAdmin, err = freeAddr(); err != nil {
			return err
		}
		pool := fmt.Sprintf("backend_pool:\n  pipeline: %d\n  pipeline_depth: %d\n", s.pipeline, s.pipeDepth)
		if err := writeFrontConf(dir, "front-pipe.yaml", pipeAddr, pipeAdmin, backendAddrs, pool); err != nil {
			return err
		}
		pipeArgs := []string{"--config", filepath.Join(dir, "front-pipe.yaml"), "--log-level", "warn", "--watch-interval", "0"}
		if s.profile != "" {
			pipeArgs = append(pipeArgs, "--pprof")
		}
		pid, err := startProcPID(ctx, dir, "potluck-pipe", frontEnv, s.frontBin, pipeArgs...)
		if err != nil {
			return err
		}
		pids["potluck-pipe"] = pid
		contenders = append(contenders, "potluck-pipe")
	}
	var rawAddr string
	if s.baseline {
		if rawAddr, err = freeAddr(); err != nil {
			return err
		}
		pid, err := startProcPID(ctx, dir, "rawproxy", frontEnv, self, "rawproxy", "--listen", rawAddr,
			"--backends", strings.Join(backendAddrs, ","))
		if err != nil {
			return err
		}
		pids["fasthttp-raw"] = pid
		contenders = append(contenders, "fasthttp-raw")
	}
	for _, a := range append(append([]string{}, backendAddrs...), nginxAddr, frontAddr, rawAddr, pipeAddr) {
		if a == "" {
			continue
		}
		if err := waitHTTP(a, 10*time.Second); err != nil {
			return fmt.Errorf("%s did not come up: %w (logs in %s)", a, err, dir)
		}
	}
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

	targets := map[string]string{"nginx": nginxAddr, "potluck-front": frontAddr, "fasthttp-raw": rawAddr, "potluck-pipe": pipeAddr}
	// Warm every contender up (connection pools, page cache, CPU frequency).
	for _, name := range contenders {
		if _, err := runWrk(s, targets[name], 2*time.Second); err != nil {
			return fmt.Errorf("warm-up %s: %w", name, err)
		}
	}
	if s.profile != "" && s.profilePipe && s.pipeline > 0 {
		return profileFront(s, pipeAddr, pipeAdmin)
	}
	if s.profile != "" {
		return profileFront(s, frontAddr, adminAddr)
	}
	results := map[string][]wrkResult{}
	fmt.Printf("%-6s %-14s %12s %10s %10s %14s %16s %6s %s\n", "round", "proxy", "req/s", "p50", "p99", "proxy CPU/req", "backends CPU/req", "idle", "read+write syscalls/req proxy, backends")
	for r := 1; r <= s.rounds; r++ {
		// Alternate who goes first, so drift in the machine's load hits both.
		order := append([]string{}, contenders...)
		if r%2 == 0 {
			slices.Reverse(order)
		}
		fmt.Printf("# round %d at %s, load average %s\n", r, time.Now().UTC().Format("15:04:05"), loadAvg())
		for _, name := range order {
			idle0 := idleTicks()
			before := cpuTicks(pids[name])
			sys0 := syscalls(pids[name])
			var beforeB, sysB0 int64
			for _, p := range backendPIDs {
				beforeB += cpuTicks(p)
				sysB0 += syscalls(p)
			}
			res, err := runWrk(s, targets[name], s.duration)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", name, r, err)
			}
			// Clock ticks are 10 ms (USER_HZ 100).
			cpu := time.Duration(cpuTicks(pids[name])-before) * 10 * time.Millisecond
			res.cpuPerReq = time.Duration(float64(cpu) / (res.rps * s.duration.Seconds()))
			// Idle share of the whole machine: above 0 %, the run was not CPU
			// bound; at 0 %, other engineers' work competed for the cores.
			res.idlePct = float64(idleTicks()-idle0) / float64(numCPU()) / s.duration.Seconds()
			nreq := res.rps * s.duration.Seconds()
			res.sysPerReq = float64(syscalls(pids[name])-sys0) / nreq
			var afterB, sysB1 int64
			for _, p := range backendPIDs {
				afterB += cpuTicks(p)
				sysB1 += syscalls(p)
			}
			res.backendSysPerReq = float64(sysB1-sysB0) / nreq
			res.backendCPUPerReq = time.Duration(float64(time.Duration(afterB-beforeB)*10*time.Millisecond) / (res.rps * s.duration.Seconds()))
			results[name] = append(results[name], res)
			fmt.Printf("%-6d %-14s %12.0f %10s %10s %14s %16s %5.0f%% %5.2f %5.2f\n", r, name, res.rps, short(res.p50), short(res.p99),
				short(res.cpuPerReq), short(res.backendCPUPerReq), res.idlePct, res.sysPerReq, res.backendSysPerReq)
		}
	}
	n, f := median(results["nginx"]), median(results["potluck-front"])
	fmt.Printf("\nmedian over %d rounds:\n", s.rounds)
	fmt.Printf("  nginx          %10.0f req/s  p50 %-9s p99 %-9s CPU/req %-8s backends %s\n", n.rps, short(n.p50), short(n.p99), short(n.cpuPerReq), short(n.backendCPUPerReq))
	fmt.Printf("  potluck-front  %10.0f req/s  p50 %-9s p99 %-9s CPU/req %-8s backends %s\n", f.rps, short(f.p50), short(f.p99), short(f.cpuPerReq), short(f.backendCPUPerReq))
	if s.pipeline > 0 {
		b := median(results["potluck-pipe"])
		fmt.Printf("  potluck-pipe   %10.0f req/s  p50 %-9s p99 %-9s CPU/req %-8s backends %s  (potluck-front, %d pipelined connections per backend)\n", b.rps, short(b.p50), short(b.p99), short(b.cpuPerReq), short(b.backendCPUPerReq), s.pipeline)
	}
	if s.baseline {
		b := median(results["fasthttp-raw"])
		fmt.Printf("  fasthttp-raw   %10.0f req/s  p50 %-9s p99 %-9s CPU/req %-8s backends %s  (ten-line fasthttp proxy, no lb)\n", b.rps, short(b.p50), short(b.p99), short(b.cpuPerReq), short(b.backendCPUPerReq))
	}
	fmt.Printf("ratio potluck-front/nginx: throughput %.2fx, p50 %.2fx, p99 %.2fx, CPU/req %.2fx (target: throughput >= 1.30x, p99 <= 1.00x)\n",
		f.rps/n.rps, float64(f.p50)/float64(n.p50), float64(f.p99)/float64(n.p99), float64(f.cpuPerReq)/float64(n.cpuPerReq))
	if s.pipeline > 0 {
		b := median(results["potluck-pipe"])
		fmt.Printf("ratio potluck-pipe/nginx:  throughput %.2fx, p50 %.2fx, p99 %.2fx, CPU/req %.2fx (target: throughput >= 1.30x, p99 <= 1.00x)\n",
			b.rps/n.rps, float64(b.p50)/float64(n.p50), float64(b.p99)/float64(n.p99), float64(b.cpuPerReq)/float64(n.cpuPerReq))
	}
	if s.baseline {
		b := median(results["fasthttp-raw"])
		fmt.Printf("ratio fasthttp-raw/nginx:  throughput %.2fx, p50 %.2fx, p99 %.2fx, CPU/req %.2fx\n",
			b.rps/n.rps, float64(b.p50)/float64(n.p50), float64(b.p99)/float64(n.p99), float64(b.cpuPerReq)/float64(n.cpuPerReq))
	}
	fmt.Printf("load average at the end: %s\n", loadAvg())
	for name, rs := range results {
		for _, r := range rs {
			if r.errors > 0 {
				fmt.Printf("warning: %s had %d non-2xx or socket errors in a round\n", name, r.errors)
			}
		}
	}
	return nil
}

// short rounds a duration for the table (wrk reports two decimals).
func short(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(100 * time.Nanosecond)
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func numCPU() int {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(data), "processor\t:")
}

// loadAvg is the 1, 5 and 15 minute load average, for the record: the
// machine is shared, and contention moves single rounds by ±10 %.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// idleTicks is the machine's idle+iowait time in clock ticks (USER_HZ 100),
// summed over all CPUs.
func idleTicks() int64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(firstLine(string(data))) // cpu user nice system idle iowait ...
	if len(f) < 6 {
		return 0
	}
	idle, _ := strconv.ParseInt(f[4], 10, 64)
	iowait, _ := strconv.ParseInt(f[5], 10, 64)
	return idle + iowait
}

func freeAddr() (string, error) { return freeport.TCP() }

// startProcPID runs a child until ctx ends, logging to dir/name.log, and
// returns its pid.
func startProcPID(ctx context.Context, dir, name string, env []string, bin string, args ...string) (int, error) {
	logf, err := os.Create(filepath.Join(dir, strings.ReplaceAll(name, ":", "_")+".log"))
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = cmd.Wait(); _ = logf.Close() }()
	return cmd.Process.Pid, nil
}

// procTree returns the /proc directories of pid and its direct children
// (NGINX's workers).
func procTree(pid int) []string {
	var dirs []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		if p != pid {
			stat, err := os.ReadFile(filepath.Join(dir, "stat"))
			if err != nil {
				continue
			}
			// Fields after the ")" of the command name: state ppid ...
			f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
			if len(f) < 2 || f[1] != strconv.Itoa(pid) {
				continue
			}
		}
		dirs = append(dirs, dir)
	}
	return dirs
}

// syscalls is the read and write system calls (syscr + syscw of
// /proc/PID/io) made so far by pid and its children.
func syscalls(pid int) int64 {
	total := int64(0)
	for _, dir := range procTree(pid) {
		data, err := os.ReadFile(filepath.Join(dir, "io"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ": "); ok && (k == "syscr" || k == "syscw") {
				n, _ := strconv.ParseInt(v, 10, 64)
				total += n
			}
		}
	}
	return total
}

// cpuTicks returns user+system clock ticks of pid and its children.
func cpuTicks(pid int) int64 {
	total := int64(0)
	for _, dir := range procTree(pid) {
		data, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		// Fields after the ")" of the command name: state ppid ... utime(14) stime(15).
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += u + st
	}
	return total
}

func waitHTTP(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		code, _, err := fasthttp.GetTimeout(nil, "http://"+addr+"/", time.Second)
		if err == nil && code == 200 {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("status %d", code)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

func writeNginxConf(dir, listen string, backends []string) error {
	var servers strings.Builder
	for _, b := range backends {
		fmt.Fprintf(&servers, "        server %s max_fails=1 fail_timeout=20s;\n", b)
	}
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    keepalive_requests 1000000;
    upstream app {
%[2]s        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen %[3]s;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            # potluck-front adds these by default; without them NGINX would
            # build and the backends parse four headers fewer per request.
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
        }
    }
}
`, dir, servers.String(), listen)
	return os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600)
}

func writeFrontConf(dir, name, listen, admin string, backends []string, extra string) error {
	conf := fmt.Sprintf("listen: [%q]\nadmin: %q\n%sroutes:\n  - default: true\n    backends: [%s]\n",
		listen, admin, extra, strings.Join(backends, ", "))
	return os.WriteFile(filepath.Join(dir, name), []byte(conf), 0o600)
}

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

// profileFront takes a CPU profile of potluck-front while wrk loads it.
func profileFront(s settings, frontAddr, adminAddr string) error {
	done := make(chan error, 1)
	go func() { _, err := runWrk(s, frontAddr, 12*time.Second); done <- err }()
	time.Sleep(time.Second)
	client := &fasthttp.Client{ReadTimeout: 30 * time.Second}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + adminAddr + "/debug/pprof/profile?seconds=10")
	if err := client.Do(req, resp); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if err := os.WriteFile(s.profile, resp.Body(), 0o600); err != nil {
		return err
	}
	fmt.Println("CPU profile written to", s.profile, "- inspect with: go tool pprof -top", s.frontBin, s.profile)
	return <-done
}
