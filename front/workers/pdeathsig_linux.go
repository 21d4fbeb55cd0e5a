package workers

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel send the worker SIGTERM (drain and
// exit) when the master dies without stopping it, so that no worker
// outlives its master and keeps serving sockets nobody supervises.
func setParentDeathSignal(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
}
