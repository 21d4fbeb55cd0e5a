package localcluster

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/meshnet"
)

// The core nodes alone need no Docker: start, elect, answer, restart.
func TestCoresStartAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts raft nodes")
	}
	var roles []string
	for _, tc := range []struct {
		name  string
		cores int
		wan   func(role, name string) *meshnet.WANConfig
	}{
		{name: "one core, no WAN", cores: 1},
		{name: "three cores on a simulated WAN", cores: 3, wan: func(role, name string) *meshnet.WANConfig {
			roles = append(roles, role+" "+name)
			return &meshnet.WANConfig{Delay: time.Millisecond}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c, err := Start(ctx, Config{Dir: t.TempDir(), Cores: tc.cores, WAN: tc.wan})
			require.NoError(t, err)
			defer c.Close()
			require.NotEmpty(t, c.JoinToken)
			require.Len(t, c.CoreURLs(), tc.cores)
			var st struct{ Leader string }
			code, err := c.API(ctx, http.MethodGet, "/v1/status", nil, &st)
			require.NoError(t, err)
			require.Equal(t, 200, code)

			code, err = c.API(ctx, http.MethodGet, "/v1/installations/nope", nil, nil)
			require.Equal(t, 404, code)
			require.Error(t, err)

			require.NoError(t, c.StopCore(0))
			require.Nil(t, c.Core(0))
			require.NoError(t, c.StartCore(0))
			require.NotNil(t, c.Core(0))
		})
	}
	require.Contains(t, roles, "core core1")

	_, err := Start(context.Background(), Config{})
	require.ErrorContains(t, err, "Dir is required")
}
