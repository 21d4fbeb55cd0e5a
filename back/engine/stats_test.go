package engine

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/bench/appimage"
)

func TestStatsReadsARealContainer(t *testing.T) {
	e := connect(t)
	ctx := context.Background()
	loadSampleImage(t, e)
	spec := Spec{Host: "h-test", Installation: "inst-stats", Instance: fmt.Sprintf("stats-%d", time.Now().UnixNano()), App: "hello",
		Image: appimage.DefaultTag, HostPort: freePort(t), ContainerPort: 8080, CPUs: 0.5, MemoryBytes: 64 << 20}
	c, err := e.Run(ctx, spec)
	require.NoError(t, err)
	t.Cleanup(func() { e.Remove(context.Background(), c.ID, 0) })

	first, err := e.Stats(ctx, c.ID)
	require.NoError(t, err)
	require.False(t, first.Read.IsZero())
	require.Positive(t, first.Memory, "a running Go process uses memory")
	require.Equal(t, uint64(64<<20), first.MemoryLimit)
	time.Sleep(200 * time.Millisecond)
	second, err := e.Stats(ctx, c.ID)
	require.NoError(t, err)
	require.True(t, second.Read.After(first.Read))
	require.GreaterOrEqual(t, second.CPU, first.CPU, "CPU time only grows")

	_, err = e.Stats(ctx, "potluck-no-such-container")
	require.ErrorContains(t, err, "docker stats")
}
