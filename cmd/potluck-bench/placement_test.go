package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/internal/cli"
)

func TestPlacementCommand(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{name: "small sweep", args: []string{"placement", "--seeds", "2", "--hosts", "10", "--loads", "0.9", "--requests-per-host", "15"}},
		{name: "through the FSM", args: []string{"placement", "--seeds", "1", "--hosts", "8", "--loads", "0.9", "--requests-per-host", "10", "--fsm"}},
		{name: "bad fleet size", args: []string{"placement", "--hosts", "ten"}, err: `--hosts "ten"`},
		{name: "bad load", args: []string{"placement", "--loads", "5"}, err: "load 5.00 outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, out, _ := cli.BufferEnv(nil)
			err := run(context.Background(), tc.args, env)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			require.Regexp(t, regexp.MustCompile(`^placement: denials [+-]\d+\.\d % and free hosts [+-]\d+\.\d % vs spread$`), lines[len(lines)-1])
		})
	}
}
