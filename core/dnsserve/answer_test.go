package dnsserve

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
)

const zone = "apps.example.org."

// fixture: shop has Fronts f1 (eu, 192.0.2.1), f2 (us, 192.0.2.2) and f3
// (eu, 2001:db8::3); f4 (192.0.2.4) is down in the core's view.
func fixture() *View {
	return NewView(42, []*Site{
		{Installation: "shop", Domain: "Shop.apps.example.org", Fronts: []string{"f1", "f2", "f3", "f4"}},
		{Installation: "deep", Domain: "a.b.apps.example.org.", Fronts: []string{"f1"}},
		{Installation: "empty", Domain: "empty.apps.example.org.", Fronts: []string{"f4"}},
	}, []*Front{
		{ID: "f1", Name: "front1", Region: "eu", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, CoreUp: true},
		{ID: "f2", Name: "front2", Region: "us", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.2")}, CoreUp: true},
		{ID: "f3", Name: "front3", Region: "eu", Addrs: []netip.Addr{netip.MustParseAddr("2001:db8::3")}, CoreUp: true},
		{ID: "f4", Name: "front4", Region: "eu", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.4")}, CoreUp: false},
	})
}

func newTestServer(t *testing.T, v *View, mod func(*Config)) *Server {
	t.Helper()
	rules, err := ParseRules(strings.NewReader("198.51.100.0/24 eu us\n203.0.113.0/24 us # the Americas\n2001:db8:ff::/48 us\n"))
	require.NoError(t, err)
	cfg := Config{Zones: []string{"Apps.Example.org"}, Source: StaticSource{v}, Rules: rules,
		NameServers: []NameServer{{Name: "ns1.apps.example.org.", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.53")}}, {Name: "ns.other.net."}}}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	return s
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func withECS(m *dns.Msg, prefix string) *dns.Msg {
	p := netip.MustParsePrefix(prefix)
	fam := uint16(1)
	if p.Addr().Is6() {
		fam = 2
	}
	m.SetEdns0(1232, false)
	o := m.IsEdns0()
	o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: fam, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
	return m
}

func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, fmt.Sprintf("%s %d A %s", rr.Hdr.Name, rr.Hdr.Ttl, rr.A))
		case *dns.AAAA:
			out = append(out, fmt.Sprintf("%s %d AAAA %s", rr.Hdr.Name, rr.Hdr.Ttl, rr.AAAA))
		case *dns.NS:
			out = append(out, fmt.Sprintf("%s NS %s", rr.Hdr.Name, rr.Ns))
		case *dns.SOA:
			out = append(out, fmt.Sprintf("%s %d SOA %s %s %d min %d", rr.Hdr.Name, rr.Hdr.Ttl, rr.Ns, rr.Mbox, rr.Serial, rr.Minttl))
		default:
			out = append(out, rr.String())
		}
	}
	return out
}

func TestAnswer(t *testing.T) {
	eu := netip.MustParseAddr("198.51.100.9")
	us := netip.MustParseAddr("203.0.113.9")
	elsewhere := netip.MustParseAddr("10.1.2.3")
	soa := "apps.example.org. 10 SOA ns1.apps.example.org. hostmaster.apps.example.org. 42 min 10"
	cases := []struct {
		name      string
		req       *dns.Msg
		client    netip.Addr
		rcode     int
		aa        bool
		answer    []string
		ns, extra []string
	}{
		{name: "A from an eu client: eu Front first, then us; the Front the core holds down is left out",
			req: query("shop.apps.example.org.", dns.TypeA), client: eu, rcode: dns.RcodeSuccess, aa: true,
			answer: []string{"shop.apps.example.org. 10 A 192.0.2.1", "shop.apps.example.org. 10 A 192.0.2.2"}},
		{name: "A from a us client: us first",
			req: query("SHOP.apps.example.org.", dns.TypeA), client: us, rcode: dns.RcodeSuccess, aa: true,
			answer: []string{"shop.apps.example.org. 10 A 192.0.2.2", "shop.apps.example.org. 10 A 192.0.2.1"}},
		{name: "ECS wins over the resolver's own address",
			req: withECS(query("shop.apps.example.org.", dns.TypeA), "203.0.113.0/24"), client: eu, rcode: dns.RcodeSuccess, aa: true,
			answer: []string{"shop.apps.example.org. 10 A 192.0.2.2", "shop.apps.example.org. 10 A 192.0.2.1"}},
		{name: "AAAA",
			req: query("shop.apps.example.org.", dns.TypeAAAA), client: elsewhere, rcode: dns.RcodeSuccess, aa: true,
			answer: []string{"shop.apps.example.org. 10 AAAA 2001:db8::3"}},
		{name: "MX of a service: NODATA with the SOA",
			req: query("shop.apps.example.org.", dns.TypeMX), client: elsewhere, rcode: dns.RcodeSuccess, aa: true, ns: []string{soa}},
		{name: "a service whose Fronts are all down: NODATA",
			req: query("empty.apps.example.org.", dns.TypeA), client: elsewhere, rcode: dns.RcodeSuccess, aa: true, ns: []string{soa}},
		{name: "unknown name in the zone: NXDOMAIN with the SOA",
			req: query("nope.apps.example.org.", dns.TypeA), client: elsewhere, rcode: dns.RcodeNameError, aa: true, ns: []string{soa}},
		{name: "a name between the zone and a service: NODATA",
			req: query("b.apps.example.org.", dns.TypeA), client: elsewhere, rcode: dns.RcodeSuccess, aa: true, ns: []string{soa}},
		{name: "a name outside the zone: REFUSED, never recursion",
			req: query("www.google.com.", dns.TypeA), client: elsewhere, rcode: dns.RcodeRefused},
		{name: "the parent of the zone: REFUSED",
			req: query("example.org.", dns.TypeNS), client: elsewhere, rcode: dns.RcodeRefused},
		{name: "SOA at the apex",
			req: query("apps.example.org.", dns.TypeSOA), client: elsewhere, rcode: dns.RcodeSuccess, aa: true,
			answer: []string{"apps.example.org. 3600 SOA ns1.apps.example.org. hostmaster.apps.example.org. 42 min 10"}},
		{name: "NS at the apex with glue for the name server inside the zone",
			req: query("apps.example.org.", dns.TypeNS), client: elsewhere, rcode: dns.RcodeSuccess, aa: true,
			answer: []string{"apps.example.org. NS ns1.apps.example.org.", "apps.example.org. NS ns.other.net."},
			extra:  []string{"ns1.apps.example.org. 3600 A 192.0.2.53"}},
		{name: "a name server's address",
			req: query("ns1.apps.example.org.", dns.TypeA), client: elsewhere, rcode: dns.RcodeSuccess, aa: true,
			answer: []string{"ns1.apps.example.org. 3600 A 192.0.2.53"}},
		{name: "zone transfer: REFUSED",
			req: query("apps.example.org.", dns.TypeAXFR), client: elsewhere, rcode: dns.RcodeRefused},
		{name: "class CHAOS: REFUSED",
			req: func() *dns.Msg {
				m := query("shop.apps.example.org.", dns.TypeA)
				m.Question[0].Qclass = dns.ClassCHAOS
				return m
			}(),
			client: elsewhere, rcode: dns.RcodeRefused},
		{name: "an UPDATE: NOTIMP",
			req: func() *dns.Msg {
				m := query("shop.apps.example.org.", dns.TypeA)
				m.Opcode = dns.OpcodeUpdate
				return m
			}(),
			client: elsewhere, rcode: dns.RcodeNotImplemented},
		{name: "no question: FORMERR",
			req:    func() *dns.Msg { m := query("shop.apps.example.org.", dns.TypeA); m.Question = nil; return m }(),
			client: elsewhere, rcode: dns.RcodeFormatError},
		{name: "ECS with a scope in the query: FORMERR",
			req: func() *dns.Msg {
				m := withECS(query("shop.apps.example.org.", dns.TypeA), "198.51.100.0/24")
				subnetOption(m.IsEdns0()).SourceScope = 24
				return m
			}(), client: elsewhere, rcode: dns.RcodeFormatError},
		{name: "ECS with address bits past its prefix: FORMERR",
			req: func() *dns.Msg {
				m := withECS(query("shop.apps.example.org.", dns.TypeA), "198.51.100.0/24")
				subnetOption(m.IsEdns0()).Address = netip.MustParseAddr("198.51.100.7").AsSlice()
				return m
			}(), client: elsewhere, rcode: dns.RcodeFormatError},
		{name: "ECS with prefix 0: the resolver's own address is used",
			req: withECS(query("shop.apps.example.org.", dns.TypeA), "0.0.0.0/0"), client: us, rcode: dns.RcodeSuccess, aa: true,
			answer: []string{"shop.apps.example.org. 10 A 192.0.2.2", "shop.apps.example.org. 10 A 192.0.2.1"}},
		{name: "IPv6 ECS from an eu resolver: the client's rule (us) wins",
			req: withECS(query("shop.apps.example.org.", dns.TypeA), "2001:db8:ff::/56"), client: eu, rcode: dns.RcodeSuccess, aa: true,
			answer: []string{"shop.apps.example.org. 10 A 192.0.2.2", "shop.apps.example.org. 10 A 192.0.2.1"}},
		{name: "EDNS version 1: BADVERS",
			req: func() *dns.Msg {
				m := query("shop.apps.example.org.", dns.TypeA)
				m.SetEdns0(1232, false)
				m.IsEdns0().SetVersion(1)
				return m
			}(), client: elsewhere, rcode: dns.RcodeBadVers},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, fixture(), nil)
			resp := s.Answer(tc.req, tc.client, true)
			require.Equal(t, dns.RcodeToString[tc.rcode], dns.RcodeToString[resp.Rcode])
			require.Equal(t, tc.aa, resp.Authoritative)
			require.False(t, resp.RecursionAvailable)
			require.Equal(t, tc.answer, rrStrings(resp.Answer))
			require.Equal(t, tc.ns, rrStrings(resp.Ns))
			var extra []dns.RR
			for _, rr := range resp.Extra {
				if rr.Header().Rrtype != dns.TypeOPT {
					extra = append(extra, rr)
				}
			}
			require.Equal(t, tc.extra, rrStrings(extra))
			_, err := resp.Pack()
			require.NoError(t, err)
		})
	}
}

func TestECSScopeEchoed(t *testing.T) {
	s := newTestServer(t, fixture(), nil)
	resp := s.Answer(withECS(query("shop.apps.example.org.", dns.TypeA), "198.51.100.0/24"), netip.MustParseAddr("10.0.0.1"), true)
	ecs := subnetOption(resp.IsEdns0())
	require.NotNil(t, ecs)
	require.Equal(t, uint8(24), ecs.SourceNetmask)
	require.Equal(t, uint8(24), ecs.SourceScope, "the answer depends on the whole source prefix")

	resp = s.Answer(withECS(query("nope.apps.example.org.", dns.TypeA), "198.51.100.0/24"), netip.MustParseAddr("10.0.0.1"), true)
	ecs = subnetOption(resp.IsEdns0())
	require.NotNil(t, ecs)
	require.Zero(t, ecs.SourceScope, "a negative answer is the same for every subnet")

	noRules := newTestServer(t, fixture(), func(c *Config) { c.Rules = nil })
	resp = noRules.Answer(withECS(query("shop.apps.example.org.", dns.TypeA), "198.51.100.0/24"), netip.MustParseAddr("10.0.0.1"), true)
	require.Zero(t, subnetOption(resp.IsEdns0()).SourceScope, "without rules the answer does not depend on the client")
}

func TestChecksTakeFrontsOut(t *testing.T) {
	s := newTestServer(t, fixture(), func(c *Config) { c.Check.Fall, c.Check.Rise = 2, 2 })
	v := fixture()
	eu := netip.MustParseAddr("198.51.100.9")
	answer := func() []string {
		return rrStrings(s.Answer(query("shop.apps.example.org.", dns.TypeA), eu, true).Answer)
	}
	down := errors.New("connection refused")
	s.check.record(v.Fronts["f1"], nil) // first result: up
	s.check.record(v.Fronts["f1"], down)
	require.Len(t, answer(), 2, "one failure is below Fall")
	s.check.record(v.Fronts["f1"], down)
	require.Equal(t, []string{"shop.apps.example.org. 10 A 192.0.2.2"}, answer(), "Fall failures take f1 out")

	s.check.record(v.Fronts["f2"], down) // a first result that fails decides at once
	require.Equal(t, []string{"shop.apps.example.org. 10 A 192.0.2.1", "shop.apps.example.org. 10 A 192.0.2.2"}, answer(),
		"every Front fails the checks: those the core holds ready are answered")

	s.check.record(v.Fronts["f1"], nil)
	require.Equal(t, []string{"shop.apps.example.org. 10 A 192.0.2.1", "shop.apps.example.org. 10 A 192.0.2.2"}, answer())
	s.check.record(v.Fronts["f1"], nil)
	require.Equal(t, []string{"shop.apps.example.org. 10 A 192.0.2.1"}, answer(), "Rise passes bring f1 back")
}

func TestEquallyNearFrontsTakeTurns(t *testing.T) {
	var fronts []*Front
	var ids []string
	for i := range 3 {
		id := fmt.Sprintf("f%d", i)
		fronts = append(fronts, &Front{ID: id, Region: "eu", Addrs: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})}, CoreUp: true})
		ids = append(ids, id)
	}
	fronts = append(fronts, &Front{ID: "far", Region: "us", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.99")}, CoreUp: true})
	ids = append(ids, "far")
	s := newTestServer(t, NewView(1, []*Site{{Domain: "shop.apps.example.org", Fronts: ids}}, fronts), nil)
	firsts := map[string]int{}
	for range 30 {
		resp := s.Answer(query("shop.apps.example.org.", dns.TypeA), netip.MustParseAddr("198.51.100.1"), true)
		require.Len(t, resp.Answer, 4)
		firsts[resp.Answer[0].(*dns.A).A.String()]++
		require.Equal(t, "192.0.2.99", resp.Answer[3].(*dns.A).A.String(), "the far Front stays last")
	}
	require.Equal(t, map[string]int{"192.0.2.1": 10, "192.0.2.2": 10, "192.0.2.3": 10}, firsts)
}

func TestDrainingFrontsComeLast(t *testing.T) {
	v := fixture()
	v.Fronts["f1"].Draining = true
	s := newTestServer(t, v, nil)
	resp := s.Answer(query("shop.apps.example.org.", dns.TypeA), netip.MustParseAddr("198.51.100.9"), true)
	require.Equal(t, []string{"shop.apps.example.org. 10 A 192.0.2.2", "shop.apps.example.org. 10 A 192.0.2.1"}, rrStrings(resp.Answer),
		"the eu client's eu Front is draining: the us Front first")
}

func TestViewOfState(t *testing.T) {
	st := &fsm.State{Index: 9, Hosts: map[string]*fsm.Host{
		"h1": {ID: "h1", Name: "front1", Role: fsm.RoleFront, Status: fsm.HostReady, Region: "eu", PublicURL: "http://192.0.2.1:8080", Endpoint: "192.0.2.1:51820"},
		"h2": {ID: "h2", Name: "front2", Role: fsm.RoleFront, Status: fsm.HostDraining, PublicURL: "https://edge.example.net", Endpoint: "[2001:db8::2]:51820"},
		"h3": {ID: "h3", Name: "front3", Role: fsm.RoleFront, Status: fsm.HostDown, Endpoint: "edge3.example.net:51820"},
		"h4": {ID: "h4", Name: "front4", Role: fsm.RoleFront, Status: fsm.HostDecommissioned, Endpoint: "192.0.2.4:51820"},
		"b1": {ID: "b1", Name: "back1", Role: fsm.RoleBack, Status: fsm.HostReady},
	}, Installations: map[string]*fsm.Installation{
		"shop": {Name: "shop", Domain: "Shop.Example.org", FrontHosts: []string{"h1", "h2"}},
		"gone": {Name: "gone", Domain: "gone.example.org", FrontHosts: []string{"h1"}, Deleting: true},
		"bare": {Name: "bare", FrontHosts: []string{"h1"}},
	}}
	v := ViewOf(st)
	require.Equal(t, uint32(9), v.Serial)
	require.Equal(t, []string{"shop.example.org."}, slices.Collect(maps.Keys(v.Sites)))
	require.Equal(t, &Front{ID: "h1", Name: "front1", Region: "eu", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, CheckURL: "http://192.0.2.1:8080", CoreUp: true}, v.Fronts["h1"])
	require.Equal(t, &Front{ID: "h2", Name: "front2", Addrs: []netip.Addr{netip.MustParseAddr("2001:db8::2")}, CheckURL: "https://edge.example.net", CoreUp: true, Draining: true}, v.Fronts["h2"],
		"a public URL by name: the endpoint's address")
	require.Equal(t, &Front{ID: "h3", Name: "front3"}, v.Fronts["h3"], "no address known, and down")
	require.Nil(t, v.Fronts["h4"])
	require.Nil(t, v.Fronts["b1"])

	src := &StateSource{State: func() *fsm.State { return st }}
	require.Same(t, src.View(), src.View(), "rebuilt only when the state changes")
}

func TestTruncation(t *testing.T) {
	var fronts []*Front
	var ids []string
	for i := range 60 {
		id := fmt.Sprintf("f%02d", i)
		fronts = append(fronts, &Front{ID: id, Addrs: []netip.Addr{netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i+1))}, CoreUp: true})
		ids = append(ids, id)
	}
	v := NewView(1, []*Site{{Domain: "big.apps.example.org", Fronts: ids}}, fronts)
	s := newTestServer(t, v, func(c *Config) { c.MaxAnswers = 60 })
	cases := []struct {
		name    string
		edns    uint16 // 0: none
		udp     bool
		max     int
		answers int
		tc      bool
	}{
		{name: "UDP without EDNS: 512 bytes", udp: true, max: 512, tc: true},
		{name: "UDP with EDNS 4096: capped at 1232", edns: 4096, udp: true, max: 1232, tc: true},
		{name: "UDP with EDNS 1000", edns: 1000, udp: true, max: 1000, tc: true},
		{name: "TCP: everything", udp: false, max: 65535, answers: 60},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := query("big.apps.example.org.", dns.TypeAAAA)
			if tc.edns > 0 {
				q.SetEdns0(tc.edns, false)
			}
			resp := s.Answer(q, netip.MustParseAddr("10.0.0.1"), tc.udp)
			buf, err := resp.Pack()
			require.NoError(t, err)
			require.LessOrEqual(t, len(buf), tc.max)
			require.Equal(t, tc.tc, resp.Truncated)
			if tc.answers > 0 {
				require.Len(t, resp.Answer, tc.answers)
			}
		})
	}
}

func TestParseRules(t *testing.T) {
	cases := []struct {
		in   string
		err  string
		addr string
		want []string
		bits int
	}{
		{in: "10.0.0.0/8 eu\n10.1.0.0/16 us eu\n", addr: "10.1.2.3", want: []string{"us", "eu"}, bits: 16},
		{in: "10.0.0.0/8 eu\n10.1.0.0/16 us eu\n", addr: "10.2.2.3", want: []string{"eu"}, bits: 8},
		{in: "10.0.0.0/8 eu\n", addr: "192.0.2.1", bits: -1},
		{in: "# comment only\n\n2001:db8::/32 ap # trailing\n", addr: "2001:db8::1", want: []string{"ap"}, bits: 32},
		{in: "10.0.0.0/8\n", err: "line 1: want a prefix and at least one region"},
		{in: "10.0.0.300/8 eu\n", err: "line 1"},
		{in: "10.0.0.0/8 EU\n", err: `region "EU"`},
	}
	for _, tc := range cases {
		rs, err := ParseRules(strings.NewReader(tc.in))
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err)
			continue
		}
		require.NoError(t, err)
		got, bits := rs.Match(netip.MustParseAddr(tc.addr))
		require.Equal(t, tc.want, got, tc.in)
		require.Equal(t, tc.bits, bits)
	}
}

func TestConfigAndNameServers(t *testing.T) {
	ns, err := ParseNameServer("NS1.apps.example.org=192.0.2.53,2001:db8::53")
	require.NoError(t, err)
	require.Equal(t, NameServer{Name: "ns1.apps.example.org.", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")}}, ns)
	for _, bad := range []string{"", "=192.0.2.1", "ns1.example.org=not-an-ip", "bad..name"} {
		_, err := ParseNameServer(bad)
		require.Error(t, err, bad)
	}
	// Regression: a name server given without the final dot made every
	// answer with an SOA fail to pack, and the server stayed silent.
	s, err := New(Config{Zones: []string{"apps.example.org"}, Source: StaticSource{fixture()}, NameServers: []NameServer{{Name: "NS1.apps.example.org"}}})
	require.NoError(t, err)
	for _, q := range []*dns.Msg{query("apps.example.org.", dns.TypeSOA), query("nope.apps.example.org.", dns.TypeA), query("apps.example.org.", dns.TypeNS)} {
		_, err := s.Answer(q, netip.MustParseAddr("10.0.0.1"), true).Pack()
		require.NoError(t, err, q.Question[0].String())
	}

	for _, cfg := range []Config{
		{Source: StaticSource{fixture()}, Zones: []string{"apps.example.org"}, NameServers: []NameServer{{Name: "bad..name"}}},
		{Zones: []string{"apps.example.org"}},
		{Source: StaticSource{fixture()}},
		{Source: StaticSource{fixture()}, Zones: []string{"."}},
		{Source: StaticSource{fixture()}, Zones: []string{"a..b"}},
		{Source: StaticSource{fixture()}, Zones: []string{"apps.example.org"}, TTL: 1},
	} {
		_, err := New(cfg)
		require.Error(t, err, "%+v", cfg)
	}
}
