package dnsserve

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Answer builds the answer to req from a client at client (over UDP when
// udp: then it is cut to the size the client can take). It is what the
// wire server sends, without the rate limit and the statistics.
func (s *Server) Answer(req *dns.Msg, client netip.Addr, udp bool) *dns.Msg {
	resp, _, _ := s.answer(req, client, udp)
	return resp
}

// answer also returns the service domain asked for ("" if none) and the
// ids of the Fronts whose addresses it carries, for the statistics.
func (s *Server) answer(req *dns.Msg, client netip.Addr, udp bool) (resp *dns.Msg, domain string, fronts []string) {
	resp = new(dns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = false
	opt := req.IsEdns0()
	defer func() { s.finish(resp, opt, udp) }()
	if req.Opcode != dns.OpcodeQuery {
		resp.Rcode = dns.RcodeNotImplemented
		return resp, "", nil
	}
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		return resp, "", nil
	}
	if opt != nil && opt.Version() != 0 {
		resp.Rcode = dns.RcodeBadVers
		return resp, "", nil
	}
	if ecs := subnetOption(opt); ecs != nil && !validSubnet(ecs) {
		resp.Rcode = dns.RcodeFormatError // RFC 7871 7.1.2
		return resp, "", nil
	}
	q := req.Question[0]
	name := dns.CanonicalName(q.Name)
	zone := s.zoneOf(name)
	if zone == "" || (q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY) {
		// Not ours: an authoritative-only server refuses, it never recurses.
		resp.Rcode = dns.RcodeRefused
		return resp, "", nil
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		resp.Rcode = dns.RcodeRefused // no secondaries: every core node answers from the state itself
		return resp, "", nil
	}
	resp.Authoritative = true
	v := s.cfg.Source.View()
	ttl := uint32(s.cfg.TTL / time.Second)
	exists := false
	if name == zone {
		exists = true
		if q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY {
			resp.Answer = append(resp.Answer, s.soa(zone, v))
		}
		if q.Qtype == dns.TypeNS || q.Qtype == dns.TypeANY {
			resp.Answer = append(resp.Answer, s.nsRecords(zone)...)
			resp.Extra = append(resp.Extra, s.glue()...)
		}
	}
	for _, ns := range s.cfg.NameServers {
		if ns.Name == name {
			exists = true
			resp.Answer = append(resp.Answer, addrRecords(name, q.Qtype, ns.Addrs, uint32(NSTTL/time.Second))...)
		}
	}
	if site := v.Sites[name]; site != nil {
		exists, domain = true, name
		if q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA || q.Qtype == dns.TypeANY {
			where, scope := s.clientAddr(opt, client)
			var rrs []dns.RR
			rrs, fronts = s.pick(v, site, q.Qtype, where)
			resp.Answer = append(resp.Answer, rrs...)
			setScope(resp, opt, scope, len(s.cfg.Rules) > 0)
		}
	}
	if !exists && v.parents[name] {
		exists = true // a name between the zone and a service: NODATA, not NXDOMAIN
	}
	if !exists {
		resp.Rcode = dns.RcodeNameError
	}
	if len(resp.Answer) == 0 {
		soa := s.soa(zone, v)
		soa.Hdr.Ttl = ttl // negative answers are cached for the short TTL
		resp.Ns = append(resp.Ns, soa)
	}
	return resp, domain, fronts
}

// finish adds EDNS to the answer when the query had it and cuts a UDP
// answer to what the client can take (TC set when anything was cut).
func (s *Server) finish(resp *dns.Msg, opt *dns.OPT, udp bool) {
	size := dns.MinMsgSize
	if opt != nil {
		size = min(max(int(opt.UDPSize()), dns.MinMsgSize), s.cfg.MaxUDPSize)
		out := resp.IsEdns0()
		if out == nil {
			resp.SetEdns0(uint16(s.cfg.MaxUDPSize), false)
		} else {
			out.SetUDPSize(uint16(s.cfg.MaxUDPSize))
		}
		if ecs := subnetOption(opt); ecs != nil && subnetOption(resp.IsEdns0()) == nil {
			// Not tailored to the client: scope 0, valid for every subnet.
			o := resp.IsEdns0()
			o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: ecs.Family, SourceNetmask: ecs.SourceNetmask, Address: ecs.Address})
		}
	}
	if !udp {
		size = dns.MaxMsgSize
	}
	resp.Truncate(size) // compresses, and cuts (TC) what does not fit
}

// zoneOf is the longest configured zone holding name, or "".
func (s *Server) zoneOf(name string) string {
	best := ""
	for _, z := range s.cfg.Zones {
		if dns.IsSubDomain(z, name) && len(z) > len(best) {
			best = z
		}
	}
	return best
}

func (s *Server) soa(zone string, v *View) *dns.SOA {
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: uint32(NSTTL / time.Second)},
		Ns:  s.cfg.NameServers[0].Name, Mbox: s.cfg.Hostmaster, Serial: v.Serial,
		Refresh: 3600, Retry: 600, Expire: 86400, Minttl: uint32(s.cfg.TTL / time.Second),
	}
}

func (s *Server) nsRecords(zone string) []dns.RR {
	var out []dns.RR
	for _, ns := range s.cfg.NameServers {
		out = append(out, &dns.NS{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: uint32(NSTTL / time.Second)}, Ns: ns.Name})
	}
	return out
}

// glue is the addresses of the name servers that lie in one of the zones.
func (s *Server) glue() []dns.RR {
	var out []dns.RR
	for _, ns := range s.cfg.NameServers {
		if s.zoneOf(ns.Name) != "" {
			out = append(out, addrRecords(ns.Name, dns.TypeANY, ns.Addrs, uint32(NSTTL/time.Second))...)
		}
	}
	return out
}

// addrRecords are A records for the IPv4 addresses (qtype A or ANY) and
// AAAA for the IPv6 ones (AAAA or ANY).
func addrRecords(name string, qtype uint16, addrs []netip.Addr, ttl uint32) []dns.RR {
	var out []dns.RR
	for _, a := range addrs {
		switch {
		case a.Is4() && (qtype == dns.TypeA || qtype == dns.TypeANY):
			out = append(out, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: a.AsSlice()})
		case a.Is6() && (qtype == dns.TypeAAAA || qtype == dns.TypeANY):
			out = append(out, &dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: a.AsSlice()})
		}
	}
	return out
}

// clientAddr is where the client is: the subnet of an EDNS Client Subnet
// option (RFC 7871) when the query carries one with a prefix, else the
// address the query came from. scope is the ECS source prefix used (-1:
// no ECS).
func (s *Server) clientAddr(opt *dns.OPT, from netip.Addr) (netip.Addr, int) {
	if ecs := subnetOption(opt); ecs != nil && ecs.SourceNetmask > 0 {
		if a, ok := netip.AddrFromSlice(ecs.Address); ok {
			a = a.Unmap()
			if p, err := a.Prefix(int(ecs.SourceNetmask)); err == nil && (ecs.Family == 1) == a.Is4() {
				return p.Addr(), int(ecs.SourceNetmask)
			}
		}
	}
	return from, -1
}

// validSubnet: a query's ECS option has scope 0 and no address bits past
// its source prefix (RFC 7871 section 6).
func validSubnet(e *dns.EDNS0_SUBNET) bool {
	a, ok := netip.AddrFromSlice(e.Address)
	if !ok || e.SourceScope != 0 {
		return false
	}
	if e.Family == 1 {
		a = a.Unmap()
	}
	p, err := a.Prefix(int(e.SourceNetmask))
	return err == nil && p.Addr() == a
}

func subnetOption(opt *dns.OPT) *dns.EDNS0_SUBNET {
	if opt == nil {
		return nil
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_SUBNET); ok {
			return e
		}
	}
	return nil
}

// setScope echoes a query's ECS option in the answer, with the scope the
// answer depends on: the whole source prefix when there are region rules,
// none (0: valid for every client) when there are not.
func setScope(resp *dns.Msg, opt *dns.OPT, scope int, rules bool) {
	ecs := subnetOption(opt)
	if ecs == nil {
		return
	}
	out := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: ecs.Family, SourceNetmask: ecs.SourceNetmask, Address: ecs.Address}
	if rules && scope > 0 {
		out.SourceScope = uint8(scope)
	}
	resp.SetEdns0(DefaultMaxUDPSize, false)
	o := resp.IsEdns0()
	o.Option = append(o.Option, out)
}

// pick chooses the Fronts to answer for a service: the live ones (the core
// holds them ready and the checks have not failed them) with an address of
// the family asked for, nearest to the client first, equally near ones in
// turn, draining ones last. When no Front is live by both, those the core holds ready are
// answered: this server's checks may be what fails. None at all: an empty
// answer (NODATA).
func (s *Server) pick(v *View, site *Site, qtype uint16, client netip.Addr) ([]dns.RR, []string) {
	family := func(f *Front) bool {
		return slices.ContainsFunc(f.Addrs, func(a netip.Addr) bool {
			return qtype == dns.TypeANY || (qtype == dns.TypeA) == a.Is4()
		})
	}
	var live, ready []*Front
	for _, id := range site.Fronts {
		f := v.Fronts[id]
		if f == nil || !f.CoreUp || !family(f) {
			continue
		}
		ready = append(ready, f)
		if s.check.up(f.ID) {
			live = append(live, f)
		}
	}
	if len(live) == 0 {
		live = ready
	}
	regions, _ := s.cfg.Rules.Match(client)
	// Draining Fronts come after all others, then the nearest first.
	near := func(f *Front) int {
		if f.Draining {
			return len(regions) + 1
		}
		return rank(regions, f.Region)
	}
	slices.SortStableFunc(live, func(a, b *Front) int {
		if ra, rb := near(a), near(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a.ID, b.ID)
	})
	// Rotate each group of equally near Fronts, so their clients spread.
	turn := int(s.rr.Add(1))
	for i := 0; i < len(live); {
		j := i + 1
		for j < len(live) && near(live[j]) == near(live[i]) {
			j++
		}
		g := live[i:j]
		k := turn % len(g)
		slices.Reverse(g[:k])
		slices.Reverse(g[k:])
		slices.Reverse(g)
		i = j
	}
	ttl := uint32(s.cfg.TTL / time.Second)
	var rrs []dns.RR
	var ids []string
	for _, f := range live {
		if len(rrs) >= s.cfg.MaxAnswers {
			break
		}
		rrs = append(rrs, addrRecords(site.Domain, qtype, f.Addrs, ttl)...)
		ids = append(ids, f.ID)
	}
	if len(rrs) > s.cfg.MaxAnswers {
		rrs = rrs[:s.cfg.MaxAnswers]
	}
	return rrs, ids
}
