package lb

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBackendConnFailsBothWaysConcurrently: a pipelined connection (its
// writer and reader goroutines) and a tunnel (one goroutine per direction)
// use a backendConn from two goroutines at once. When the backend resets
// it both directions fail together; each keeps its own error, and -race
// finds no conflict. Before, both wrote one shared error field.
func TestBackendConnFailsBothWaysConcurrently(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	b := newBackendState(Backend{Addr: ln.Addr().String()}, &Options{Dialer: TCPDialer(), Timeouts: Timeouts{Connect: 5 * time.Second}})
	c, err := b.connect(true)
	require.NoError(t, err)
	defer c.Close()
	srv, err := ln.Accept()
	require.NoError(t, err)
	require.NoError(t, srv.(*net.TCPConn).SetLinger(0))
	require.NoError(t, srv.Close()) // a reset

	read := make(chan struct{})
	go func() {
		defer close(read)
		buf := make([]byte, 16)
		for range 100 {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	for range 100 { // the reset reaches the writer within a few writes
		if _, err := c.Write([]byte("x")); err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	<-read
	require.Error(t, c.writeErr)
	require.Error(t, c.readErr)
	require.Equal(t, c.writeErr, c.ioErr(), "the request is written before the response is read")
}
