package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/dnsserve"
	"potluck/internal/cli"
)

// The --dns-* flags become the DNS server's configuration.
func TestDNSFlags(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules")
	require.NoError(t, os.WriteFile(rules, []byte("198.51.100.0/24 eu us\n"), 0o600))
	badRules := filepath.Join(t.TempDir(), "bad")
	require.NoError(t, os.WriteFile(badRules, []byte("198.51.100.0/24\n"), 0o600))
	cases := []struct {
		name string
		args []string
		addr string
		err  string
		cfg  func(*testing.T, dnsserve.Config)
	}{
		{name: "off", args: nil},
		{name: "everything", args: []string{"--dns-listen", ":53", "--dns-zone", "apps.example.org,more.example.org", "--dns-ns", "ns1.apps.example.org=203.0.113.1",
			"--dns-ns", "ns2.example.net", "--dns-ttl", "30s", "--dns-rules", rules, "--dns-rate", "50", "--dns-check-interval", "5s"},
			addr: ":53", cfg: func(t *testing.T, c dnsserve.Config) {
				require.Equal(t, []string{"apps.example.org", "more.example.org"}, c.Zones)
				require.Equal(t, []dnsserve.NameServer{{Name: "ns1.apps.example.org.", Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.1")}}, {Name: "ns2.example.net."}}, c.NameServers)
				require.Equal(t, 30*time.Second, c.TTL)
				require.Equal(t, dnsserve.Rules{{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Regions: []string{"eu", "us"}}}, c.Rules)
				require.Equal(t, 50.0, c.Rate)
				require.Equal(t, 100.0, c.Burst)
				require.Equal(t, 5*time.Second, c.Check.Interval)
			}},
		{name: "rate 0 is no limit", args: []string{"--dns-listen", ":53", "--dns-zone", "apps.example.org", "--dns-ns", "ns1.example.org", "--dns-rate", "0"},
			addr: ":53", cfg: func(t *testing.T, c dnsserve.Config) { require.Negative(t, c.Rate) }},
		{name: "bad rules", args: []string{"--dns-listen", ":53", "--dns-zone", "apps.example.org", "--dns-ns", "ns1.example.org", "--dns-rules", badRules}, err: "want a prefix and at least one region"},
		{name: "missing rules", args: []string{"--dns-listen", ":53", "--dns-zone", "apps.example.org", "--dns-ns", "ns1.example.org", "--dns-rules", rules + ".nope"}, err: "--dns-rules"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var o options
			env, _, _ := cli.BufferEnv(nil)
			require.NoError(t, newFlags(&o).Parse(tc.args, env))
			addr, cfg, err := o.dns.config()
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.addr, addr)
			if tc.cfg != nil {
				tc.cfg(t, cfg)
			}
		})
	}
}
