package meshnet

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkForwardStream: one stream through a Forward, as a Back relays a
// large upload (up) or download (down) between a Front and a container: the
// client node dials the server node's forward, which relays to a loopback
// TCP peer. Writes are of wsize bytes, as a proxy's buffered writer issues
// them (lb writes 16 KiB).
func BenchmarkForwardStream(b *testing.B) {
	const chunk = 1 << 20
	for _, dir := range []string{"up", "down"} {
		for _, wsize := range []int{16 << 10, 1 << 20} {
			b.Run(fmt.Sprintf("%s/write%dk", dir, wsize>>10), func(b *testing.B) {
				client := newNode(b, "100.64.0.1", nodeOpts{})
				server := newNode(b, "100.64.0.2", nodeOpts{})
				link(b, client, server)
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				defer ln.Close()
				f, err := server.Forward(80, ln.Addr().String(), []netip.Addr{netip.MustParseAddr("100.64.0.1")})
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				c, err := client.DialContext(ctxTimeout(b, 10*time.Second), "tcp", "100.64.0.2:80")
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				s, err := ln.Accept()
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				src, dst := c, s
				if dir == "down" {
					src, dst = s, c
				}
				done := make(chan error, 1)
				b.SetBytes(chunk)
				cpu := cpuTime(b)
				go func() {
					_, err := io.CopyN(io.Discard, dst, int64(b.N)*chunk)
					done <- err
				}()
				buf := make([]byte, wsize)
				for i := 0; i < b.N; i++ {
					for sent := 0; sent < chunk; sent += wsize {
						if _, err := src.Write(buf); err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/float64(b.N), "cpu-µs/MiB")
			})
		}
	}
}
