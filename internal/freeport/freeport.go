// Package freeport finds free ports on 127.0.0.1 for tests, benchmarks and
// local clusters. A port is free when asked and may be taken by someone else
// before it is used; callers bind it at once.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
)

// TCP returns a free 127.0.0.1:port for TCP, chosen as TCPs chooses: a
// port the kernel hands out for port 0 is the next one it gives an outgoing
// connection too, and a benchmark opening many connections took a core's
// raft port that way before the core bound it.
func TCP() (string, error) {
	addrs, err := TCPs(1)
	if err != nil {
		return "", err
	}
	return addrs[0], nil
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
// from 20000-31999, below the ephemeral range (32768-60999 by default) the
// kernel hands out for port 0 and outgoing connections, so a port freed here
// is not taken by a connection before the caller binds it.
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
