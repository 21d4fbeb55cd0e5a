// Command potluck is the command-line client of a Potluck cloud, for app
// owners and operators. It talks to any core node over the public API
// (docs/api.md); see docs/cli.md for every command.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"potluck/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{Env: cli.OS(), stderrIsTTY: isTerminal(os.Stderr)})
	stop()
	os.Exit(code)
}

// isTerminal reports whether f is a character device (a terminal), which is
// where a redrawn progress bar makes sense.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
