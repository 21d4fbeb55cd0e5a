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
		if st, ok := procstat.ParseStat(data); ok {
			total += st.Ticks
		}
	}
	return total
}
