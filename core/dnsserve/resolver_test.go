package dnsserve_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/dnsserve"
	"potluck/internal/testenv"
)

// resolver is Go's own resolver (the pure-Go one) sending every query to addr.
func resolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

func lookup(t *testing.T, r *net.Resolver, name string) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ips, err := r.LookupNetIP(ctx, "ip", name)
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out, err
}

// requireDig skips (or, in CI, fails) without dig from bind9-dnsutils.
func requireDig(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("dig"); err != nil {
		testenv.Missing(t, "dig is missing: apt-get install bind9-dnsutils (scripts/install-deps.sh)")
	}
}

// dig runs dig against the server at addr and returns its output lines.
func dig(t *testing.T, addr string, args ...string) []string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "dig", append([]string{"@" + host, "-p", port, "+tries=1", "+time=2"}, args...)...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "dig %v: %s", args, out)
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// digStatus is the status dig reports (NOERROR, NXDOMAIN, REFUSED, …) and
// its flags line.
func digStatus(t *testing.T, addr string, args ...string) (status, flags string) {
	t.Helper()
	for _, l := range dig(t, addr, append(args, "+noall", "+comments")...) {
		if _, rest, ok := strings.Cut(l, "status: "); ok {
			status, _, _ = strings.Cut(rest, ",")
		}
		if _, rest, ok := strings.Cut(l, ";; flags: "); ok {
			flags, _, _ = strings.Cut(rest, ";")
		}
	}
	return status, flags
}

// TestRealResolvers: Go's resolver and dig against the server, with
// Fronts that are real HTTP listeners on loopback; one listener closes and
// its address leaves the answers within Fall × Interval + Timeout.
func TestRealResolvers(t *testing.T) {
	requireDig(t)
	var fronts []*dnsserve.Front
	var servers []*httptest.Server
	for i, region := range []string{"eu", "us"} {
		ip := netip.AddrFrom4([4]byte{127, 0, 53, byte(i + 1)})
		ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
		require.NoError(t, err)
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		srv.Listener = ln
		srv.Start()
		t.Cleanup(srv.Close)
		servers = append(servers, srv)
		fronts = append(fronts, &dnsserve.Front{ID: region, Name: "front-" + region, Region: region, Addrs: []netip.Addr{ip},
			CheckURL: "http://" + ln.Addr().String(), CoreUp: true})
	}
	view := dnsserve.NewView(7, []*dnsserve.Site{{Installation: "shop", Domain: "shop.apps.test", Fronts: []string{"eu", "us"}}}, fronts)
	rules, err := dnsserve.ParseRules(strings.NewReader("198.51.100.0/24 eu us\n203.0.113.0/24 us eu\n"))
	require.NoError(t, err)
	check := dnsserve.CheckConfig{Interval: 200 * time.Millisecond, Timeout: time.Second, Fall: 2, Rise: 2}
	s, err := dnsserve.New(dnsserve.Config{Zones: []string{"apps.test"}, Source: dnsserve.StaticSource{V: view}, Rules: rules,
		NameServers: []dnsserve.NameServer{{Name: "ns1.apps.test", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.53")}}},
		TTL:         2 * time.Second, Check: check})
	require.NoError(t, err)
	require.NoError(t, s.Start("127.0.0.1:0"))
	t.Cleanup(func() { s.Close() })
	addr := s.Addr()
	r := resolver(addr)

	ips, err := lookup(t, r, "shop.apps.test.")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"127.0.53.1", "127.0.53.2"}, ips)
	_, err = lookup(t, r, "nope.apps.test.")
	var dnsErr *net.DNSError
	require.ErrorAs(t, err, &dnsErr)
	require.True(t, dnsErr.IsNotFound, "NXDOMAIN: %v", err)
	_, err = lookup(t, r, "example.com.")
	require.ErrorAs(t, err, &dnsErr)
	require.False(t, dnsErr.IsNotFound, "REFUSED is no answer at all, not a name that does not exist: %v", err)

	require.Equal(t, []string{"127.0.53.1", "127.0.53.2"}, dig(t, addr, "+short", "+subnet=198.51.100.0/24", "shop.apps.test", "A"), "eu client: eu first")
	require.Equal(t, []string{"127.0.53.2", "127.0.53.1"}, dig(t, addr, "+short", "+subnet=203.0.113.0/24", "shop.apps.test", "A"), "us client: us first")
	require.Equal(t, []string{"shop.apps.test.\t\t2\tIN\tA\t127.0.53.1", "shop.apps.test.\t\t2\tIN\tA\t127.0.53.2"},
		dig(t, addr, "+noall", "+answer", "+subnet=198.51.100.0/24", "shop.apps.test", "A"), "TTL 2")
	status, flags := digStatus(t, addr, "shop.apps.test", "A")
	require.Equal(t, "NOERROR", status)
	require.Contains(t, flags, "aa")
	require.NotContains(t, flags, "ra", "never a recursive resolver")
	status, _ = digStatus(t, addr, "nope.apps.test", "A")
	require.Equal(t, "NXDOMAIN", status)
	status, flags = digStatus(t, addr, "www.example.com", "A")
	require.Equal(t, "REFUSED", status)
	require.NotContains(t, flags, "aa")
	require.Equal(t, []string{"ns1.apps.test."}, dig(t, addr, "+short", "apps.test", "NS"))
	require.Equal(t, []string{"ns1.apps.test. hostmaster.apps.test. 7 3600 600 86400 2"}, dig(t, addr, "+short", "apps.test", "SOA"))
	require.Equal(t, []string{"127.0.53.1", "127.0.53.2"}, dig(t, addr, "+short", "+tcp", "+subnet=198.51.100.0/24", "shop.apps.test", "A"), "over TCP")

	// The eu Front dies; it must leave the answers within the documented
	// bound, seen by both clients.
	s.Observe(context.Background()) // both checked once
	servers[0].Close()
	killed := time.Now()
	bound := time.Duration(check.Fall)*check.Interval + check.Timeout
	require.Eventually(t, func() bool {
		ips, err := lookup(t, r, "shop.apps.test.")
		return err == nil && slices.Equal(ips, []string{"127.0.53.2"})
	}, bound+2*time.Second, 20*time.Millisecond, "Go's resolver still gets the dead Front")
	took := time.Since(killed)
	t.Logf("the dead Front left the answers after %v (documented bound: Fall×Interval+Timeout = %v)", took.Round(time.Millisecond), bound)
	require.Equal(t, []string{"127.0.53.2"}, dig(t, addr, "+short", "+subnet=198.51.100.0/24", "shop.apps.test", "A"), "dig: the eu client goes to us now")
	require.EqualValues(t, 1, s.Stats().Front("eu").Down.Load())
	require.Zero(t, s.Stats().Site("shop.apps.test").Down.Load(), "the service kept a live Front")
	require.Positive(t, s.Stats().Site("shop.apps.test").Requests.Load())
}
