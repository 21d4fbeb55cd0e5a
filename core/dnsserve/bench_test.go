package dnsserve

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BenchmarkAnswer: building one answer in process (the server's own cost).
func BenchmarkAnswer(b *testing.B) {
	rules := Rules{{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Regions: []string{"eu", "us"}}}
	cfg := Config{Zones: []string{"apps.example.org"}, Source: StaticSource{fixture()}, Rules: rules}
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	q := withECS(query("shop.apps.example.org.", dns.TypeA), "198.51.100.0/24")
	client := netip.MustParseAddr("10.0.0.1")
	b.ReportAllocs()
	for b.Loop() {
		s.Answer(q, client, true)
	}
}

// BenchmarkServeUDP: queries answered over loopback UDP by parallel
// clients, each waiting for its answer (the rate limit off).
func BenchmarkServeUDP(b *testing.B) {
	s, err := New(Config{Zones: []string{"apps.example.org"}, Source: StaticSource{fixture()}, Rate: -1})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var failed atomic.Int64
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		c := &dns.Client{Net: "udp", Timeout: time.Second}
		conn, err := c.Dial(s.Addr())
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		q := query("shop.apps.example.org.", dns.TypeA)
		for pb.Next() {
			if _, _, err := c.ExchangeWithConn(q, conn); err != nil {
				failed.Add(1)
			}
		}
	})
	b.ReportMetric(float64(failed.Load()), "failed")
}
