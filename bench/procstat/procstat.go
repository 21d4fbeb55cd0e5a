// Package procstat reads what benchmarks record of the machine from /proc:
// the load average, and the CPU time of processes.
package procstat

import (
	"os"
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
