package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/internal/cli"
)

// The benchmark itself needs Docker, nginx and wrk (make bench-e2e); these
// check that bad flags are refused before anything starts.
func TestE2ECommandFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{name: "no rounds", args: []string{"e2e", "--rounds", "0"}, err: "--rounds 0 outside"},
		{name: "runs too long", args: []string{"e2e", "--duration", "2m"}, err: "--duration 2m0s outside"},
		{name: "stream too large", args: []string{"e2e", "--stream-size", "2GiB"}, err: "at most 1GiB"},
		{name: "no CPU", args: []string{"e2e", "--fast-cpus", "0"}, err: "--fast-cpus"},
		{name: "bad log level", args: []string{"e2e", "--log-level", "loud"}, err: "loud"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, out, _ := cli.BufferEnv(nil)
			err := run(context.Background(), tc.args, env)
			require.ErrorContains(t, err, tc.err)
			require.Equal(t, 2, cli.ExitCode(err))
			require.Empty(t, out.String())
		})
	}
}
