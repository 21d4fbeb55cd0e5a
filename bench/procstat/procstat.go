// Package procstat reads what benchmarks record of the machine from /proc:
// the load average, and the CPU time and context switches of processes and
// their children.
package procstat

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Tick is one clock tick of /proc/PID/stat (USER_HZ 100).
const Tick = 10 * time.Millisecond

// LoadAvg is the 1, 5 and 15 minute load average, for the record: the
// machine is shared, and contention moves single rounds by ±10 %. "?" when
// it cannot be read.
func LoadAvg() string {
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

// Stat is what a /proc/PID/stat line says of a process's CPU.
type Stat struct {
	PPID  string
	Ticks int64 // user + system
}

// ParseStat reads a /proc/PID/stat line; false when it is not one.
func ParseStat(data []byte) (Stat, bool) {
	// Fields after the ")" of the command name (which may hold spaces):
	// state(1) ppid(2) ... utime(14) stime(15).
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 || i+2 > len(data) {
		return Stat{}, false
	}
	f := strings.Fields(string(data[i+2:]))
	if len(f) < 13 {
		return Stat{}, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return Stat{}, false
	}
	return Stat{PPID: f[1], Ticks: u + s}, true
}

// Family returns the /proc directories of the given processes and of their
// direct children (NGINX's workers), each once; pids of 0 or less are left
// out.
func Family(pids ...int) []string {
	want := map[string]bool{}
	for _, p := range pids {
		if p > 0 {
			want[strconv.Itoa(p)] = true
		}
	}
	var dirs []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		if !want[e.Name()] {
			data, err := os.ReadFile(filepath.Join(dir, "stat"))
			if err != nil {
				continue
			}
			if st, ok := ParseStat(data); !ok || !want[st.PPID] {
				continue
			}
		}
		dirs = append(dirs, dir)
	}
	return dirs
}

// CPUTicks returns the user+system clock ticks of the given processes and
// of their direct children.
func CPUTicks(pids ...int) int64 {
	total := int64(0)
	for _, dir := range Family(pids...) {
		data, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		if st, ok := ParseStat(data); ok {
			total += st.Ticks
		}
	}
	return total
}

// ContextSwitches returns the context switches (voluntary and not) of every
// thread of the given processes and of their direct children so far. A
// request that hands work between threads, or wakes idle ones, pays a
// switch for each: on a 2-vCPU VM that is several microseconds apiece.
func ContextSwitches(pids ...int) int64 {
	total := int64(0)
	for _, dir := range Family(pids...) {
		tasks, _ := filepath.Glob(filepath.Join(dir, "task", "*", "status"))
		for _, path := range tasks {
			data, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			total += ParseSwitches(data)
		}
	}
	return total
}

// ParseSwitches sums the voluntary and nonvoluntary context switches a
// /proc/PID/task/TID/status file states (0 when it states none).
func ParseSwitches(status []byte) int64 {
	total := int64(0)
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "voluntary_ctxt_switches" && k != "nonvoluntary_ctxt_switches") {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			total += n
		}
	}
	return total
}
