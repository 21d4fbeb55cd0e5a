package dnsserve_test

import (
	"context"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/dnsserve"
	"potluck/internal/dockertest"
	"potluck/internal/localcluster"
)

// TestClusterDNS runs the DNS on every node of a real three-node core, with
// two real Fronts (eu on 127.0.53.11, us on 127.0.53.12) serving one
// installation. A Front is killed: it leaves the answers of every core
// node, for Go's resolver and for dig, within the documented bound; it
// comes back when it starts again.
func TestClusterDNS(t *testing.T) {
	if testing.Short() {
		t.Skip("a real cluster: ~20 s")
	}
	requireDig(t)
	dockertest.Require(t) // the Back that the installation needs runs on Docker
	rules, err := dnsserve.ParseRules(strings.NewReader("198.51.100.0/24 eu us\n203.0.113.0/24 us eu\n"))
	require.NoError(t, err)
	// A generous timeout: a Front slowed by a loaded machine must not fail a
	// check (a dead one refuses at once).
	check := dnsserve.CheckConfig{Interval: 300 * time.Millisecond, Timeout: time.Second, Fall: 2, Rise: 2}
	ctx := context.Background()
	c, err := localcluster.Start(ctx, localcluster.Config{Dir: t.TempDir(), Cores: 3, HeartbeatTTL: 4 * time.Second,
		DNS: &dnsserve.Config{Zones: []string{"apps.test"}, NameServers: []dnsserve.NameServer{{Name: "ns1.apps.test"}},
			TTL: 2 * time.Second, Rules: rules, Check: check}})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })

	eu := localcluster.FrontOptions{PublicIP: netip.MustParseAddr("127.0.53.11"), Region: "eu"}
	us := localcluster.FrontOptions{PublicIP: netip.MustParseAddr("127.0.53.12"), Region: "us"}
	front1, err := c.StartFrontWith(ctx, "front1", eu)
	require.NoError(t, err)
	_, err = c.StartFrontWith(ctx, "front2", us)
	require.NoError(t, err)
	_, err = c.StartBack(ctx, "back1", 0, filepath.Join(t.TempDir(), "back1"))
	require.NoError(t, err)
	require.NoError(t, c.WaitReady(ctx, 30*time.Second, "front1", "front2", "back1"))
	// The image is never pulled (nothing listens there, on loopback): DNS
	// needs the installation's Fronts, not its containers.
	code, err := c.API(ctx, http.MethodPost, "/v1/apps", map[string]any{"name": "web", "image": "127.0.0.1:9/potluck-dns-test:1", "container_port": 8080}, nil)
	require.Equal(t, http.StatusCreated, code, err)
	code, err = c.API(ctx, http.MethodPost, "/v1/installations", map[string]any{
		"name": "shop", "app": "web", "fronts": 2, "backs": 1, "domain": "shop.apps.test",
		"cpus": 0.25, "memory_mb": 64, "disk_mb": 64, "container_port": 8080,
	}, nil)
	require.Equal(t, http.StatusCreated, code, err)

	var addrs []string
	for i := range c.NumCores() {
		addrs = append(addrs, c.Core(i).DNS.Addr())
	}
	both := []string{"127.0.53.11", "127.0.53.12"}
	for _, addr := range addrs {
		require.Eventually(t, func() bool {
			ips, err := lookup(t, resolver(addr), "shop.apps.test.")
			slices.Sort(ips)
			return err == nil && slices.Equal(ips, both)
		}, 10*time.Second, 50*time.Millisecond, "core DNS %s never answered both Fronts", addr)
		require.Equal(t, both, dig(t, addr, "+short", "+subnet=198.51.100.0/24", "shop.apps.test", "A"), "eu client: eu Front first")
		require.Equal(t, []string{"127.0.53.12", "127.0.53.11"}, dig(t, addr, "+short", "+subnet=203.0.113.0/24", "shop.apps.test", "A"), "us client: us Front first")
		status, _ := digStatus(t, addr, "nope.apps.test", "A")
		require.Equal(t, "NXDOMAIN", status)
		status, _ = digStatus(t, addr, "example.com", "A")
		require.Equal(t, "REFUSED", status)
	}

	front1.Stop()
	killed := time.Now()
	bound := time.Duration(check.Fall)*check.Interval + check.Timeout
	for _, addr := range addrs {
		require.Eventually(t, func() bool {
			ips, err := lookup(t, resolver(addr), "shop.apps.test.")
			return err == nil && slices.Equal(ips, []string{"127.0.53.12"})
		}, bound+3*time.Second, 20*time.Millisecond, "core DNS %s still answers the dead Front", addr)
		t.Logf("core DNS %s: the dead Front left the answers %v after it died (documented bound: Fall×Interval+Timeout = %v)",
			addr, time.Since(killed).Round(time.Millisecond), bound)
		require.Equal(t, []string{"127.0.53.12"}, dig(t, addr, "+short", "+subnet=198.51.100.0/24", "shop.apps.test", "A"))
	}
	// The core notices too (heartbeat TTL), so the Front stays out even
	// for a DNS server that cannot check it.
	require.Eventually(t, func() bool {
		hs, err := c.Hosts(ctx)
		return err == nil && hs["front1"].Status == "down"
	}, 15*time.Second, 100*time.Millisecond)
	for i := range c.NumCores() {
		st := c.Core(i).DNS.Stats()
		require.NotNil(t, st.Site("shop.apps.test"))
		require.Positive(t, st.Site("shop.apps.test").Requests.Load())
		require.Zero(t, st.Site("shop.apps.test").Down.Load(), "the service kept a live Front")
	}

	_, err = c.StartFrontWith(ctx, "front1", eu)
	require.NoError(t, err)
	back := time.Now()
	for _, addr := range addrs {
		require.Eventually(t, func() bool {
			ips, err := lookup(t, resolver(addr), "shop.apps.test.")
			slices.Sort(ips)
			return err == nil && slices.Equal(ips, both)
		}, 20*time.Second, 50*time.Millisecond, "core DNS %s never answered the restarted Front", addr)
	}
	t.Logf("the restarted Front was back in every core's answers after %v", time.Since(back).Round(time.Millisecond))
}
