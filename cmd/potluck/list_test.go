package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/apiclient/apitest"
	"potluck/core/fsm"
)

// TestTokensLsListsAll: `potluck tokens ls` shows all 1152 join tokens (the
// issue saw 1000), and --limit shows a part with the --cursor to continue
// (issue 11, finding 4).
func TestTokensLsListsAll(t *testing.T) {
	core := apitest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const total = 1152
	for i := range total {
		res, err := core.Server.Node.Apply(ctx, &fsm.Command{Type: fsm.CmdCreateToken, Token: &fsm.JoinToken{ID: fmt.Sprintf("t%05d", i), Hash: fmt.Sprint(i)}})
		require.NoError(t, err)
		require.NoError(t, res.Err)
	}
	vars := map[string]string{"POTLUCK_ADDR": core.URL, "POTLUCK_TOKEN": apitest.Token}

	r := potluck(t, vars, false, "tokens", "ls")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, total+1, strings.Count(r.stdout, "\n"), "a header and every token")
	require.Contains(t, r.stdout, "t01151")
	require.Empty(t, r.stderr)

	r = potluck(t, vars, false, "tokens", "ls", "--limit", "1100")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, 1101, strings.Count(r.stdout, "\n"))
	require.NotContains(t, r.stdout, "t01100")
	cursor, ok := strings.CutPrefix(strings.TrimSpace(r.stderr), "more remain: add --cursor ")
	require.True(t, ok, r.stderr)

	r = potluck(t, vars, false, "tokens", "ls", "--cursor", cursor)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, 53, strings.Count(r.stdout, "\n"))
	require.Contains(t, r.stdout, "t01100")

	r = potluck(t, vars, false, "hosts", "ls", "--limit", "-1")
	require.Equal(t, 2, r.code)
	oneLine(t, r)
}
