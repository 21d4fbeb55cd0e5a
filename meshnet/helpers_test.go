package meshnet

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type nodeOpts struct {
	port  uint16
	key   PrivateKey
	wan   *WANConfig
	probe time.Duration
	dial  time.Duration
	mtu   int
	path  dataPath
	alive time.Duration // TCPKeepalive
}

// newNode starts a real node on loopback UDP and closes it with the test.
func newNode(t testing.TB, addr string, o nodeOpts) *Node {
	t.Helper()
	if o.key.IsZero() {
		var err error
		o.key, err = GeneratePrivateKey()
		require.NoError(t, err)
	}
	cfg := Config{PrivateKey: o.key, Address: netip.MustParseAddr(addr), ListenPort: o.port, ProbeInterval: o.probe, DialTimeout: o.dial, MTU: o.mtu, TCPKeepalive: o.alive, dataPath: o.path}
	if o.wan != nil {
		b, err := NewWANBind(nil, *o.wan)
		require.NoError(t, err)
		cfg.Bind = b
	}
	n, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { n.Close() })
	return n
}

// peerOf describes n as seen from elsewhere, reachable on loopback.
func peerOf(n *Node) Peer {
	return Peer{PublicKey: n.PublicKey(), Address: n.Address(), Endpoint: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), n.ListenPort())}
}

// link peers a and b with each other, both endpoints known.
func link(t testing.TB, a, b *Node) {
	t.Helper()
	require.NoError(t, a.UpsertPeer(peerOf(b)))
	require.NoError(t, b.UpsertPeer(peerOf(a)))
}

// serveName serves HTTP on the node's tunnel port 80, answering its address.
func serveName(t testing.TB, n *Node) {
	t.Helper()
	ln, err := n.Listen(80)
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s from %s", n.Address(), r.RemoteAddr)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// httpClient makes requests through n's tunnel.
func httpClient(n *Node, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: n.DialContext, DisableKeepAlives: true}}
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// requireNoLeak fails if goroutines started during the test outlive it.
func requireNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines leaked: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

// localServer is a plain TCP server on 127.0.0.1 that answers each
// connection with msg and counts connections.
func localServer(t testing.TB, msg string) (addr string, conns <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ch := make(chan struct{}, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ch <- struct{}{}
			go func() {
				defer c.Close()
				io.WriteString(c, msg)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), ch
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// echoServer is a TCP echo server on 127.0.0.1.
func echoServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}
