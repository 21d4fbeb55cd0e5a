package splice

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	s, err := ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(); s.Close() })
	for _, x := range []net.Conn{c, s} {
		require.NoError(t, x.SetDeadline(time.Now().Add(5*time.Second)))
	}
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// A client that half-closes after its request still reads the answer: the
// half-close reaches the server, whose answer and close come back.
func TestConnsPassHalfClosesOn(t *testing.T) {
	client, a := tcpPair(t)
	b, server := tcpPair(t)
	done := make(chan struct{})
	go func() { Conns(a, b); close(done) }()

	_, err := client.Write([]byte("ping"))
	require.NoError(t, err)
	require.NoError(t, client.CloseWrite())
	got, err := io.ReadAll(server)
	require.NoError(t, err, "the server sees the request end")
	require.Equal(t, "ping", string(got))
	_, err = server.Write([]byte("pong"))
	require.NoError(t, err)
	require.NoError(t, server.Close())
	got, err = io.ReadAll(client)
	require.NoError(t, err)
	require.Equal(t, "pong", string(got))
	<-done
}

// An abort on one side ends both.
func TestConnsEndBothOnAnError(t *testing.T) {
	client, a := tcpPair(t)
	b, server := tcpPair(t)
	done := make(chan struct{})
	go func() { Conns(a, b); close(done) }()

	require.NoError(t, server.SetLinger(0))
	require.NoError(t, server.Close()) // a reset
	_, _ = io.ReadAll(client)          // returns, at EOF or a reset: the client's connection ended too
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Conns did not return after one side was reset")
	}
}
