package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"potluck/back/gateway"
)

// BenchmarkMeshPath: requests through a WireGuard tunnel to a Back's
// forward and on to a net/http server standing in for the container, the
// forward relaying bytes (relay) or through the gateway (gateway); one
// request at a time (sequential) or in bursts of 64 written at once
// (pipelined64, as a pipelining Front sends them). cpu-µs/req is the whole
// process: both mesh nodes, the client, the gateway and the server.
func BenchmarkMeshPath(b *testing.B) {
	for _, mode := range []string{"relay", "gateway"} {
		for _, depth := range []int{1, 64} {
			name := "sequential"
			if depth > 1 {
				name = fmt.Sprintf("pipelined%d", depth)
			}
			b.Run(mode+"/"+name, func(b *testing.B) {
				m := newMesh(b)
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					io.WriteString(w, "ok")
				})}
				go srv.Serve(ln)
				defer srv.Close()
				allowed := []netip.Addr{m.front.Address()}
				if mode == "relay" {
					f, err := m.back.Forward(80, ln.Addr().String(), allowed)
					if err != nil {
						b.Fatal(err)
					}
					defer f.Close()
				} else {
					g := gateway.New(gateway.Config{Logger: discard})
					f, err := m.back.ForwardTo(80, ln.Addr().String(), allowed, g.Serve)
					if err != nil {
						b.Fatal(err)
					}
					defer f.Close()
					defer g.Close()
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				c, err := m.front.DialContext(ctx, "tcp", "100.64.0.2:80")
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				burst := strings.Repeat("GET / HTTP/1.1\r\nHost: app\r\n\r\n", depth)
				br := bufio.NewReader(c)
				round := func() {
					if _, err := io.WriteString(c, burst); err != nil {
						b.Fatal(err)
					}
					for range depth {
						resp, err := http.ReadResponse(br, nil)
						if err != nil {
							b.Fatal(err)
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
				round() // warm: handshake, connections
				cpu := cpuTime()
				b.ResetTimer()
				n := 0
				for n < b.N {
					round()
					n += depth
				}
				b.StopTimer()
				b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(n), "cpu-µs/req")
			})
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
