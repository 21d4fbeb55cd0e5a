//go:build unix

package procs

import (
	"os"
	"syscall"
)

// reexec replaces the process with a new run of its executable (found
// through /proc, so a binary replaced on disk since the start is no
// matter) with env.
func reexec(env []string) error {
	return syscall.Exec("/proc/self/exe", os.Args, env)
}
