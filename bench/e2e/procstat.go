package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

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
