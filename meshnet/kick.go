package meshnet

import (
	"bytes"
	"net/netip"
	"strings"
	"time"
)

// How long a dial may wait on a peer without a session before the node
// restarts the handshake. Of two nodes dialling each other, the one with
// the lower key restarts first, before gVisor's first SYN retransmission
// (1 s), which then carries the new handshake; the other waits past it, so
// the two restarted handshakes do not cross again (it finds the session up
// and does nothing), and restarts before the second retransmission (3 s)
// when it dials a peer that never answered.
const (
	handshakeKick      = 700 * time.Millisecond
	handshakeKickLater = 1700 * time.Millisecond
)

// kickDelay is this node's handshakeKick for the peer at addr.
func (n *Node) kickDelay(addr netip.Addr) time.Duration {
	p, ok := n.PeerByAddress(addr)
	own := n.PublicKey()
	if ok && bytes.Compare(own[:], p.PublicKey[:]) > 0 {
		return handshakeKickLater
	}
	return handshakeKick
}

// sessionMaxAge is how old a WireGuard session may be and still carry data
// (RejectAfterTime): a handshake older than this is no session.
const sessionMaxAge = 180 * time.Second

// kickHandshake restarts the handshake with the peer at addr when it has no
// session. WireGuard sends one initiation and retries only after 5 s; the
// first one is lost when the peer does not know this node yet (each learns
// the other from its own copy of the desired state, one a moment before the
// other), or when both sides initiated at once and each answered the other
// (then neither holds a confirmed key). Re-creating the peer clears that
// state, and the dial's next packet starts a fresh handshake, which the peer,
// knowing this node by now, completes. Called from a dial still waiting
// after handshakeKick; a peer with a live session is left alone.
func (n *Node) kickHandshake(addr netip.Addr) {
	p, ok := n.PeerByAddress(addr)
	if !ok || !p.Endpoint.IsValid() {
		return // unknown, or NATed: it speaks first and only it can
	}
	st, err := n.Status()
	if err != nil {
		return
	}
	for _, s := range st {
		if s.PublicKey == p.PublicKey && !s.LastHandshake.IsZero() && time.Since(s.LastHandshake) < sessionMaxAge {
			return // a session exists: the dial waits on something else
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.peers[p.PublicKey] != p {
		return // changed or removed meanwhile
	}
	if last := n.kicked[p.PublicKey]; time.Since(last) < handshakeKick {
		return // another dial just did
	}
	n.kicked[p.PublicKey] = time.Now()
	if len(n.kicked) > 2*len(n.peers) {
		for k := range n.kicked {
			if _, ok := n.peers[k]; !ok {
				delete(n.kicked, k) // a peer removed since
			}
		}
	}
	var b strings.Builder
	writeRemove(&b, p.PublicKey)
	writePeer(&b, p, false)
	if err := n.dev.IpcSet(b.String()); err != nil {
		n.log.Warn("restarting the handshake failed", "peer", p.Address.String(), "err", err)
		return
	}
	n.log.Debug("no session with peer after a dial waited; handshake restarted", "peer", p.Address.String())
}
