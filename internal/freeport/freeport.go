// Package freeport finds free ports on 127.0.0.1 for tests, benchmarks and
// local clusters. A port is free when asked and may be taken by someone else
// before it is used; callers bind it at once.
package freeport

import (
	"fmt"
	"math/rand/v2"
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

// TCPs returns n distinct free 127.0.0.1:port addresses for TCP, held
// together while they are chosen so none repeats. They are picked at random
// from 20000-31999, away from the ephemeral range the kernel hands out for
// port 0, so a port freed here is less likely to be taken by an outgoing
// connection before the caller binds it (a raft or API port that must stay
// the same across a node's restarts).
func TCPs(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	var out []string
	for attempt := 0; attempt < 1000 && len(out) < n; attempt++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000)))
		if err != nil {
			continue
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	if len(out) < n {
		return nil, fmt.Errorf("freeport: found %d of %d free ports", len(out), n)
	}
	return out, nil
}
