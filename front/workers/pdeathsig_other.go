//go:build unix && !linux

package workers

import "os/exec"

// setParentDeathSignal does nothing where the kernel has no parent-death
// signal: a worker whose master was killed serves until it is stopped.
func setParentDeathSignal(*exec.Cmd) {}
