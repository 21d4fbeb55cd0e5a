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

// probeFailuresBeforeRehandshake is how many rounds in a row a hub may stay
// silent (no probe answered, no byte received) before its session is thrown
// away.
const probeFailuresBeforeRehandshake = 2

// probeHubs keeps the paths to hub peers alive. Keepalives alone do not
// repair a session after a hub restarts (WireGuard waits for its keypair to
// age out: 132 s measured), so every ProbeInterval each hub gets a real data
// packet, a TCP connect over the tunnel. Data arms WireGuard's own 15 s
// handshake retry; and after two rounds in which the hub neither answered a
// probe nor sent a single byte, the peer is re-created, which drops the stale
// keypair and starts a handshake at once. Counting received bytes keeps a busy
// but slow path (a loaded machine, a long round trip) from being torn down by
// probes that merely answered late.
func (n *Node) probeHubs() {
	defer n.wg.Done()
	ticker := time.NewTicker(n.cfg.ProbeInterval)
	defer ticker.Stop()
	failures := make(map[PublicKey]int)
	lastRx := make(map[PublicKey]uint64)
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
		rx := n.rxBytes()
		seen := make(map[PublicKey]bool, len(hubs))
		for i, h := range hubs {
			k := h.PublicKey
			seen[k] = true
			received := rx[k] > lastRx[k]
			lastRx[k] = rx[k]
			if alive[i] || received {
				failures[k] = 0
				continue
			}
			failures[k]++
			if failures[k] >= probeFailuresBeforeRehandshake {
				failures[k], lastRx[k] = 0, 0 // a re-created peer counts from zero
				n.rehandshake(h)
			}
		}
		for k := range failures {
			if !seen[k] {
				delete(failures, k)
				delete(lastRx, k)
			}
		}
	}
}

// rxBytes reads how many bytes each peer has delivered so far.
func (n *Node) rxBytes() map[PublicKey]uint64 {
	out := map[PublicKey]uint64{}
	st, err := n.Status()
	if err != nil {
		return out
	}
	for _, p := range st {
		out[p.PublicKey] = p.RxBytes
	}
	return out
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
	c, err := n.ipstack.dial(ctx, "tcp", netip.AddrPortFrom(hub, probePort))
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
