// Package cli is how every Potluck binary reads its command line and ends:
// each flag has a POTLUCK_* environment twin (a flag on the command line
// beats its variable, which beats the default), --help and --version print to
// stdout and exit 0, bad input is one line on stderr and exit status 2, and
// logs go through log/slog at a chosen level and format.
package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Env is what a command reads from its process besides its arguments. main
// passes OS(); tests pass their own, so they never touch the real
// environment.
type Env struct {
	// Lookup reads an environment variable; a variable set to the empty
	// string counts as set.
	Lookup func(string) (string, bool)
	// Stdout receives --help, --version and the command's results.
	Stdout io.Writer
	// Stderr receives errors and logs.
	Stderr io.Writer
}

// OS is the process's real environment and output streams.
func OS() Env { return Env{Lookup: os.LookupEnv, Stdout: os.Stdout, Stderr: os.Stderr} }

// MapLookup looks variables up in m, for tests.
func MapLookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// BufferEnv is an Env for tests: the variables of vars, stdout and stderr
// into the buffers returned.
func BufferEnv(vars map[string]string) (Env, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return Env{Lookup: MapLookup(vars), Stdout: &out, Stderr: &errb}, &out, &errb
}

// Getenv is lookup's value, or "" when the variable is not set.
func (e Env) Getenv(k string) string {
	v, _ := e.Lookup(k)
	return v
}

// ErrVersion is returned by Parse once --version has been printed: like
// flag.ErrHelp, the command is done and exits 0.
var ErrVersion = errors.New("version printed")

// Done reports whether err only says that help or the version was printed.
func Done(err error) bool { return errors.Is(err, flag.ErrHelp) || errors.Is(err, ErrVersion) }

// UsageError is bad command-line input: an unknown flag, a bad value, a
// missing argument. It exits with status 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef formats a UsageError.
func Usagef(format string, a ...any) error { return &UsageError{fmt.Errorf(format, a...)} }

// exitError carries an exit status other than 1 (a decommissioned agent
// exits 3 so that systemd does not restart it).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// WithExitCode makes err end the process with status code.
func WithExitCode(code int, err error) error { return &exitError{code: code, err: err} }

// ExitCode is the exit status for err: 0 for nil, help and version; 2 for a
// UsageError; the code of WithExitCode; otherwise 1.
func ExitCode(err error) int {
	var ue *UsageError
	var ee *exitError
	switch {
	case err == nil || Done(err):
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

// OneLine is err's message on one line: joined errors are separated by "; ".
func OneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// Exit reports err as one line "name: message" on stderr (nothing for nil,
// help or version) and returns the exit status for os.Exit.
func Exit(stderr io.Writer, name string, err error) int {
	code := ExitCode(err)
	if code != 0 {
		fmt.Fprintf(stderr, "%s: %s\n", name, OneLine(err))
	}
	return code
}
