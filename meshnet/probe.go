package meshnet

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// probePort is the tunnel port hubs are probed on. Nothing needs to listen
// there: a refused connection proves the path as well as an accepted one.
const probePort = 9

// probeFailuresBeforeRehandshake is how many probes in a row may go
// unanswered before the session to a hub is thrown away.
const probeFailuresBeforeRehandshake = 2

// probeHubs keeps the paths to hub peers alive. Keepalives alone do not
// repair a session after a hub restarts (WireGuard waits for its keypair to
// age out: 132 s measured), so every ProbeInterval each hub gets a real data
// packet, a TCP connect over the tunnel. Data arms WireGuard's own 15 s
// handshake retry; and after two unanswered probes the peer is re-created,
// which drops the stale keypair and starts a handshake at once.
func (n *Node) probeHubs() {
	defer n.wg.Done()
	ticker := time.NewTicker(n.cfg.ProbeInterval)
	defer ticker.Stop()
	failures := make(map[PublicKey]int)
	for {
		select {
		case <-n.probeCtx.Done():
			return
		case <-ticker.C:
		}
		hubs := n.hubs()
		alive := make([]bool, len(hubs))
		var wg sync.WaitGroup
		for i, h := range hubs {
			wg.Go(func() { alive[i] = n.probe(n.probeCtx, h.Address) })
		}
		wg.Wait()
		if n.probeCtx.Err() != nil {
			return
		}
		seen := make(map[PublicKey]bool, len(hubs))
		for i, h := range hubs {
			seen[h.PublicKey] = true
			if alive[i] {
				failures[h.PublicKey] = 0
				continue
			}
			failures[h.PublicKey]++
			if failures[h.PublicKey] >= probeFailuresBeforeRehandshake {
				failures[h.PublicKey] = 0
				n.rehandshake(h)
			}
		}
		for k := range failures {
			if !seen[k] {
				delete(failures, k)
			}
		}
	}
}

func (n *Node) hubs() []Peer {
	n.mu.Lock()
	defer n.mu.Unlock()
	var hubs []Peer
	for _, p := range n.peers {
		if p.Hub {
			hubs = append(hubs, p)
		}
	}
	return hubs
}

// probe reports whether the hub answered at all before the timeout: with a
// connection or with a refusal.
func (n *Node) probe(ctx context.Context, hub netip.Addr) bool {
	ctx, cancel := context.WithTimeout(ctx, max(n.cfg.ProbeInterval/2, time.Second))
	defer cancel()
	c, err := n.tnet.DialContextTCPAddrPort(ctx, netip.AddrPortFrom(hub, probePort))
	if err == nil {
		c.Close()
		return true
	}
	return ctx.Err() == nil
}

// rehandshake re-creates a hub peer so that WireGuard forgets its keypairs
// and, because the keepalive switches on, sends a handshake right away.
func (n *Node) rehandshake(h Peer) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.peers[h.PublicKey] != h {
		return // changed or removed meanwhile
	}
	var b strings.Builder
	writeRemove(&b, h.PublicKey)
	writePeer(&b, h, false)
	if err := n.dev.IpcSet(b.String()); err != nil {
		n.log.Warn("re-handshake with hub failed", "hub", h.Address.String(), "err", err)
		return
	}
	n.log.Info("hub unanswered; re-handshaking", "hub", h.Address.String(), "endpoint", h.Endpoint.String())
}
