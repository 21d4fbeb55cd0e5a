// Package dnsserve is the adaptive authoritative DNS server of seed 002: for
// the zones the operator delegates to it, it answers A and AAAA queries for
// installations' domains with the public addresses of the installation's
// Fronts that are alive — by the core's view and by its own checks of each
// Front's public HTTP address — nearest to the client first. It never
// recurses and answers nothing outside its zones.
package dnsserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/netutil"

	"potluck/internal/ratelimit"
)

// Defaults of Config.
const (
	// DefaultTTL of A/AAAA answers and of negative answers: a resolver
	// forgets a dead Front at most this long after the server dropped it.
	DefaultTTL = 10 * time.Second
	// NSTTL is the TTL of the zone's NS and SOA records and of the name
	// servers' addresses: they change only when the operator changes them.
	NSTTL = time.Hour
	// DefaultMaxAnswers bounds the addresses in one answer.
	DefaultMaxAnswers = 8
	// DefaultMaxUDPSize is the largest UDP answer (the DNS flag day 2020
	// value: no IP fragmentation on common paths); larger ones are cut and
	// carry TC, and the client asks again over TCP.
	DefaultMaxUDPSize = 1232
	// DefaultMaxTCPConns bounds concurrent TCP connections.
	DefaultMaxTCPConns = 256
	// DefaultTCPIdle closes a TCP connection idle this long.
	DefaultTCPIdle = 5 * time.Second
	// DefaultRate is how many UDP queries per second one client address
	// may send (twice that at once, unless Burst says otherwise); past it
	// its queries are dropped (the server is never an amplifier for
	// spoofed sources).
	DefaultRate = 200
	// ioTimeout bounds each read and write on a connection.
	ioTimeout = 2 * time.Second
)

// NameServer is one of the zone's name servers: a core node the operator
// delegates to. Addrs are its public addresses, answered for its name when
// the name lies inside the zone (glue).
type NameServer struct {
	Name  string
	Addrs []netip.Addr
}

// ParseNameServer reads NAME or NAME=ADDR[,ADDR…].
func ParseNameServer(s string) (NameServer, error) {
	name, addrs, _ := strings.Cut(s, "=")
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		return NameServer{}, fmt.Errorf("name server %q: want a host name, optionally =address[,address]", s)
	}
	ns := NameServer{Name: dns.CanonicalName(name)}
	if addrs != "" {
		for _, a := range strings.Split(addrs, ",") {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				return NameServer{}, fmt.Errorf("name server %q: %w", s, err)
			}
			ns.Addrs = append(ns.Addrs, ip.Unmap())
		}
	}
	return ns, nil
}

// Config describes a DNS server.
type Config struct {
	// Zones delegated to this server (e.g. apps.example.org).
	Zones []string
	// NameServers of the zones (default: ns1.<first zone>, no address).
	NameServers []NameServer
	// Hostmaster is the SOA mailbox as a name (default hostmaster.<zone>).
	Hostmaster string
	// TTL of address and negative answers (default DefaultTTL).
	TTL time.Duration
	// Rules map client subnets to regions, nearest first.
	Rules Rules
	// Check tunes the active checks of the Fronts.
	Check      CheckConfig
	MaxAnswers int
	MaxUDPSize int
	// MaxTCPConns and TCPIdle limit TCP clients.
	MaxTCPConns int
	TCPIdle     time.Duration
	// Rate and Burst limit each client address's UDP queries; a negative
	// Rate turns the limit off.
	Rate, Burst float64
	// Source gives the installations and Fronts (required).
	Source Source
	Logger *slog.Logger
}

func (c *Config) check() error {
	if c.Source == nil {
		return errors.New("dns: a state source is required")
	}
	if len(c.Zones) == 0 {
		return errors.New("dns: at least one zone is required")
	}
	c.Zones = slices.Clone(c.Zones) // canonicalised below: the caller's stay as given
	for i, z := range c.Zones {
		if _, ok := dns.IsDomainName(z); !ok || dns.CountLabel(z) == 0 {
			return fmt.Errorf("dns: zone %q is not a domain name (e.g. apps.example.org)", z)
		}
		c.Zones[i] = dns.CanonicalName(z)
	}
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.TTL < time.Second || c.TTL > 24*time.Hour {
		return fmt.Errorf("dns: TTL %v: use 1s to 24h", c.TTL)
	}
	if len(c.NameServers) == 0 {
		c.NameServers = []NameServer{{Name: "ns1." + c.Zones[0]}}
	}
	c.NameServers = slices.Clone(c.NameServers)
	for i, ns := range c.NameServers {
		if _, ok := dns.IsDomainName(ns.Name); !ok || dns.CountLabel(ns.Name) == 0 {
			return fmt.Errorf("dns: name server %q is not a host name", ns.Name)
		}
		c.NameServers[i].Name = dns.CanonicalName(ns.Name)
	}
	if c.Hostmaster == "" {
		c.Hostmaster = "hostmaster." + c.Zones[0]
	}
	c.Hostmaster = dns.CanonicalName(c.Hostmaster)
	if c.MaxAnswers <= 0 {
		c.MaxAnswers = DefaultMaxAnswers
	}
	if c.MaxUDPSize <= 0 {
		c.MaxUDPSize = DefaultMaxUDPSize
	}
	c.MaxUDPSize = max(c.MaxUDPSize, dns.MinMsgSize)
	if c.MaxTCPConns <= 0 {
		c.MaxTCPConns = DefaultMaxTCPConns
	}
	if c.TCPIdle <= 0 {
		c.TCPIdle = DefaultTCPIdle
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Burst <= 0 {
		c.Burst = max(2*c.Rate, 1)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Check.defaults()
	return nil
}

// Server is a running DNS server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	stats   *Stats
	check   *checker
	limiter *ratelimit.Limiter // nil: no per-client limit
	rr      atomic.Uint64      // rotates Fronts of equal rank

	udp, tcp *dns.Server
	addr     string
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// New checks cfg and returns a server that answers (Answer) but does not
// listen or check until Start.
func New(cfg Config) (*Server, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, stats: newStats(), check: newChecker(cfg.Check)}
	if cfg.Rate > 0 {
		s.limiter = ratelimit.New(ratelimit.Config{Rate: cfg.Rate, Burst: cfg.Burst})
	}
	return s, nil
}

// Stats are the server's statistics.
func (s *Server) Stats() *Stats { return s.stats }

// Addr is the address served (UDP and TCP share the port); "" before Start.
func (s *Server) Addr() string { return s.addr }

// Start listens on addr over UDP and TCP (the same port; port 0 picks
// one) and starts answering and checking the Fronts.
func (s *Server) Start(addr string) error {
	tcpLn, udpConn, err := listenBoth(addr)
	if err != nil {
		return err
	}
	s.addr = tcpLn.Addr().String()
	h := dns.HandlerFunc(s.serveDNS)
	idle := s.cfg.TCPIdle
	s.tcp = &dns.Server{Listener: netutil.LimitListener(tcpLn, s.cfg.MaxTCPConns), Handler: h,
		ReadTimeout: ioTimeout, WriteTimeout: ioTimeout, IdleTimeout: func() time.Duration { return idle }, MaxTCPQueries: 1000}
	s.udp = &dns.Server{PacketConn: udpConn, Handler: h, UDPSize: 4096, ReadTimeout: ioTimeout, WriteTimeout: ioTimeout}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	for _, srv := range []*dns.Server{s.tcp, s.udp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		s.wg.Go(func() {
			if err := srv.ActivateAndServe(); err != nil && ctx.Err() == nil {
				s.log.Error("dns server stopped", "err", err)
			}
		})
		<-started
	}
	s.wg.Go(func() { s.watch(ctx) })
	s.log.Info("dns server started", "addr", s.addr, "zones", s.cfg.Zones, "ttl", s.cfg.TTL)
	return nil
}

// listenBoth opens TCP and UDP on the same port.
func listenBoth(addr string) (net.Listener, net.PacketConn, error) {
	for range 10 {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns: listen tcp %s: %w", addr, err)
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			return ln, pc, nil
		}
		_ = ln.Close()
		if _, port, _ := net.SplitHostPort(addr); port != "0" {
			return nil, nil, fmt.Errorf("dns: listen udp %s: %w", addr, err)
		}
	}
	return nil, nil, fmt.Errorf("dns: no port free for both UDP and TCP on %s", addr)
}

// Close stops serving and checking.
func (s *Server) Close() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	var errs []error
	for _, srv := range []*dns.Server{s.tcp, s.udp} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, srv.ShutdownContext(ctx))
		cancel()
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// watch checks the Fronts every interval and turns what the core and the
// checks say into down and up events, logged and counted once each.
func (s *Server) watch(ctx context.Context) {
	t := time.NewTicker(s.cfg.Check.Interval)
	defer t.Stop()
	for {
		s.Observe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Observe runs one round of checks and records the transitions (what
// Start's loop does every Check.Interval; tests call it directly).
func (s *Server) Observe(ctx context.Context) {
	v := s.cfg.Source.View()
	s.check.round(ctx, v)
	for _, e := range s.stats.observe(v, s.alive) {
		switch {
		case e.front != nil && e.up:
			s.log.Info("dns: front back in the answers", "front", e.front.Name)
		case e.front != nil:
			s.log.Warn("dns: front left the answers", "front", e.front.Name, "core_up", e.front.CoreUp, "check_err", s.check.lastErr(e.front.ID))
		case e.up:
			s.log.Info("dns: service has a live front again", "domain", e.site.Domain, "installation", e.site.Installation)
		default:
			s.log.Warn("dns: service has no live front", "domain", e.site.Domain, "installation", e.site.Installation)
		}
	}
}

// alive: the core holds the Front ready and the checks have not failed it.
func (s *Server) alive(f *Front) bool { return f.CoreUp && s.check.up(f.ID) }

// serveDNS answers one query on the wire.
func (s *Server) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	client, udp := remote(w.RemoteAddr())
	if udp && s.limiter != nil {
		key := client.String()
		if ok, _ := s.limiter.Allow(key); !ok {
			s.stats.dropped.Add(1)
			return
		}
		s.limiter.Fail(key) // every query spends a token
	}
	resp, domain, fronts := s.answer(req, client, udp)
	buf, err := resp.Pack()
	if err != nil {
		// A bug, not the client's fault: say so rather than stay silent.
		s.log.Error("dns: packing an answer", "err", err, "question", req.Question)
		fail := new(dns.Msg)
		fail.SetRcode(req, dns.RcodeServerFailure)
		if buf, err = fail.Pack(); err != nil {
			return
		}
		resp = fail
	}
	// Counted before the write, so a client that has its answer sees it
	// counted; a write that fails is rare and counted all the same.
	if resp.Truncated {
		s.stats.trunc.Add(1)
	}
	s.stats.countQuery(domain, req.Len(), len(buf), resp.Rcode, fronts)
	_, _ = w.Write(buf)
}

func remote(a net.Addr) (netip.Addr, bool) {
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), true
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), false
	}
	return netip.Addr{}, false
}
