package gateway

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

	"github.com/valyala/fasthttp"
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
					g := New(Config{Logger: discard})
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

// BenchmarkFrontPath: one request at a time from a client through a Front
// (lb, keep-alive pool) over the mesh to a Back's forward, relaying bytes
// or through the gateway: the latency a lone request pays (ns/op).
func BenchmarkFrontPath(b *testing.B) {
	for _, mode := range []string{"relay", "gateway"} {
		b.Run(mode, func(b *testing.B) {
			m := newMesh(b)
			// fasthttp, as the benchmark's fast app.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") }, IdleTimeout: time.Minute}
			go srv.Serve(ln)
			defer srv.Shutdown()
			app := ln.Addr().String()
			allowed := []netip.Addr{m.front.Address()}
			if mode == "relay" {
				f, err := m.back.Forward(80, app, allowed)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
			} else {
				g := New(Config{Logger: discard})
				f, err := m.back.ForwardTo(80, app, allowed, g.Serve)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				defer g.Close()
			}
			front := m.frontProxy(b, 0, "100.64.0.2:80")
			c := &http.Client{Timeout: 10 * time.Second}
			get := func() {
				req, _ := http.NewRequest(http.MethodGet, front+"/", nil)
				req.Host = "app.test"
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			get()
			cpu := cpuTime()
			b.ResetTimer()
			for range b.N {
				get()
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/req")
		})
	}
}
