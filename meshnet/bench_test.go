package meshnet

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// benchPath is one way of connecting a client to a server.
type benchPath struct {
	name   string
	tunnel bool
	wan    *WANConfig // applied on each side: Delay 10 ms is a 20 ms round trip
	path   dataPath
	mtu    int
}

// benchPaths: kernel loopback as the yardstick, the tunnel as nodes run it,
// and the designs it replaced ("-stock": wireguard-go's netstack, one packet
// per hand-off; "-batched": batches without offload or TCP tuning).
// "-mtu9000" shows what a bigger tunnel MTU buys where the path carries it.
var benchPaths = []benchPath{
	{name: "loopback"},
	{name: "tunnel", tunnel: true},
	{name: "tunnel-mtu9000", tunnel: true, mtu: 9000},
	{name: "tunnel-batched", tunnel: true, path: pathBatched},
	{name: "tunnel-stock", tunnel: true, path: pathStock},
	{name: "tunnel-rtt20ms", tunnel: true, wan: &WANConfig{Delay: 10 * time.Millisecond}},
	{name: "tunnel-rtt20ms-stock", tunnel: true, wan: &WANConfig{Delay: 10 * time.Millisecond}, path: pathStock},
}

// tunnelPackets counts the packets both nodes of the path handed to
// WireGuard (0 on kernel loopback and on pathStock).
type tunnelPackets []*Node

func (t tunnelPackets) count() uint64 {
	var n uint64
	for _, node := range t {
		if l, ok := node.tun.(*tunLink); ok {
			n += l.sentPackets.Load()
		}
	}
	return n
}

// serve starts h on the path and returns how to dial it and where.
func (p benchPath) serve(b *testing.B, h http.Handler) (dialFunc, string, tunnelPackets) {
	var ln net.Listener
	var dial dialFunc
	var nodes tunnelPackets
	if p.tunnel {
		client := newNode(b, "100.64.0.1", nodeOpts{wan: p.wan, path: p.path, mtu: p.mtu})
		server := newNode(b, "100.64.0.2", nodeOpts{wan: p.wan, path: p.path, mtu: p.mtu})
		link(b, client, server)
		nodes = tunnelPackets{client, server}
		l, err := server.Listen(80)
		if err != nil {
			b.Fatal(err)
		}
		ln, dial = l, client.DialContext
	} else {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		var d net.Dialer
		ln, dial = l, d.DialContext
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()
	if p.tunnel {
		addr = "100.64.0.2:80"
	}
	return dial, addr, nodes
}

// BenchmarkHTTPSequential: one client, keep-alive, one small request at a
// time, as the paper's latency table measures.
func BenchmarkHTTPSequential(b *testing.B) {
	for _, p := range benchPaths {
		b.Run(p.name, func(b *testing.B) {
			dial, addr, nodes := p.serve(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "hello from the benchmark\n")
			}))
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 1}}
			url := "http://" + addr + "/"
			get := func() {
				resp, err := client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			get() // handshake and connection outside the timing
			b.ResetTimer()
			start, cpu, pkts := time.Now(), cpuTime(b), nodes.count()
			for b.Loop() {
				get()
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
			b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/float64(b.N), "cpu-µs/req")
			b.ReportMetric(float64(nodes.count()-pkts)/float64(b.N), "pkts/req")
		})
	}
}

// BenchmarkHTTPConcurrent: 64 keep-alive connections, one request in flight
// on each, as wrk -c64 loads a Front. Batches fill here, so it shows the CPU a
// request costs under load. The 20 ms cases are left out: they measure the
// round trip, as the sequential benchmark already does.
func BenchmarkHTTPConcurrent(b *testing.B) {
	const conns = 64
	for _, p := range benchPaths {
		if p.wan != nil {
			continue
		}
		b.Run(p.name, func(b *testing.B) {
			dial, addr, nodes := p.serve(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "hello from the benchmark\n")
			}))
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, MaxIdleConnsPerHost: conns}}
			url := "http://" + addr + "/"
			b.SetParallelism((conns + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			start, cpu, pkts := time.Now(), cpuTime(b), nodes.count()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
			b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/float64(b.N), "cpu-µs/req")
			b.ReportMetric(float64(nodes.count()-pkts)/float64(b.N), "pkts/req")
		})
	}
}

// BenchmarkStream: one TCP stream carrying 1 MiB per iteration.
func BenchmarkStream(b *testing.B) {
	const chunk = 1 << 20
	for _, p := range benchPaths {
		b.Run(p.name, func(b *testing.B) {
			dial, addr, _ := p.serve(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
			}))
			conn, err := dial(context.Background(), "tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			// A raw upload: one request with a body of b.N MiB.
			buf := make([]byte, chunk)
			b.SetBytes(chunk)
			io.WriteString(conn, "POST / HTTP/1.1\r\nHost: bench\r\nTransfer-Encoding: chunked\r\n\r\n")
			b.ResetTimer()
			cpu := cpuTime(b)
			for b.Loop() {
				if _, err := io.WriteString(conn, "100000\r\n"); err != nil {
					b.Fatal(err)
				}
				if _, err := conn.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.WriteString(conn, "\r\n"); err != nil {
					b.Fatal(err)
				}
			}
			io.WriteString(conn, "0\r\n\r\n")
			// Wait for the server's response so every byte was received.
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := conn.Read(make([]byte, 64)); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/float64(b.N), "cpu-µs/MiB")
		})
	}
}

// cpuTime is the CPU time (user and system) the process has used: client,
// server and both nodes, since they share it. On a shared machine it is a
// steadier figure than throughput.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTUNLinkRead: what the link costs per 64 KiB TCP segment the stack
// sends, cut into MTU-sized packets in WireGuard's batches of tunBatch
// (8 segments a round, so segments are cut across Reads as in a stream).
func BenchmarkTUNLinkRead(b *testing.B) {
	const segments = 8
	l := testLink(b, "100.64.0.1")
	src, dst := netip.MustParseAddr("100.64.0.1"), netip.MustParseAddr("100.64.0.2")
	payload := make([]byte, gsoMaxSize-header.IPv4MinimumSize-32)
	pkts := make([]*stack.PacketBuffer, segments)
	for i := range pkts {
		pkts[i] = gsoPacket(b, src, dst, payload, header.TCPFlagAck, DefaultMTU-header.IPv4MinimumSize-32)
		defer pkts[i].DecRef()
	}
	bufs, sizes := make([][]byte, tunBatch), make([]int, tunBatch)
	for i := range bufs {
		bufs[i] = make([]byte, 16+DefaultMTU)
	}
	perRound := segments * ((len(payload) + DefaultMTU - header.IPv4MinimumSize - 32 - 1) / (DefaultMTU - header.IPv4MinimumSize - 32))
	b.SetBytes(segments * int64(len(payload)))
	cpu := cpuTime(b)
	for b.Loop() {
		var list stack.PacketBufferList
		for _, p := range pkts {
			list.PushBack(p)
		}
		if n, err := (*linkEndpoint)(l).WritePackets(list); n != segments {
			b.Fatalf("queued %d of %d: %v", n, segments, err)
		}
		for got := 0; got < perRound; {
			n, err := l.Read(bufs, sizes, 16)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
	}
	b.ReportMetric(float64((cpuTime(b)-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
}
