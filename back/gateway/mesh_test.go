package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/lb"
	"potluck/meshnet"
)

// These tests run the real data path on loopback: a Front (lb) dials
// through a WireGuard mesh (two meshnet nodes) to a Back's forwards, whose
// gateways reach real HTTP servers standing in for the containers.

var discard = slog.New(slog.DiscardHandler)

type mesh struct {
	front, back *meshnet.Node
}

func newMesh(t testing.TB) mesh {
	t.Helper()
	node := func(addr string) *meshnet.Node {
		key, err := meshnet.GeneratePrivateKey()
		require.NoError(t, err)
		n, err := meshnet.New(meshnet.Config{PrivateKey: key, Address: netip.MustParseAddr(addr), Logger: discard})
		require.NoError(t, err)
		t.Cleanup(func() { n.Close() })
		return n
	}
	m := mesh{front: node("100.64.0.1"), back: node("100.64.0.2")}
	peer := func(n *meshnet.Node) meshnet.Peer {
		return meshnet.Peer{PublicKey: n.PublicKey(), Address: n.Address(),
			Endpoint: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), n.ListenPort())}
	}
	require.NoError(t, m.front.UpsertPeer(peer(m.back)))
	require.NoError(t, m.back.UpsertPeer(peer(m.front)))
	return m
}

// expose forwards the Back's tunnel port to target through a
func (m mesh) expose(t *testing.T, port uint16, target string) (*Gateway, string) {
	t.Helper()
	g := New(Config{Logger: discard})
	f, err := m.back.ForwardTo(port, target, []netip.Addr{m.front.Address()}, g.Serve)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close(); g.Close() })
	return g, netip.AddrPortFrom(m.back.Address(), port).String()
}

// frontProxy runs lb over the mesh with the given backends.
func (m mesh) frontProxy(t testing.TB, pipeline int, backends ...string) string {
	t.Helper()
	p := lb.New(lb.Options{Dialer: m.front.DialContext, PipelineBackends: pipeline, PipelineBusy: 1, Logger: discard})
	route := lb.Route{Hosts: []string{"app.test"}}
	for _, b := range backends {
		route.Backends = append(route.Backends, lb.Backend{Addr: b})
	}
	require.NoError(t, p.Update([]lb.Route{route}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go p.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Host = "app.test"
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// When an instance's container refuses connections, its gateway closes the
// Front's tunnel connection before any response, as the raw relay did, and
// the Front tries the other instance: no request fails, pipelined or not.
func TestFrontRetriesAnotherInstanceThroughGateway(t *testing.T) {
	for _, pipeline := range []int{0, 1} {
		t.Run(fmt.Sprintf("pipeline %d", pipeline), func(t *testing.T) {
			m := newMesh(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			dead := ln.Addr().String()
			ln.Close()
			live := serveHTTP(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "live") })
			gDead, deadAddr := m.expose(t, 5001, dead)
			_, liveAddr := m.expose(t, 5002, live)
			front := m.frontProxy(t, pipeline, deadAddr, liveAddr)
			c := &http.Client{Timeout: 10 * time.Second}
			for i := range 10 {
				code, body := get(t, c, front+"/")
				require.Equal(t, 200, code, "request %d", i)
				require.Equal(t, "live", body)
			}
			require.Positive(t, gDead.Stats().Failed, "the dead instance was tried")
		})
	}
}

// A pipelining Front through the gateway: many concurrent requests, and the
// container never receives a request while one is pending on its
// connection.
func TestPipeliningFrontDoesNotPipelineIntoTheApp(t *testing.T) {
	m := newMesh(t)
	var mu sync.Mutex
	pipelined := 0
	app, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	go func() {
		for {
			c, err := app.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					time.Sleep(time.Millisecond)
					if br.Buffered() > 0 {
						mu.Lock()
						pipelined++
						mu.Unlock()
					}
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.RawQuery), req.URL.RawQuery)
				}
			}()
		}
	}()
	g, addr := m.expose(t, 5003, app.Addr().String())
	front := m.frontProxy(t, 1, addr)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 20 {
				req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/?%d-%d", front, w, i), nil)
				req.Host = "app.test"
				resp, err := c.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != fmt.Sprintf("%d-%d", w, i) {
					t.Errorf("got %q for %d-%d", b, w, i)
					return
				}
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	require.Zero(t, pipelined, "the app received pipelined requests")
	require.Equal(t, uint64(16*20), g.Stats().Requests)
}

// A WebSocket-style upgrade through the Front and the gateway becomes a
// raw relay to the container.
func TestUpgradeThroughFrontAndGateway(t *testing.T) {
	m := newMesh(t)
	app, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	go func() {
		c, err := app.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(c, br)
	}()
	_, addr := m.expose(t, 5004, app.Addr().String())
	front := m.frontProxy(t, 1, addr)
	c, err := net.Dial("tcp", strings.TrimPrefix(front, "http://"))
	require.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, 101, resp.StatusCode)
	io.WriteString(c, "ping through the mesh")
	got := make([]byte, len("ping through the mesh"))
	_, err = io.ReadFull(br, got)
	require.NoError(t, err)
	require.Equal(t, "ping through the mesh", string(got))
}

// A streamed response (server-sent events) through a pipelining Front, the
// mesh and the gateway reaches the client as the app writes it, and the
// pipelined connection serves the next request after it; a large download
// streams whole.
func TestStreamedResponseThroughPipeliningFront(t *testing.T) {
	m := newMesh(t)
	release := make(chan struct{})
	big := strings.Repeat("x", 1<<20)
	app := serveHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/events":
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: first\n\n")
			w.(http.Flusher).Flush()
			<-release
			io.WriteString(w, "data: second\n\n")
		case "/big":
			io.WriteString(w, big)
		default:
			io.WriteString(w, r.URL.Path)
		}
	})
	_, addr := m.expose(t, 5005, app)
	front := m.frontProxy(t, 1, addr)
	c := &http.Client{Timeout: 10 * time.Second}

	req, _ := http.NewRequest(http.MethodGet, front+"/events", nil)
	req.Host = "app.test"
	resp, err := c.Do(req)
	require.NoError(t, err)
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "data: first\n", line, "the first event before the app ends the response")
	close(release)
	rest, err := io.ReadAll(br)
	require.NoError(t, err)
	require.Contains(t, string(rest), "data: second")
	resp.Body.Close()

	code, body := get(t, c, front+"/big")
	require.Equal(t, 200, code)
	require.Equal(t, len(big), len(body))
	code, body = get(t, c, front+"/after")
	require.Equal(t, 200, code)
	require.Equal(t, "/after", body)
}
