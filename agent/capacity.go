package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"potluck/agentproto"
)

// MeasureFunc measures what the host has. hostID is the host's ID when an
// earlier run registered it, else "".
type MeasureFunc func(ctx context.Context, hostID string) (agentproto.Capacity, error)

// MeasureLocal measures the machine the agent runs on: its CPUs (those the
// process may use), its memory (/proc/meminfo's MemTotal), the disk free
// under dataDir, its architecture and the storage type under dataDir.
func MeasureLocal(dataDir string) MeasureFunc {
	return func(context.Context, string) (agentproto.Capacity, error) {
		mem, err := memTotal("/proc/meminfo")
		if err != nil {
			return agentproto.Capacity{}, err
		}
		free, err := DiskFree(dataDir)
		if err != nil {
			return agentproto.Capacity{}, fmt.Errorf("measure disk: %w", err)
		}
		return agentproto.Capacity{
			CPUs: float64(runtime.NumCPU()), MemoryMB: mem >> 20, DiskMB: free >> 20,
			Arch: runtime.GOARCH, Storage: StorageType(dataDir),
		}, nil
	}
}

// DiskFree is the space an unprivileged writer may still use on the
// filesystem holding path.
func DiskFree(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("free disk of %s: %w", path, err)
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// memTotal reads MemTotal from a meminfo file, in bytes.
func memTotal(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("measure memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			break
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			break
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("measure memory: no MemTotal in %s", path)
}

// ErrOverDeclared means the lender declared more than the host has.
var ErrOverDeclared = errors.New("declared capacity exceeds what this host has")

// checkDeclared refuses a declaration beyond the measurement, naming each
// flag to lower.
func checkDeclared(c Config, m agentproto.Capacity) error {
	var over []string
	if c.CPUs > m.CPUs {
		over = append(over, fmt.Sprintf("--cpus %g but the host has %g", c.CPUs, m.CPUs))
	}
	if c.MemoryMB > m.MemoryMB {
		over = append(over, fmt.Sprintf("--memory %d MiB but the host has %d MiB", c.MemoryMB, m.MemoryMB))
	}
	if c.DiskMB > m.DiskMB {
		over = append(over, fmt.Sprintf("--disk %d MiB but %d MiB are free", c.DiskMB, m.DiskMB))
	}
	if len(over) > 0 {
		return fmt.Errorf("%w: %s; declare at most what the machine has", ErrOverDeclared, strings.Join(over, "; "))
	}
	return nil
}
