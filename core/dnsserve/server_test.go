package dnsserve

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// startTestServer starts s on loopback and stops it with the test.
func startTestServer(t *testing.T, s *Server) string {
	t.Helper()
	require.NoError(t, s.Start("127.0.0.1:0"))
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s.Addr()
}

func exchange(t *testing.T, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	resp, _, err := c.Exchange(m, addr)
	require.NoError(t, err)
	return resp
}

func TestWireUDPAndTCPAndStatistics(t *testing.T) {
	s := newTestServer(t, fixture(), nil)
	s.Observe(context.Background())
	addr := startTestServer(t, s)

	for _, network := range []string{"udp", "tcp"} {
		resp := exchange(t, network, addr, query("shop.apps.example.org.", dns.TypeA))
		require.Equal(t, dns.RcodeSuccess, resp.Rcode, network)
		require.True(t, resp.Authoritative)
		require.Len(t, resp.Answer, 2)
	}
	resp := exchange(t, "udp", addr, query("example.com.", dns.TypeA))
	require.Equal(t, dns.RcodeRefused, resp.Rcode)
	resp = exchange(t, "udp", addr, query("nope.apps.example.org.", dns.TypeA))
	require.Equal(t, dns.RcodeNameError, resp.Rcode)

	shop := s.Stats().Site("shop.apps.example.org")
	require.EqualValues(t, 2, shop.Requests.Load())
	require.Greater(t, shop.BytesIn.Load(), uint64(2*30))
	require.Greater(t, shop.BytesOut.Load(), shop.BytesIn.Load())
	require.EqualValues(t, 2, s.Stats().Front("f1").Answers.Load())
	require.EqualValues(t, 2, s.Stats().Rcode(dns.RcodeSuccess))
	require.EqualValues(t, 1, s.Stats().Rcode(dns.RcodeRefused))
	require.EqualValues(t, 1, s.Stats().Rcode(dns.RcodeNameError))
	// The service whose only Front the core holds down counts one down event.
	require.EqualValues(t, 1, s.Stats().Site("empty.apps.example.org").Down.Load())
	require.EqualValues(t, 1, s.Stats().Front("f4").Down.Load())

	var out strings.Builder
	s.Stats().WriteMetrics(&out)
	for _, want := range []string{
		`potluck_dns_service_requests_total{domain="shop.apps.example.org.",installation="shop"} 2`,
		`potluck_dns_service_down_total{domain="empty.apps.example.org.",installation="empty"} 1`,
		`potluck_dns_front_answers_total{front="front1",id="f1"} 2`,
		`potluck_dns_front_alive{front="front4",id="f4"} 0`,
		`potluck_dns_responses_total{rcode="REFUSED"} 1`,
		"# TYPE potluck_dns_service_sent_bytes_total counter",
	} {
		require.Contains(t, out.String(), want)
	}
}

func TestRateLimitDropsUDPOnly(t *testing.T) {
	s := newTestServer(t, fixture(), func(c *Config) { c.Rate, c.Burst = 0.001, 3 })
	addr := startTestServer(t, s)
	for range 3 {
		exchange(t, "udp", addr, query("shop.apps.example.org.", dns.TypeA))
	}
	c := &dns.Client{Net: "udp", Timeout: 300 * time.Millisecond}
	_, _, err := c.Exchange(query("shop.apps.example.org.", dns.TypeA), addr)
	require.Error(t, err, "the fourth UDP query within the burst is dropped")
	require.EqualValues(t, 1, s.Stats().Dropped())
	resp := exchange(t, "tcp", addr, query("shop.apps.example.org.", dns.TypeA))
	require.Equal(t, dns.RcodeSuccess, resp.Rcode, "TCP proves the source address: not limited")
}

func TestTCPIdleConnectionsAreClosed(t *testing.T) {
	s := newTestServer(t, fixture(), func(c *Config) { c.TCPIdle = 200 * time.Millisecond })
	addr := startTestServer(t, s)
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	start := time.Now()
	_, err = conn.Read(make([]byte, 1))
	require.Error(t, err, "the server closes a connection that sends nothing")
	require.Less(t, time.Since(start), 4*time.Second)
}

func TestTCPConnectionLimit(t *testing.T) {
	s := newTestServer(t, fixture(), func(c *Config) { c.MaxTCPConns, c.TCPIdle = 2, 3*time.Second })
	addr := startTestServer(t, s)
	var conns []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		conns = append(conns, c)
		// Make sure the server accepted it before the next.
		co := &dns.Conn{Conn: c}
		require.NoError(t, co.WriteMsg(query("shop.apps.example.org.", dns.TypeA)))
		_, err = co.ReadMsg()
		require.NoError(t, err)
	}
	third := &dns.Client{Net: "tcp", Timeout: 500 * time.Millisecond}
	_, _, err := third.Exchange(query("shop.apps.example.org.", dns.TypeA), addr)
	require.Error(t, err, "a third connection waits while two are open")
	conns[0].Close()
	third.Timeout = 3 * time.Second
	resp, _, err := third.Exchange(query("shop.apps.example.org.", dns.TypeA), addr)
	require.NoError(t, err, "and is served once one closes")
	require.Equal(t, dns.RcodeSuccess, resp.Rcode)
	conns[1].Close()
}

// TestChecksOfRealHTTP: the checker fetches the Fronts' public URLs; a
// Front whose listener closes leaves the answers after Fall rounds and is
// counted down once, and comes back after Rise rounds.
func TestChecksOfRealHTTP(t *testing.T) {
	var hits int
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		require.Equal(t, checkHost, r.Host)
		http.NotFound(w, r) // any HTTP answer passes
	}))
	addr := front.Listener.Addr().String()
	v := NewView(1, []*Site{{Installation: "shop", Domain: "shop.apps.example.org", Fronts: []string{"f1", "f2"}}}, []*Front{
		{ID: "f1", Name: "front1", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, CheckURL: "http://" + addr, CoreUp: true},
		{ID: "f2", Name: "front2", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.2")}, CoreUp: true},
	})
	s := newTestServer(t, v, func(c *Config) { c.Check = CheckConfig{Timeout: 500 * time.Millisecond, Fall: 2, Rise: 2} })
	ctx := context.Background()
	answers := func() int {
		return len(s.Answer(query("shop.apps.example.org.", dns.TypeA), netip.MustParseAddr("10.0.0.1"), true).Answer)
	}

	s.Observe(ctx)
	require.Equal(t, 1, hits)
	require.Equal(t, 2, answers())
	front.Close()
	s.Observe(ctx)
	require.Equal(t, 2, answers(), "one failed check is below Fall")
	s.Observe(ctx)
	require.Equal(t, 1, answers())
	s.Observe(ctx)
	require.EqualValues(t, 1, s.Stats().Front("f1").Down.Load(), "counted once")
	require.Zero(t, s.Stats().Site("shop.apps.example.org").Down.Load(), "the service still has f2")

	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	back := httptest.NewUnstartedServer(http.NotFoundHandler())
	back.Listener = ln
	back.Start()
	defer back.Close()
	s.Observe(ctx)
	require.Equal(t, 1, answers(), "one pass is below Rise")
	s.Observe(ctx)
	require.Equal(t, 2, answers())
	require.EqualValues(t, 1, s.Stats().Front("f1").Up.Load())
}

// TestChecksOfASilentFront: a Front that accepts connections but never
// answers (a frozen machine) fails each check at its timeout.
func TestChecksOfASilentFront(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // read nothing, answer nothing
		}
	}()
	v := NewView(1, []*Site{{Domain: "shop.apps.example.org", Fronts: []string{"f1", "f2"}}}, []*Front{
		{ID: "f1", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, CheckURL: "http://" + ln.Addr().String(), CoreUp: true},
		{ID: "f2", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.2")}, CoreUp: true},
	})
	s := newTestServer(t, v, func(c *Config) { c.Check = CheckConfig{Timeout: 200 * time.Millisecond, Fall: 2, Rise: 2} })
	start := time.Now()
	s.Observe(context.Background())
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "the check waited for its timeout")
	resp := s.Answer(query("shop.apps.example.org.", dns.TypeA), netip.MustParseAddr("10.0.0.1"), true)
	require.Equal(t, []string{"shop.apps.example.org. 10 A 192.0.2.2"}, rrStrings(resp.Answer), "its first check failed: out at once")
	require.Error(t, s.check.lastErr("f1"))
}
