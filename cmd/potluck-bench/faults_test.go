package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/internal/cli"
)

// The benchmark itself needs Docker and minutes (make bench-faults); these
// check that bad flags are refused before anything starts.
func TestFaultsCommandFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{name: "unknown scenario", args: []string{"faults", "--scenarios", "back,meteor"}, err: `--scenarios: unknown scenario "meteor"`},
		{name: "window too short", args: []string{"faults", "--scenario-seconds", "1"}, err: "--scenario-seconds 1 outside"},
		{name: "rate zero", args: []string{"faults", "--rate", "0"}, err: "--rate 0 outside"},
		{name: "bad log level", args: []string{"faults", "--log-level", "loud"}, err: "loud"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, out, _ := cli.BufferEnv(nil)
			err := run(context.Background(), tc.args, env)
			require.ErrorContains(t, err, tc.err)
			require.Empty(t, out.String())
		})
	}
}
