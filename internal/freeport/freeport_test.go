package freeport

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPortsAreFreeOnLoopback(t *testing.T) {
	addr, err := TCP()
	require.NoError(t, err)
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err, "the TCP port can be bound")
	ln.Close()
	port, err := UDP()
	require.NoError(t, err)
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)})
	require.NoError(t, err, "the UDP port can be bound")
	c.Close()
}

func TestTCPPortsAreBelowTheEphemeralRange(t *testing.T) {
	for range 20 {
		addr, err := TCP()
		require.NoError(t, err)
		_, port, err := net.SplitHostPort(addr)
		require.NoError(t, err)
		n, err := strconv.Atoi(port)
		require.NoError(t, err)
		require.True(t, n >= 20000 && n < 32000, "port %d is outside 20000-31999", n)
	}
}

func TestTCPsAreDistinctAndFree(t *testing.T) {
	addrs, err := TCPs(20)
	require.NoError(t, err)
	require.Len(t, addrs, 20)
	seen := map[string]bool{}
	for _, a := range addrs {
		require.False(t, seen[a], "%s twice", a)
		seen[a] = true
		ln, err := net.Listen("tcp", a)
		require.NoError(t, err, "returned port is free")
		ln.Close()
	}
}
