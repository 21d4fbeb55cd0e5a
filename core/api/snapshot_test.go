package api

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSnapshotSaveAndRestore(t *testing.T) {
	f := newFixture(t)
	f.cluster()
	rec := f.do(request{method: "GET", path: "/v1/cluster/snapshot", token: operatorToken})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	snap := rec.Body.Bytes()
	require.True(t, bytes.HasPrefix(snap, []byte(`{"format":"potluck-core-snapshot/1"`)), string(snap[:80]))

	g := newFixture(t)
	require.Empty(t, g.node.State().Apps)
	rec = g.do(request{method: "POST", path: "/v1/cluster/snapshot", token: operatorToken, body: string(snap)})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Contains(t, g.node.State().Apps, "web")
	require.Len(t, g.node.State().Hosts, 3)

	for name, body := range map[string]string{
		"not a snapshot": "hello",
		"damaged":        strings.Replace(string(snap), `"web"`, `"wex"`, 1),
		"cut short":      string(snap[:len(snap)-10]),
		"trailing bytes": string(snap) + "x",
	} {
		rec = g.do(request{method: "POST", path: "/v1/cluster/snapshot", token: operatorToken, body: body})
		require.Equal(t, http.StatusBadRequest, rec.Code, "%s: %s", name, rec.Body.String())
	}
	rec = g.do(request{method: "GET", path: "/v1/cluster/snapshot"})
	require.Equal(t, http.StatusUnauthorized, rec.Code)
}
