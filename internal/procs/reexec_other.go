//go:build !unix

package procs

import "errors"

// reexec cannot replace the process here.
func reexec([]string) error { return errors.New("not supported on this system") }
