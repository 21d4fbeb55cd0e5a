package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// tickDuration is one clock tick of /proc/PID/stat (USER_HZ 100).
const tickDuration = 10 * time.Millisecond

// cpuTicks returns the user+system clock ticks of the given processes and
// their direct children (NGINX's workers).
func cpuTicks(pids ...int) int64 {
	want := map[string]bool{}
	for _, p := range pids {
		if p > 0 {
			want[strconv.Itoa(p)] = true
		}
	}
	total := int64(0)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the ")" of the command name: state(1) ppid(2) ... utime(14) stime(15).
		i := strings.LastIndexByte(string(data), ')')
		if i < 0 || i+2 > len(data) {
			continue
		}
		f := strings.Fields(string(data[i+2:]))
		if len(f) < 13 || !(want[e.Name()] || want[f[1]]) {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		total += u + s
	}
	return total
}

// dockerProxies returns the pids of the docker-proxy processes that publish
// ports on one of the given host addresses.
func dockerProxies(hostIPs []string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(filepath.Base(strings.SplitN(string(cmd), "\x00", 2)[0]), "docker-proxy") {
			continue
		}
		args := strings.Split(string(cmd), "\x00")
		for i, a := range args {
			if a == "-host-ip" && i+1 < len(args) && slices.Contains(hostIPs, args[i+1]) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// loadAvg is the 1, 5 and 15 minute load average, for the record.
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
