package geo

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/bench/table"
	"potluck/internal/dockertest"
)

func TestParseScenario(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Scenario
		err  bool
	}{
		{in: "eu=70ms/70ms", want: Scenario{Name: "eu", ClientRTT: 70 * time.Millisecond, MeshRTT: 70 * time.Millisecond}},
		{in: "gke=70ms/1ms", want: Scenario{Name: "gke", ClientRTT: 70 * time.Millisecond, MeshRTT: time.Millisecond}},
		{in: "base=plain", want: Scenario{Name: "base", Plain: true}},
		{in: "eu=70ms", err: true},
		{in: "eu=x/y", err: true},
		{in: "=plain", err: true},
		{in: "eu=-1ms/1ms", err: true},
	} {
		got, err := ParseScenario(tc.in)
		if tc.err {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
	require.Len(t, PaperScenarios(), 4)
}

// A smoke test of the whole simulation: one small scenario, one run of one
// request per method. Needs Docker; about half a minute.
func TestSimulationSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a local cluster with Docker")
	}
	tarball := dockertest.SampleImage(t)
	const rtt = 20 * time.Millisecond
	res, err := Run(context.Background(), Config{
		Scenarios: []Scenario{{Name: "smoke", ClientRTT: rtt, MeshRTT: rtt}},
		Tarball:   tarball, Backs: 1,
		Table: table.Config{Counts: []int{1}, Runs: 1},
	})
	require.NoError(t, err)
	require.Len(t, res.Cells, 2)
	for _, c := range res.Cells {
		require.Equal(t, "smoke", c.Target)
		// A lower bound from the simulated links, not a performance figure:
		// one request crosses the client link and the tunnel at least once.
		require.GreaterOrEqual(t, c.Mean, (2 * rtt).Seconds(), c)
	}
}
