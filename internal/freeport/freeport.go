// Package freeport finds free ports on 127.0.0.1 for tests, benchmarks and
// local clusters. A port is free when asked and may be taken by someone else
// before it is used; callers bind it at once.
package freeport

import (
	"fmt"
	"net"
)

// TCP returns a free 127.0.0.1:port for TCP.
func TCP() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("freeport: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// UDP returns a free UDP port on 127.0.0.1.
func UDP() (uint16, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, fmt.Errorf("freeport: %w", err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
}
