package meshnet

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"time"
)

// A new peer's first handshake can be lost in two ways WireGuard itself
// recovers from only with its 5 s retry (RekeyTimeout):
//
//   - the peer did not know this node yet when the handshake arrived (nodes
//     learn of each other from their own copies of the desired state, a
//     moment apart) and dropped it; a peer that has no endpoint for this node
//     (it is NATed) cannot initiate itself;
//   - both initiated at once: each answered the other's handshake, which
//     discards its own, and neither holds a confirmed session.
//
// So for a new peer with an endpoint the node re-initiates after
// firstHandshakeRetry (jittered, then doubling) while no handshake has
// completed, firstHandshakeAttempts times, after which WireGuard's own retry
// is all that is left. Re-initiating means re-creating the peer, the only way
// to make wireguard-go forget a handshake it sent less than 5 s ago. Two nodes
// that both have each other's endpoint must not re-initiate at the same
// moment, or their handshakes cross again and each re-creation throws away a
// session the other just completed: the node with the smaller public key
// goes first, the other one firstHandshakeRetry later, and a random part of
// each delay keeps them apart.
const (
	firstHandshakeRetry    = 500 * time.Millisecond
	firstHandshakeAttempts = 3
	firstHandshakePoll     = 100 * time.Millisecond
)

// newPeer is a peer whose first handshake is awaited.
type newPeer struct {
	peer     Peer
	next     time.Time // when to re-initiate if still no handshake
	interval time.Duration
	attempts int
}

// awaitHandshake registers p, just created with an endpoint, for re-initiation.
// Callers hold n.mu.
func (n *Node) awaitHandshake(p Peer, now time.Time) {
	if !p.Endpoint.IsValid() {
		return // nothing to initiate to; the peer will initiate
	}
	first := jitter(firstHandshakeRetry)
	if bytes.Compare(n.publicKey[:], p.PublicKey[:]) > 0 {
		first += firstHandshakeRetry
	}
	n.awaiting[p.PublicKey] = &newPeer{peer: p, next: now.Add(first), interval: firstHandshakeRetry}
	select {
	case n.awaitWake <- struct{}{}:
	default:
	}
}

// jitter is d scaled by a random factor in [1, 1.25).
func jitter(d time.Duration) time.Duration {
	return d + rand.N(d/4)
}

// watchFirstHandshakes re-initiates with new peers whose first handshake has
// not completed.
func (n *Node) watchFirstHandshakes() {
	defer n.wg.Done()
	poll := time.NewTicker(firstHandshakePoll)
	defer poll.Stop()
	for {
		n.mu.Lock()
		idle := len(n.awaiting) == 0
		n.mu.Unlock()
		if idle {
			select {
			case <-n.probeCtx.Done():
				return
			case <-n.awaitWake:
			}
		}
		select {
		case <-n.probeCtx.Done():
			return
		case <-poll.C:
		}
		st, err := n.Status()
		if err != nil {
			continue // closed: probeCtx ends the loop
		}
		shaken := make(map[PublicKey]bool, len(st))
		for _, s := range st {
			shaken[s.PublicKey] = !s.LastHandshake.IsZero()
		}
		for _, p := range n.dueForRetry(shaken, time.Now()) {
			if !p.Hub {
				// The re-created peer has no keepalive to start a
				// handshake with; data does. A refusal is fine.
				n.wg.Go(func() { n.probe(n.probeCtx, p.Address) })
			}
		}
	}
}

// dueForRetry forgets peers that completed a handshake, changed or ran out of
// attempts, re-creates those whose retry is due, and returns them.
func (n *Node) dueForRetry(shaken map[PublicKey]bool, now time.Time) []Peer {
	n.mu.Lock()
	defer n.mu.Unlock()
	var due []Peer
	for k, w := range n.awaiting {
		if shaken[k] || n.peers[k] != w.peer || w.attempts >= firstHandshakeAttempts {
			delete(n.awaiting, k)
			continue
		}
		if now.Before(w.next) {
			continue
		}
		var b strings.Builder
		writeRemove(&b, k)
		writePeer(&b, w.peer, false)
		if err := n.dev.IpcSet(b.String()); err != nil {
			n.log.Warn("re-initiating a first handshake failed", "peer", w.peer.Address.String(), "err", err)
			delete(n.awaiting, k)
			continue
		}
		w.attempts++
		w.interval *= 2
		w.next = now.Add(jitter(w.interval))
		n.log.Debug("no handshake with a new peer yet; re-initiating", "peer", w.peer.Address.String(), "attempt", w.attempts)
		due = append(due, w.peer)
	}
	return due
}
