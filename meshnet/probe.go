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
// probes that merely answered late; a handshake completed during the round
// counts too (WireGuard's own retry can restore a session while a probe
// sent before it waits out its SYN backoff, and re-creating the peer then
// would throw the new session away).
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
		roundStart := time.Now()
		alive := make([]bool, len(hubs))
		var wg sync.WaitGroup
		for i, h := range hubs {
			wg.Go(func() { alive[i] = n.probe(n.probeCtx, h.Address) })
		}
		wg.Wait()
		if n.probeCtx.Err() != nil {
			return
		}
		reports := n.heardFrom()
		seen := make(map[PublicKey]bool, len(hubs))
		for i, h := range hubs {
			k := h.PublicKey
			seen[k] = true
			ok := answered(alive[i], reports[k], lastRx[k], roundStart)
			lastRx[k] = reports[k].rx
			if ok {
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

// heard is what a probe round reads of a peer besides its probe.
type heard struct {
	rx        uint64    // bytes delivered so far
	handshake time.Time // the last completed handshake
}

// answered reports whether a hub showed itself during a round that began
// at start: it answered the probe, delivered bytes since the round before
// (when it had delivered lastRx), or completed a handshake.
func answered(probed bool, h heard, lastRx uint64, start time.Time) bool {
	return probed || h.rx > lastRx || h.handshake.After(start)
}

// heardFrom reads, for each peer, what it delivered and when it last
// completed a handshake.
func (n *Node) heardFrom() map[PublicKey]heard {
	out := map[PublicKey]heard{}
	st, err := n.Status()
	if err != nil {
		return out
	}
	for _, p := range st {
		out[p.PublicKey] = heard{rx: p.RxBytes, handshake: p.LastHandshake}
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
