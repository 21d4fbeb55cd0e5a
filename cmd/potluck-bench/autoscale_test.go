package main

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/internal/cli"
)

func TestAutoscaleCommand(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		err  string
		last string
	}{
		{name: "one profile", args: []string{"--profile", "Single peak", "--seeds", "1"}, last: "autoscale: mean gain "},
		{name: "with a sweep", args: []string{"--profile", "Single peak", "--seeds", "1", "--sweep", "window", "--regime", "potluck"}, last: "autoscale: mean gain "},
		{name: "bad regime", args: []string{"--regime", "cloud"}, err: `--regime "cloud"`},
		{name: "bad forecaster", args: []string{"--forecaster", "arima"}, err: `--forecaster "arima"`},
		{name: "bad profile", args: []string{"--profile", "Triple peak"}, err: `--profile "Triple peak"`},
		{name: "bad sweep", args: []string{"--sweep", "everything"}, err: `--sweep "everything"`},
		{name: "bad seeds", args: []string{"--seeds", "0"}, err: "--seeds 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, out, _ := cli.BufferEnv(nil)
			err := run(context.Background(), append([]string{"autoscale"}, tc.args...), env)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			require.True(t, strings.HasPrefix(lines[len(lines)-1], tc.last), lines[len(lines)-1])
		})
	}
}
