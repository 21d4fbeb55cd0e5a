package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"potluck/bench/procstat"
)

func numCPU() int {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(data), "processor\t:")
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

// syscalls is the read and write system calls (syscr + syscw of
// /proc/PID/io) made so far by the processes and their children.
func syscalls(pids ...int) int64 {
	total := int64(0)
	for _, dir := range procstat.Family(pids...) {
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
