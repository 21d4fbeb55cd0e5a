package engine

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"potluck/back/hostfw"
	"potluck/bench/appimage"
	"potluck/internal/dockertest"
)

// probeGet asks the probe published on port to do something and returns
// its answer.
func probeGet(t *testing.T, port uint16, path string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

// runProbe runs the probe as an instance and waits until it answers on its
// published port.
func runProbe(t *testing.T, e *Engine, s Spec) Container {
	t.Helper()
	dockertest.ProbeImage(t)
	s.Image, s.ContainerPort = appimage.ProbeTag, 8080
	if s.HostPort == 0 {
		s.HostPort = freePort(t)
	}
	c, err := e.Run(context.Background(), s)
	require.NoError(t, err)
	t.Cleanup(func() { e.Remove(context.Background(), c.ID, 0) })
	require.Eventually(t, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", s.HostPort))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 20*time.Second, 100*time.Millisecond)
	c.HostPort = s.HostPort
	return c
}

func containerIP(t *testing.T, e *Engine, id string) netip.Addr {
	t.Helper()
	insp, err := e.cli.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
	require.NoError(t, err)
	for _, ep := range insp.Container.NetworkSettings.Networks {
		if ep.IPAddress.IsValid() {
			return ep.IPAddress
		}
	}
	t.Fatalf("container %s has no address", id)
	return netip.Addr{}
}

func networkOf(t *testing.T, e *Engine, host, installation string) Network {
	t.Helper()
	n, ok, err := e.findNetwork(context.Background(), NetworkName(host, installation))
	require.NoError(t, err)
	require.True(t, ok, "installation %s has its network", installation)
	return n
}

// From inside an installation's container, probed for real: another
// installation's container, another tenant's container and the host's own
// services (on the bridge gateway and on another bridge's) cannot be
// reached; the installation's own containers and its published port can.
func TestInstallationsAreIsolated(t *testing.T) {
	e := connect(t)
	ctx := context.Background()
	require.NoError(t, (&hostfw.Firewall{Interfaces: BridgePrefix + "+"}).Ensure(ctx))
	host := fmt.Sprintf("h-iso-%d", time.Now().UnixNano())
	a := runProbe(t, e, Spec{Host: host, Installation: "iso-a", Instance: host + "-a1"})
	a2 := runProbe(t, e, Spec{Host: host, Installation: "iso-a", Instance: host + "-a2"})
	b := runProbe(t, e, Spec{Host: host, Installation: "iso-b", Instance: host + "-b1"})
	netA, netB := networkOf(t, e, host, "iso-a"), networkOf(t, e, host, "iso-b")
	require.NotEqual(t, netA.Subnet, netB.Subnet)
	require.True(t, DefaultNetworkPool.Contains(netA.Subnet.Addr()) && DefaultNetworkPool.Contains(netB.Subnet.Addr()))
	tenant := runTenant(t, e)

	// Services of the host, listening on the bridges' gateway addresses.
	listen := func(addr netip.Addr) string {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		return ln.Addr().String()
	}
	hostOnA, hostOnB := listen(netA.Gateway), listen(netB.Gateway)

	dial := func(from Container, addr string) string {
		return probeGet(t, from.HostPort, "/dial?addr="+addr)
	}
	// Controls: the probe does connect where nothing forbids it.
	require.Equal(t, "ok connected", dial(a, netip.AddrPortFrom(containerIP(t, e, a2.ID), 8080).String()), "same installation")
	require.Equal(t, "ok connected", dial(tenant, hostOnA), "a container outside Potluck's networks reaches the listener")

	for name, addr := range map[string]string{
		"another installation's container": netip.AddrPortFrom(containerIP(t, e, b.ID), 8080).String(),
		"another tenant's container":       netip.AddrPortFrom(containerIP(t, e, tenant.ID), 8080).String(),
		"the host on the gateway":          hostOnA,
		"the host on another bridge":       hostOnB,
	} {
		require.True(t, strings.HasPrefix(dial(a, addr), "denied"), "installation a reached %s (%s)", name, addr)
	}
	require.True(t, strings.HasPrefix(dial(tenant, netip.AddrPortFrom(containerIP(t, e, a.ID), 8080).String()), "denied"), "a tenant reached installation a")
	require.Equal(t, "probe "+a.Instance, probeGet(t, a.HostPort, "/"), "the published port still serves")
}

// runTenant runs the probe the way another user of the engine would: on a
// network of its own that Potluck did not make.
func runTenant(t *testing.T, e *Engine) Container {
	t.Helper()
	ctx := context.Background()
	used, err := e.usedPrefixes(ctx)
	require.NoError(t, err)
	var subnet netip.Prefix
	for i := range 64 {
		if p := nthSubnet(netip.MustParsePrefix("198.19.252.0/22"), 28, i); !overlapsAny(p, used) {
			subnet = p
			break
		}
	}
	require.True(t, subnet.IsValid(), "no free test subnet")
	name := fmt.Sprintf("potluck-test-tenant-%d", time.Now().UnixNano())
	nw, err := e.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{
		Driver: "bridge", IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: subnet, Gateway: subnet.Addr().Next()}}},
		Labels: map[string]string{"io.potluck.test": "tenant"},
	})
	require.NoError(t, err)
	t.Cleanup(func() { e.cli.NetworkRemove(context.Background(), nw.ID, client.NetworkRemoveOptions{}) })
	port := freePort(t)
	ctrPort, _ := network.PortFrom(8080, network.TCP)
	res, err := e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:   name,
		Config: &container.Config{Image: appimage.ProbeTag, Labels: map[string]string{"io.potluck.test": "tenant"}, ExposedPorts: network.PortSet{ctrPort: {}}},
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(name),
			PortBindings: network.PortMap{ctrPort: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: fmt.Sprint(port)}}}},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		e.cli.ContainerRemove(context.Background(), res.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	})
	_, err = e.cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}, 20*time.Second, 100*time.Millisecond)
	return Container{ID: res.ID, HostPort: port}
}

// An installation's network comes with its first container and goes with
// its last.
func TestInstallationNetworkGoesWithItsLastContainer(t *testing.T) {
	e := connect(t)
	ctx := context.Background()
	host := fmt.Sprintf("h-net-%d", time.Now().UnixNano())
	one := runProbe(t, e, Spec{Host: host, Installation: "net", Instance: host + "-1"})
	two := runProbe(t, e, Spec{Host: host, Installation: "net", Instance: host + "-2"})
	n := networkOf(t, e, host, "net")
	require.Equal(t, n.Subnet.Addr().Next(), n.Gateway)
	require.NoError(t, e.Remove(ctx, one.ID, 0))
	networkOf(t, e, host, "net")
	require.NoError(t, e.Remove(ctx, two.ID, 0))
	_, ok, err := e.findNetwork(ctx, NetworkName(host, "net"))
	require.NoError(t, err)
	require.False(t, ok, "the network left with its last container")
	nets, err := e.Networks(ctx, host)
	require.NoError(t, err)
	require.Empty(t, nets)
}

func TestSubnetArithmetic(t *testing.T) {
	pool := DefaultNetworkPool
	require.Equal(t, "198.18.0.0/28", nthSubnet(pool, 28, 0).String())
	require.Equal(t, "198.18.0.16/28", nthSubnet(pool, 28, 1).String())
	require.Equal(t, "198.19.255.240/28", nthSubnet(pool, 28, 1<<13-1).String())
	require.True(t, overlapsAny(netip.MustParsePrefix("198.18.0.16/28"), []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}))
	require.False(t, overlapsAny(netip.MustParsePrefix("198.18.0.16/28"), []netip.Prefix{netip.MustParsePrefix("198.18.0.0/28")}))
	require.Len(t, bridgeName(NetworkName("h-1f2e3d4c5b6a", strings.Repeat("x", 63))), 15)
	require.Error(t, ValidateNetworkPool(netip.MustParsePrefix("198.18.0.0/15"), 30))
	require.Error(t, ValidateNetworkPool(netip.MustParsePrefix("198.18.0.0/24"), 20))
	require.NoError(t, ValidateNetworkPool(netip.MustParsePrefix("198.18.0.0/24"), 29))
}

// A container an earlier release left on Docker's default bridge is not
// adopted as it is: it is made anew on its installation's network.
func TestContainerOnTheDefaultBridgeIsRecreated(t *testing.T) {
	e := connect(t)
	ctx := context.Background()
	dockertest.ProbeImage(t)
	host := fmt.Sprintf("h-old-%d", time.Now().UnixNano())
	instance := host + "-1"
	res, err := e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: ContainerName(instance),
		Config: &container.Config{Image: appimage.ProbeTag, Labels: map[string]string{
			LabelManaged: "true", LabelHost: host, LabelInstallation: "old", LabelInstance: instance, LabelPort: "5999"}},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		e.cli.ContainerRemove(context.Background(), res.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	})
	c := runProbe(t, e, Spec{Host: host, Installation: "old", Instance: instance})
	require.NotEqual(t, res.ID, c.ID)
	require.Equal(t, NetworkName(host, "old"), c.Network)
	again, err := e.Run(ctx, Spec{Host: host, Installation: "old", Instance: instance, Image: appimage.ProbeTag, ContainerPort: 8080, HostPort: c.HostPort})
	require.NoError(t, err)
	require.Equal(t, c.ID, again.ID, "a current container is adopted")
}

// A network left without containers (a Back stopped between removing a
// container and its network) goes at the next RemoveUnusedNetworks; a
// network in use stays.
func TestRemoveUnusedNetworks(t *testing.T) {
	e := connect(t)
	ctx := context.Background()
	host := fmt.Sprintf("h-gc-%d", time.Now().UnixNano())
	runProbe(t, e, Spec{Host: host, Installation: "used", Instance: host + "-1"})
	_, err := e.ensureNetwork(ctx, host, "left")
	require.NoError(t, err)
	t.Cleanup(func() { e.removeNetworkIfUnused(context.Background(), NetworkName(host, "left")) })
	nets, err := e.Networks(ctx, host)
	require.NoError(t, err)
	require.Len(t, nets, 2)

	require.NoError(t, e.RemoveUnusedNetworks(ctx, host))
	nets, err = e.Networks(ctx, host)
	require.NoError(t, err)
	require.Len(t, nets, 1)
	require.Equal(t, NetworkName(host, "used"), nets[0].Name)
}
