//go:build unix

package procs

import (
	"os"
	"syscall"
)

// reexec replaces the process with a new run of its executable with env.
// It runs the executable by its path, which names the process (its comm,
// what ps, top and pgrep show), and by /proc/self/exe only when that path
// cannot be run (the binary was removed since the start).
func reexec(env []string) error {
	if exe, err := os.Executable(); err == nil {
		_ = syscall.Exec(exe, os.Args, env) // returns only when it failed
	}
	return syscall.Exec("/proc/self/exe", os.Args, env)
}
