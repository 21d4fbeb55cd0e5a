package meshnet

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// backWithFrontAndStranger returns a Back (100.64.1.1) linked to a Front
// and to a peer its forwards do not allow.
func backWithFrontAndStranger(t *testing.T) (back, front, stranger *Node) {
	back = newNode(t, "100.64.1.1", nodeOpts{})
	front = newNode(t, "100.64.0.1", nodeOpts{})
	stranger = newNode(t, "100.64.0.2", nodeOpts{})
	link(t, back, front)
	link(t, back, stranger)
	return back, front, stranger
}

// A Back forwards tunnel:5000 to a local service for one Front only.
func TestForwardServesAllowedPeersOnly(t *testing.T) {
	requireNoLeak(t)
	back, front, stranger := backWithFrontAndStranger(t)
	target, conns := localServer(t, "hello from container")

	fwd, err := back.Forward(5000, target, []netip.Addr{front.Address()})
	require.NoError(t, err)
	require.Equal(t, []netip.Addr{front.Address()}, fwd.Allowed())

	readAll := func(n *Node) (string, error) {
		c, err := n.DialContext(ctxTimeout(t, 5*time.Second), "tcp", "100.64.1.1:5000")
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		return string(b), err
	}
	got, err := readAll(front)
	require.NoError(t, err)
	require.Equal(t, "hello from container", got)
	<-conns

	got, _ = readAll(stranger)
	require.Empty(t, got, "a peer not on the allow-list gets nothing")
	select {
	case <-conns:
		t.Fatal("the refused peer's connection reached the service")
	case <-time.After(100 * time.Millisecond):
	}
	accepted, refused := fwd.Stats()
	require.Equal(t, uint64(1), accepted)
	require.Equal(t, uint64(1), refused)

	// The allow-list changes live.
	fwd.SetAllowed([]netip.Addr{stranger.Address()})
	got, err = readAll(stranger)
	require.NoError(t, err)
	require.Equal(t, "hello from container", got)
	got, _ = readAll(front)
	require.Empty(t, got)
	require.NoError(t, fwd.Close())
	require.NoError(t, fwd.Close(), "closing twice is harmless")
}

// Removing a peer from the allow-list cuts its open connections.
func TestForwardCutsConnectionsOfDisallowedPeers(t *testing.T) {
	back := newNode(t, "100.64.1.1", nodeOpts{})
	front := newNode(t, "100.64.0.1", nodeOpts{})
	link(t, back, front)
	target := echoServer(t) // keeps the connection open
	fwd, err := back.Forward(5001, target, []netip.Addr{front.Address()})
	require.NoError(t, err)
	c, err := front.DialContext(context.Background(), "tcp", "100.64.1.1:5001")
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "ping")
	require.NoError(t, err)
	buf := make([]byte, 4)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, "ping", string(buf))

	fwd.SetAllowed(nil)
	_, err = c.Read(buf)
	require.Error(t, err, "the connection is cut when its peer loses access")
}

func TestForwardBadArguments(t *testing.T) {
	n := newNode(t, "100.64.1.1", nodeOpts{})
	_, err := n.Forward(0, "127.0.0.1:80", nil)
	require.ErrorContains(t, err, "port is required")
	_, err = n.Forward(5000, "no-port", nil)
	require.ErrorContains(t, err, "target")
	f, err := n.Forward(5000, "127.0.0.1:80", nil)
	require.NoError(t, err)
	defer f.Close()
	_, err = n.Forward(5000, "127.0.0.1:80", nil)
	require.Error(t, err, "the port is taken")
}

// A closed forward's port stays reserved while its connections are in
// TIME_WAIT (gVisor, no SO_REUSEADDR), so users park a forward with an empty
// allow-list instead of closing it; parked and re-armed, it serves again at
// once.
func TestParkedForwardServesAgainAtOnce(t *testing.T) {
	back := newNode(t, "100.64.1.1", nodeOpts{})
	front := newNode(t, "100.64.0.1", nodeOpts{})
	link(t, back, front)
	f, err := back.Forward(5000, echoServer(t), []netip.Addr{front.Address()})
	require.NoError(t, err)
	echo := func() error {
		c, err := front.DialContext(ctxTimeout(t, 5*time.Second), "tcp", "100.64.1.1:5000")
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "x"); err != nil {
			return err
		}
		_, err = io.ReadFull(c, make([]byte, 1))
		return err
	}
	require.NoError(t, echo())

	f.SetAllowed(nil) // parked
	require.Error(t, echo())
	f.SetAllowed([]netip.Addr{front.Address()}) // the port is handed out again
	require.NoError(t, echo())

	require.NoError(t, f.Close())
	_, err = back.Forward(5000, "127.0.0.1:1", nil)
	require.ErrorContains(t, err, "port is in use", "why users park instead of closing")
}

// A forward tries its targets in order: a Back gives the container's own
// address first and its published port as the fallback.
func TestForwardTargetsFallBackInOrder(t *testing.T) {
	back := newNode(t, "100.64.1.1", nodeOpts{})
	front := newNode(t, "100.64.0.1", nodeOpts{})
	link(t, back, front)
	direct, directConns := localServer(t, "direct")
	published, _ := localServer(t, "published")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := ln.Addr().String()
	ln.Close() // nothing listens there now: a refusal

	fwd, err := back.Forward(5002, published, []netip.Addr{front.Address()})
	require.NoError(t, err)
	defer fwd.Close()
	read := func() string {
		c, err := front.DialContext(ctxTimeout(t, 5*time.Second), "tcp", "100.64.1.1:5002")
		require.NoError(t, err)
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		return string(b)
	}
	for _, tc := range []struct {
		name    string
		targets []string
		want    string
	}{
		{"one target", []string{published}, "published"},
		{"the first that accepts", []string{direct, published}, "direct"},
		{"past a refusal", []string{refused, published}, "published"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, fwd.SetTargets(tc.targets...))
			require.Equal(t, tc.targets, fwd.Targets())
			require.Equal(t, tc.want, read())
		})
	}
	require.Len(t, directConns, 1, "the direct target served once")
	mine := []string{published, direct}
	require.NoError(t, fwd.SetTargets(mine...))
	mine[0] = refused
	require.Equal(t, []string{published, direct}, fwd.Targets(), "the forward keeps its own copy")
	require.ErrorContains(t, fwd.SetTargets(), "a target is required")
	require.ErrorContains(t, fwd.SetTargets(direct, "no-port"), `target "no-port"`)
	require.Equal(t, []string{published, direct}, fwd.Targets(), "a refused change changes nothing")
}

// ForwardTo hands allowed connections to a handler, with a dial to the
// forward's targets; refused peers never reach it, and parking the forward
// (an empty allow-list) cuts what the handler serves.
func TestForwardToHandler(t *testing.T) {
	requireNoLeak(t)
	back, front, stranger := backWithFrontAndStranger(t)
	target, _ := localServer(t, "from the target")

	served := make(chan netip.Addr, 4)
	handler := func(c net.Conn, dial func(context.Context) (net.Conn, error)) {
		served <- remoteAddr(c)
		up, err := dial(context.Background())
		if err != nil {
			return
		}
		defer up.Close()
		io.Copy(c, up) // the target's greeting
		io.Copy(io.Discard, c)
	}
	fwd, err := back.ForwardTo(5000, target, []netip.Addr{front.Address()}, handler)
	require.NoError(t, err)
	defer fwd.Close()

	c, err := front.DialContext(ctxTimeout(t, 5*time.Second), "tcp", "100.64.1.1:5000")
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, len("from the target"))
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, "from the target", string(buf))
	require.Equal(t, front.Address(), <-served)

	s, err := stranger.DialContext(ctxTimeout(t, 5*time.Second), "tcp", "100.64.1.1:5000")
	require.NoError(t, err)
	s.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = s.Read(buf)
	require.Error(t, err, "refused")
	s.Close()

	fwd.SetAllowed(nil) // parked: the handler's connection is cut
	_, err = c.Read(buf)
	require.Error(t, err)
	select {
	case a := <-served:
		t.Fatalf("the handler served %s", a)
	default:
	}
	accepted, refused := fwd.Stats()
	require.Equal(t, uint64(1), accepted)
	require.Equal(t, uint64(1), refused)
}
