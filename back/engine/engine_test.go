package engine

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"potluck/bench/appimage"
	"potluck/internal/dockertest"
)

func connect(t *testing.T) *Engine {
	t.Helper()
	dockertest.Require(t)
	e, err := Connect(context.Background(), "", nil)
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return e
}

// loadSampleImage loads the sample app as appimage.DefaultTag.
func loadSampleImage(t *testing.T, e *Engine) {
	t.Helper()
	f, err := os.Open(dockertest.SampleImage(t))
	require.NoError(t, err)
	defer f.Close()
	_, err = e.LoadImageAs(context.Background(), f, appimage.DefaultTag)
	require.NoError(t, err)
}

func freePort(t *testing.T) uint16 {
	t.Helper()
	for p := 5000; p <= 6000; p++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			ln.Close()
			return uint16(p)
		}
	}
	t.Fatal("no free port in 5000-6000")
	return 0
}

func TestRunAdoptAndRemoveARealContainer(t *testing.T) {
	e := connect(t)
	ctx := context.Background()
	loadSampleImage(t, e)
	has, err := e.HasImage(ctx, appimage.DefaultTag)
	require.NoError(t, err)
	require.True(t, has)

	instance := fmt.Sprintf("test-%d", time.Now().UnixNano())
	spec := Spec{Host: "h-test", Installation: "inst-a", Instance: instance, App: "hello", Image: appimage.DefaultTag,
		HostPort: freePort(t), ContainerPort: 8080, CPUs: 0.5, MemoryBytes: 64 << 20, Env: map[string]string{"GREETING": "hi"}}
	c, err := e.Run(ctx, spec)
	require.NoError(t, err)
	t.Cleanup(func() { e.Remove(context.Background(), c.ID, 0) })
	require.True(t, c.Running())
	require.Equal(t, instance, c.Instance)
	require.Equal(t, "inst-a", c.Installation)
	require.Equal(t, spec.HostPort, c.HostPort)

	url := fmt.Sprintf("http://127.0.0.1:%d/", spec.HostPort)
	var body string
	require.Eventually(t, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	}, 20*time.Second, 100*time.Millisecond)
	require.Equal(t, "Hello from "+instance+"\n", body)
	// Its address on the installation network answers too, without
	// docker-proxy: what the Back's forward dials first.
	require.True(t, DefaultNetworkPool.Contains(c.IP), "address %v on the installation network", c.IP)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + netip.AddrPortFrom(c.IP, 8080).String() + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)

	// Limits and loopback-only publishing, as the engine recorded them.
	insp, err := e.cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(500_000_000), insp.Container.HostConfig.NanoCPUs)
	require.Equal(t, int64(64<<20), insp.Container.HostConfig.Memory)
	for _, bindings := range insp.Container.HostConfig.PortBindings {
		for _, b := range bindings {
			require.Equal(t, "127.0.0.1", b.HostIP.String(), "published on loopback only")
		}
	}
	require.Contains(t, insp.Container.Config.Env, "GREETING=hi")

	// A restarted Back runs the same spec again: the container is adopted.
	again, err := e.Run(ctx, spec)
	require.NoError(t, err)
	require.Equal(t, c.ID, again.ID)
	// A stopped container is started again, not duplicated.
	require.NoError(t, e.Stop(ctx, c.ID, time.Second))
	again, err = e.Run(ctx, spec)
	require.NoError(t, err)
	require.Equal(t, c.ID, again.ID)
	require.True(t, again.Running())

	all, err := e.List(ctx, "h-test")
	require.NoError(t, err)
	n := 0
	for _, x := range all {
		if x.Instance == instance {
			n++
		}
	}
	require.Equal(t, 1, n)

	require.NoError(t, e.Remove(ctx, c.ID, time.Second))
	require.NoError(t, e.Remove(ctx, c.ID, time.Second), "removing twice is fine")
	_, found, err := e.find(ctx, instance)
	require.NoError(t, err)
	require.False(t, found)
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", spec.HostPort))
	require.NoError(t, err, "the port is free again")
	ln.Close()
}

func TestBadSpecsCreateNothing(t *testing.T) {
	e := connect(t)
	ok := Spec{Host: "h", Installation: "i", Instance: "bad-spec", Image: appimage.DefaultTag, HostPort: 5999, ContainerPort: 8080}
	for _, tc := range []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{"no instance", func(s *Spec) { s.Instance = "" }, "instance are required"},
		{"no host", func(s *Spec) { s.Host = "" }, "instance are required"},
		{"public address", func(s *Spec) { s.HostIP = netip.MustParseAddr("0.0.0.0") }, "loopback only"},
		{"no image", func(s *Spec) { s.Image = "" }, "image is required"},
		{"no port", func(s *Spec) { s.HostPort = 0 }, "ports are required"},
		{"negative cpu", func(s *Spec) { s.CPUs = -1 }, "must not be negative"},
		{"negative pids", func(s *Spec) { s.PidsLimit = -1 }, "must not be negative"},
		{"tiny memory", func(s *Spec) { s.MemoryBytes = 1024 }, "6 MiB"},
		{"unknown image", func(s *Spec) { s.Image = "potluck-no-such-image:never" }, "docker create"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.edit(&s)
			_, err := e.Run(context.Background(), s)
			require.ErrorContains(t, err, tc.want)
			_, found, err := e.find(context.Background(), "bad-spec")
			require.NoError(t, err)
			require.False(t, found)
			nets, err := e.Networks(context.Background(), "h")
			require.NoError(t, err)
			require.Empty(t, nets, "no network is left behind")
		})
	}
	_, err := e.LoadImageAs(context.Background(), strings.NewReader("this is not a tarball"), "potluck-test-never:latest")
	require.Error(t, err)
	has, err := e.HasImage(context.Background(), "potluck-test-never:latest")
	require.NoError(t, err)
	require.False(t, has)
}

func TestUnreachableEngineIsAClearError(t *testing.T) {
	_, err := Connect(context.Background(), "unix:///nonexistent/docker.sock", nil)
	require.ErrorIs(t, err, ErrUnreachable)
	require.ErrorContains(t, err, "is dockerd running")
}

func TestVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		less bool
	}{{"1.40", "1.41", true}, {"1.41", "1.41", false}, {"1.9", "1.41", true}, {"1.52", "1.41", false}, {"2.0", "1.41", false}} {
		require.Equal(t, tc.less, versionLess(tc.a, tc.b), "%s < %s", tc.a, tc.b)
	}
}
