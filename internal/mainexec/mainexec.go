// Package mainexec lets a command's tests run the command itself, main and
// all: the test binary, started again with an environment variable set,
// runs main instead of the tests. Tests of what main does before run (it
// may execute the process again, see procs.KeepSysmonAwake) need the real
// process, and this spares them building the binary.
package mainexec

import (
	"os"
	"os/exec"
	"testing"
)

// runMain, set to 1, makes the test binary run main.
const runMain = "POTLUCK_TEST_RUN_MAIN"

// Main runs the tests, or main when the process was started by Command.
// Call it from TestMain.
func Main(m *testing.M, main func()) {
	if os.Getenv(runMain) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// Command returns a command that runs the test binary as main with args,
// in the test's environment; variables appended to its Env win over those.
func Command(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMain+"=1")
	return cmd
}
