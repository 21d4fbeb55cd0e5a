package api

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
)

func TestReleases(t *testing.T) {
	f := newFixture(t)
	f.cluster()
	f.call("POST", "/v1/installations", installationBody(`,"env":{"V":"1"}`), http.StatusCreated, nil)

	var inst InstallationView
	f.call("POST", "/v1/installations/shop/releases", `{"env":{"V":"2"},"memory_mb":128,"health":{"path":"/healthz","interval":"2s"}}`, http.StatusAccepted, &inst)
	require.Len(t, inst.InstanceViews, 2, "the new release's instance starts beside the live one")
	require.Equal(t, map[string]string{"V": "1"}, inst.Env, "the live release serves until the new one is healthy")
	d := inst.Deploying()
	require.NotNil(t, d)
	require.Equal(t, 2, d.Version)
	require.Equal(t, map[string]string{"V": "2"}, d.Env)
	require.Equal(t, int64(128), d.PerInstance.MemoryMB)
	require.Equal(t, int64(500), d.PerInstance.MilliCPU, "kept from the live release")
	require.Equal(t, "/healthz", d.Health.Path)

	rec := f.do(request{method: "POST", path: "/v1/installations/shop/releases", token: operatorToken, body: `{}`})
	require.Equal(t, http.StatusConflict, rec.Code)
	require.Equal(t, `release 2 of "shop" is still rolling out; wait for it to finish`, errorOf(t, rec))
	rec = f.do(request{method: "POST", path: "/v1/installations/shop/scale", token: operatorToken, body: `{"backs":2}`})
	require.Equal(t, http.StatusConflict, rec.Code)

	f.node.must(t, &fsm.Command{Type: fsm.CmdPromoteRelease, Name: "shop", Release: &fsm.Release{Version: 2}})
	var releases []ReleaseView
	f.call("GET", "/v1/installations/shop/releases", "", http.StatusOK, &releases)
	require.Len(t, releases, 2)
	require.Equal(t, 2, releases[0].Version, "newest first")
	require.True(t, releases[0].Live)
	require.Equal(t, fsm.ReleaseSuperseded, releases[1].Status)

	f.node.must(t, &fsm.Command{Type: fsm.CmdPlan, Plan: &fsm.Plan{Remove: []string{inst.InstanceViews[0].ID}}})
	f.call("POST", "/v1/installations/shop/rollback", "", http.StatusAccepted, &inst)
	d = inst.Deploying()
	require.Equal(t, 3, d.Version)
	require.Equal(t, map[string]string{"V": "1"}, d.Env)
	require.Equal(t, "rollback to release 1", d.Description)
	f.node.must(t, &fsm.Command{Type: fsm.CmdPromoteRelease, Name: "shop", Release: &fsm.Release{Version: 3}})

	tests := []struct {
		name, path, body string
		status           int
		error            string
	}{
		{"unknown installation", "/v1/installations/nope/releases", `{}`, 404, `no installation "nope"`},
		{"bad health path", "/v1/installations/shop/releases", `{"health":{"path":"healthz"}}`, 400, "health path must start with / and be at most 256 bytes without spaces"},
		{"env name", "/v1/installations/shop/releases", `{"env":{"1X":"v"}}`, 400, `env "1X": names are letters, digits and _, values at most 4096 bytes`},
		{"env value with NUL", "/v1/installations/shop/releases", `{"env":{"X":"a\u0000b"}}`, 400, `env "X": values must not contain NUL characters`},
		{"bad health interval", "/v1/installations/shop/releases", `{"health":{"interval":"1ms"}}`, 400, "health interval must be a duration from 1s to 5m0s"},
		{"unknown app version", "/v1/installations/shop/releases", `{"app_version":7}`, 404, `app "web" has no version 7`},
		{"rollback to a release never made", "/v1/installations/shop/rollback", `{"version":-1}`, 400, "version must be a release number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do(request{method: "POST", path: tc.path, token: operatorToken, body: tc.body})
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			require.Equal(t, tc.error, errorOf(t, rec))
		})
	}
}
