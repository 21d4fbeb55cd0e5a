package main

import (
	"fmt"
	"slices"
	"time"

	"potluck/bench/procstat"
	"potluck/bench/wrk"
)

// runRounds measures every contender once per round, alternating who goes
// first so that drift in the machine's load hits all of them, and prints a
// line per run.
func runRounds(s settings, r *rig) (map[string][]wrkResult, error) {
	results := map[string][]wrkResult{}
	fmt.Printf("%-6s %-14s %12s %10s %10s %14s %16s %6s %s\n", "round", "proxy", "req/s", "p50", "p99", "proxy CPU/req", "backends CPU/req", "idle", "read+write syscalls/req proxy, backends")
	for round := 1; round <= s.rounds; round++ {
		order := append([]string{}, r.contenders...)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		fmt.Printf("# round %d at %s, load average %s\n", round, time.Now().UTC().Format("15:04:05"), procstat.LoadAvg())
		for _, name := range order {
			res, err := measure(s, r, name)
			if err != nil {
				return nil, fmt.Errorf("%s round %d: %w", name, round, err)
			}
			results[name] = append(results[name], res)
			fmt.Printf("%-6d %-14s %12.0f %10s %10s %14s %16s %5.0f%% %5.2f %5.2f\n", round, name, res.rps, wrk.Short(res.p50), wrk.Short(res.p99),
				wrk.Short(res.cpuPerReq), wrk.Short(res.backendCPUPerReq), res.idlePct, res.sysPerReq, res.backendSysPerReq)
		}
	}
	return results, nil
}

// procCounters are a process tree's CPU ticks and read+write syscalls.
type procCounters struct{ ticks, syscalls int64 }

func countersOf(pids ...int) procCounters {
	return procCounters{ticks: procstat.CPUTicks(pids...), syscalls: syscalls(pids...)}
}

// measure runs wrk against one contender for --duration and charges the
// CPU and syscalls its process tree and the backends spent to the requests
// served.
func measure(s settings, r *rig, name string) (wrkResult, error) {
	idle0 := idleTicks()
	proxy0, backends0 := countersOf(r.pids[name]), countersOf(r.backendPIDs...)
	res, err := runWrk(s, r.targets[name], s.duration)
	if err != nil {
		return res, err
	}
	proxy1, backends1 := countersOf(r.pids[name]), countersOf(r.backendPIDs...)
	nreq := res.rps * s.duration.Seconds()
	res.cpuPerReq = ticksPerRequest(proxy1.ticks-proxy0.ticks, nreq)
	res.backendCPUPerReq = ticksPerRequest(backends1.ticks-backends0.ticks, nreq)
	res.sysPerReq = float64(proxy1.syscalls-proxy0.syscalls) / nreq
	res.backendSysPerReq = float64(backends1.syscalls-backends0.syscalls) / nreq
	// Idle share of the whole machine: above 0 %, the run was not CPU
	// bound; at 0 %, other engineers' work competed for the cores.
	res.idlePct = float64(idleTicks()-idle0) / float64(numCPU()) / s.duration.Seconds()
	return res, nil
}

// ticksPerRequest converts clock ticks (USER_HZ 100: 10 ms each) spent over
// nreq requests to CPU time per request.
func ticksPerRequest(ticks int64, nreq float64) time.Duration {
	return time.Duration(float64(time.Duration(ticks)*procstat.Tick) / nreq)
}
