package dnsserve

import (
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"

	pm "potluck/lb/metrics"
)

// Stats are the seed's statistics per service (an installation's domain)
// and per Front — requests, bytes received and sent, down and up events —
// plus the server's answers by response code. Services and Fronts that left
// the state are forgotten, so the label sets stay bounded by the state.
type Stats struct {
	mu      sync.Mutex
	sites   map[string]*SiteStats  // by canonical domain
	fronts  map[string]*FrontStats // by Front id
	rcodes  [24]atomic.Uint64      // by rcode (extended ones are not sent)
	dropped atomic.Uint64          // queries over the per-client rate, not answered
	trunc   atomic.Uint64          // UDP answers cut to fit, TC set
}

// SiteStats count one service: the DNS queries for its domain, the bytes
// of those queries and of their answers, and how often the service lost
// its last live Front (Down) or got one back (Up).
type SiteStats struct {
	Installation string
	Requests     atomic.Uint64
	BytesIn      atomic.Uint64
	BytesOut     atomic.Uint64
	Down, Up     atomic.Uint64
	alive        bool // last observed; guarded by Stats.mu
	seen         bool
}

// FrontStats count one Front: how often it was handed out, and how often it
// left the answers (Down: the core or the checks found it dead) or came
// back (Up).
type FrontStats struct {
	Name     string
	Answers  atomic.Uint64
	Down, Up atomic.Uint64
	alive    bool // last observed; guarded by Stats.mu
	seen     bool
}

func newStats() *Stats {
	return &Stats{sites: map[string]*SiteStats{}, fronts: map[string]*FrontStats{}}
}

// Site returns the counters of a domain (nil when it is not a service).
func (s *Stats) Site(domain string) *SiteStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sites[dns.CanonicalName(domain)]
}

// Front returns the counters of a Front by id (nil when unknown).
func (s *Stats) Front(id string) *FrontStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fronts[id]
}

// Rcode is how many answers carried rcode.
func (s *Stats) Rcode(rcode int) uint64 {
	if rcode < 0 || rcode >= len(s.rcodes) {
		return 0
	}
	return s.rcodes[rcode].Load()
}

// Dropped is how many queries went unanswered for the per-client rate.
func (s *Stats) Dropped() uint64 { return s.dropped.Load() }

// Truncated is how many UDP answers were cut to fit (TC set).
func (s *Stats) Truncated() uint64 { return s.trunc.Load() }

// observe takes the liveness of every Front and service after a check round
// or a state change: it counts each transition once (a first sighting of a
// dead one counts as a down event, of a live one as nothing) and forgets
// what left the View.
func (s *Stats) observe(v *View, alive func(*Front) bool) (events []event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	frontAlive := map[string]bool{}
	for id, f := range v.Fronts {
		fs := s.fronts[id]
		if fs == nil {
			fs = &FrontStats{Name: f.Name}
			s.fronts[id] = fs
		}
		a := alive(f)
		frontAlive[id] = a
		events = transition(&fs.seen, &fs.alive, a, &fs.Down, &fs.Up, event{front: f}, events)
	}
	for id := range s.fronts {
		if v.Fronts[id] == nil {
			delete(s.fronts, id)
		}
	}
	for d, site := range v.Sites {
		ss := s.sites[d]
		if ss == nil {
			ss = &SiteStats{Installation: site.Installation}
			s.sites[d] = ss
		}
		a := false
		for _, id := range site.Fronts {
			a = a || frontAlive[id]
		}
		events = transition(&ss.seen, &ss.alive, a, &ss.Down, &ss.Up, event{site: site}, events)
	}
	for d := range s.sites {
		if v.Sites[d] == nil {
			delete(s.sites, d)
		}
	}
	return events
}

// event is a Front or a service going down or coming up.
type event struct {
	front *Front // or
	site  *Site
	up    bool
}

func transition(seen, was *bool, now bool, down, up *atomic.Uint64, e event, events []event) []event {
	switch {
	case !*seen && !now, *seen && *was && !now:
		down.Add(1)
		events = append(events, e)
	case *seen && !*was && now:
		up.Add(1)
		e.up = true
		events = append(events, e)
	}
	*seen, *was = true, now
	return events
}

// countQuery records one answered query for domain (if it is a service).
func (s *Stats) countQuery(domain string, in, out int, rcode int, answered []string) {
	if rcode >= 0 && rcode < len(s.rcodes) {
		s.rcodes[rcode].Add(1)
	}
	s.mu.Lock()
	ss := s.sites[domain]
	var fs []*FrontStats
	for _, id := range answered {
		if f := s.fronts[id]; f != nil {
			fs = append(fs, f)
		}
	}
	s.mu.Unlock()
	if ss != nil {
		ss.Requests.Add(1)
		ss.BytesIn.Add(uint64(in))
		ss.BytesOut.Add(uint64(out))
	}
	for _, f := range fs {
		f.Answers.Add(1)
	}
}

// WriteMetrics writes the statistics as Prometheus text.
func (s *Stats) WriteMetrics(w io.Writer) {
	type site struct {
		domain string
		alive  bool // read under s.mu
		*SiteStats
	}
	type front struct {
		id    string
		alive bool // read under s.mu
		*FrontStats
	}
	s.mu.Lock()
	sites := make([]site, 0, len(s.sites))
	for d, ss := range s.sites {
		sites = append(sites, site{d, ss.alive, ss})
	}
	fronts := make([]front, 0, len(s.fronts))
	for id, fs := range s.fronts {
		fronts = append(fronts, front{id, fs.alive, fs})
	}
	s.mu.Unlock()
	sort.Slice(sites, func(i, j int) bool { return sites[i].domain < sites[j].domain })
	sort.Slice(fronts, func(i, j int) bool { return fronts[i].id < fronts[j].id })
	pw := pm.NewWriter(w)
	writeTable(pw, sites, func(x site) string { return pm.Labels("domain", x.domain, "installation", x.Installation) }, []family[site]{
		{"potluck_dns_service_requests_total", "DNS queries for a service's domain.", false, func(x site) uint64 { return x.Requests.Load() }},
		{"potluck_dns_service_received_bytes_total", "Bytes of the DNS queries for a service's domain.", false, func(x site) uint64 { return x.BytesIn.Load() }},
		{"potluck_dns_service_sent_bytes_total", "Bytes of the DNS answers for a service's domain.", false, func(x site) uint64 { return x.BytesOut.Load() }},
		{"potluck_dns_service_down_total", "Times a service lost its last live Front.", false, func(x site) uint64 { return x.Down.Load() }},
		{"potluck_dns_service_up_total", "Times a service got a live Front back.", false, func(x site) uint64 { return x.Up.Load() }},
		{"potluck_dns_service_alive", "1 while a service has a live Front.", true, func(x site) uint64 { return b2u(x.alive) }},
	})
	writeTable(pw, fronts, func(x front) string { return pm.Labels("front", x.Name, "id", x.id) }, []family[front]{
		{"potluck_dns_front_answers_total", "DNS answers that carried a Front's address.", false, func(x front) uint64 { return x.Answers.Load() }},
		{"potluck_dns_front_down_total", "Times a Front left the answers (the core or the checks found it dead).", false, func(x front) uint64 { return x.Down.Load() }},
		{"potluck_dns_front_up_total", "Times a Front came back into the answers.", false, func(x front) uint64 { return x.Up.Load() }},
		{"potluck_dns_front_alive", "1 while a Front is in the answers.", true, func(x front) uint64 { return b2u(x.alive) }},
	})
	for rc := range s.rcodes {
		if n := s.rcodes[rc].Load(); n > 0 {
			pw.Counter("potluck_dns_responses_total", "DNS answers by response code.", pm.Labels("rcode", dns.RcodeToString[rc]), n)
		}
	}
	pw.Counter("potluck_dns_rate_limited_total", "Queries not answered: the client was over its rate.", "", s.dropped.Load())
	pw.Counter("potluck_dns_truncated_total", "UDP answers cut to the client's size, TC set.", "", s.trunc.Load())
}

// family is one metric written for every row of a table: a counter, or a
// gauge (gauge set).
type family[T any] struct {
	name, help string
	gauge      bool
	value      func(T) uint64
}

// writeTable writes each family for every row, a family's samples together.
func writeTable[T any](pw *pm.Writer, rows []T, labels func(T) string, families []family[T]) {
	ls := make([]string, len(rows))
	for i, r := range rows {
		ls[i] = labels(r)
	}
	for _, f := range families {
		for i, r := range rows {
			if f.gauge {
				pw.Gauge(f.name, f.help, ls[i], float64(f.value(r)))
			} else {
				pw.Counter(f.name, f.help, ls[i], f.value(r))
			}
		}
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
