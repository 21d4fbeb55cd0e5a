package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
)

// Every container is hardened, as the engine recorded it and as the probe
// inside finds it.
func TestContainersAreHardened(t *testing.T) {
	e := connect(t)
	ctx := context.Background()
	host := fmt.Sprintf("h-hard-%d", time.Now().UnixNano())
	ro := runProbe(t, e, Spec{Host: host, Installation: "hard", Instance: host + "-ro", ReadOnlyRoot: true, PidsLimit: 24})
	rw := runProbe(t, e, Spec{Host: host, Installation: "hard", Instance: host + "-rw"})

	insp, err := e.cli.ContainerInspect(ctx, ro.ID, client.ContainerInspectOptions{})
	require.NoError(t, err)
	hc := insp.Container.HostConfig
	require.Equal(t, []string{"ALL"}, hc.CapDrop)
	require.ElementsMatch(t, Capabilities, hc.CapAdd)
	require.NotContains(t, hc.CapAdd, "CAP_NET_RAW")
	require.Contains(t, hc.SecurityOpt, "no-new-privileges")
	require.NotNil(t, hc.PidsLimit)
	require.Equal(t, int64(24), *hc.PidsLimit)
	require.Equal(t, "json-file", hc.LogConfig.Type)
	require.Equal(t, map[string]string{"max-size": LogMaxSize, "max-file": "3"}, hc.LogConfig.Config)
	require.True(t, hc.ReadonlyRootfs)
	require.Equal(t, map[string]string{"/tmp": TmpfsOptions}, hc.Tmpfs)

	insp, err = e.cli.ContainerInspect(ctx, rw.ID, client.ContainerInspectOptions{})
	require.NoError(t, err)
	require.False(t, insp.Container.HostConfig.ReadonlyRootfs)
	require.Equal(t, int64(DefaultPidsLimit), *insp.Container.HostConfig.PidsLimit)
	var volume string
	for _, m := range insp.Container.Mounts {
		if m.Destination == "/data" {
			volume = m.Name
		}
	}
	require.NotEmpty(t, volume, "the image's VOLUME got an anonymous volume")

	for _, tc := range []struct {
		name string
		c    Container
		path string
		want string
	}{
		{"read-only root refuses writes", ro, "/write?path=/x", "denied"},
		{"read-only root keeps /tmp writable", ro, "/write?path=/tmp/x", "ok"},
		{"read-only root keeps volumes writable", ro, "/write?path=/data/x", "ok"},
		{"a writable root by default", rw, "/write?path=/x", "ok"},
		{"no raw sockets", rw, "/raw", "denied"},
		{"the pids limit stops a fork bomb", ro, "/spawn?n=200", "denied after"},
		{"processes within the limit start", rw, "/spawn?n=3", "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := probeGet(t, tc.c.HostPort, tc.path)
			require.True(t, strings.HasPrefix(got, tc.want), "got %q", got)
		})
	}

	require.NoError(t, e.Remove(ctx, rw.ID, 0))
	_, err = e.cli.VolumeInspect(ctx, volume, client.VolumeInspectOptions{})
	require.True(t, isNotFound(err), "the anonymous volume went with its container: %v", err)
}
