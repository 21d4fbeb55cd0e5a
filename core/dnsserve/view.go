package dnsserve

import (
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"potluck/core/fsm"
)

// Front is one Front as the DNS server needs it.
type Front struct {
	ID, Name string
	// Region is the operator-declared region ("" unknown: ranked after
	// every region a client's rule names).
	Region string
	// Addrs are the public addresses handed out in A/AAAA answers.
	Addrs []netip.Addr
	// CheckURL is the Front's public base URL (http(s)://host[:port]) that
	// the active check fetches; "" means no active check, the core's view
	// alone decides.
	CheckURL string
	// CoreUp is the core's view: the host is ready (or draining, still
	// serving), so it sends heartbeats within the TTL.
	CoreUp bool
	// Draining: the operator is decommissioning the Front. It still
	// serves, so it is answered, but after every other live Front, so
	// clients move away before it goes.
	Draining bool
}

// Site is an installation's domain and the Fronts that serve it.
type Site struct {
	Installation string
	Domain       string   // canonical: lower case, fully qualified (trailing dot)
	Fronts       []string // Front ids
}

// View is what the DNS server answers from: a consistent picture of the
// installations' domains and their Fronts. A View is never modified after
// it is returned.
type View struct {
	Serial uint32
	Sites  map[string]*Site  // by canonical domain
	Fronts map[string]*Front // by id
	// parents holds every name strictly between a site's domain and the
	// root, so a name that exists only as a parent of a site is answered
	// NODATA, not NXDOMAIN (RFC 8020).
	parents map[string]bool
}

// Source gives the current View; the core's replicated state, or a fixed
// View in tests.
type Source interface {
	View() *View
}

// NewView builds a View from sites and Fronts, filling its indexes.
func NewView(serial uint32, sites []*Site, fronts []*Front) *View {
	v := &View{Serial: serial, Sites: map[string]*Site{}, Fronts: map[string]*Front{}, parents: map[string]bool{}}
	for _, f := range fronts {
		v.Fronts[f.ID] = f
	}
	for _, s := range sites {
		s.Domain = dns.CanonicalName(s.Domain)
		v.Sites[s.Domain] = s
		for off, end := dns.NextLabel(s.Domain, 0); !end; off, end = dns.NextLabel(s.Domain, off) {
			v.parents[s.Domain[off:]] = true
		}
	}
	return v
}

// StaticSource always returns the same View.
type StaticSource struct{ V *View }

// View returns s.V.
func (s StaticSource) View() *View { return s.V }

// StateSource adapts a core node's replicated state: every core node answers
// from its own copy, so DNS keeps answering while the cluster has no leader.
// The View is rebuilt only when the state changed.
type StateSource struct {
	State func() *fsm.State

	mu   sync.Mutex
	last *fsm.State
	view *View
}

// View returns the View of the current state.
func (s *StateSource) View() *View {
	st := s.State()
	s.mu.Lock()
	defer s.mu.Unlock()
	if st != s.last || s.view == nil {
		s.view, s.last = ViewOf(st), st
	}
	return s.view
}

// ViewOf builds the View of a core state: every installation that is not
// being deleted and has a domain, and every Front host.
func ViewOf(st *fsm.State) *View {
	if st == nil {
		return NewView(0, nil, nil)
	}
	var fronts []*Front
	for _, h := range st.SortedHosts() {
		if h.Role != fsm.RoleFront || h.Status == fsm.HostDecommissioned {
			continue
		}
		f := &Front{ID: h.ID, Name: h.Name, Region: h.Region, CoreUp: h.Status == fsm.HostReady || h.Status == fsm.HostDraining,
			Draining: h.Status == fsm.HostDraining}
		f.CheckURL, f.Addrs = publicAddrs(h.PublicURL, h.Endpoint)
		fronts = append(fronts, f)
	}
	var sites []*Site
	for _, in := range st.SortedInstallations() {
		if in.Deleting || in.Domain == "" {
			continue
		}
		sites = append(sites, &Site{Installation: in.Name, Domain: in.Domain, Fronts: append([]string(nil), in.FrontHosts...)})
	}
	return NewView(uint32(st.Index), sites, fronts)
}

// publicAddrs finds a Front's public address: the host of its public URL
// when that is an IP address, else the host of its WireGuard endpoint (the
// same machine) when that is one. A public URL naming a host by DNS name
// gives no address: the DNS server does not resolve names (it would ask
// itself for names in its own zone).
func publicAddrs(publicURL, endpoint string) (checkURL string, addrs []netip.Addr) {
	if u, err := url.Parse(publicURL); err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https") {
		checkURL = u.Scheme + "://" + u.Host
		if a, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil {
			return checkURL, []netip.Addr{a.Unmap()}
		}
	}
	if host, _, err := net.SplitHostPort(endpoint); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return checkURL, []netip.Addr{a.Unmap()}
		}
	}
	return checkURL, nil
}
