package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/apiclient/apitest"
)

// TestTokensLsListsAll: `potluck tokens ls` shows all 1152 join tokens (the
// issue saw 1000), and --limit shows a part with the --cursor to continue
// (issue 11, finding 4).
func TestTokensLsListsAll(t *testing.T) {
	core := apitest.Start(t)
	const total = 1152
	core.CreateTokens(t, total)
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
