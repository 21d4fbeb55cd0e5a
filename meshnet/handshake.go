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
//
// Crossed handshakes can also both complete, each side on a different
// keypair, and then one side drops everything the other sends while both
// report a handshake (seen about once in ten simultaneous first dials on a
// loaded machine; WireGuard itself re-handshakes only after 15 s without an
// answer to data). So for firstSessionCheck after the first handshake the
// node also watches the peer's counters: if it sent and received nothing back
// for firstHandshakeRetry, it re-initiates the same way.
const (
	firstHandshakeRetry    = 500 * time.Millisecond
	firstHandshakeAttempts = 3
	firstHandshakePoll     = 100 * time.Millisecond
	firstSessionCheck      = 5 * time.Second
)

// newPeer is a peer whose first handshake, and first answers, are awaited.
type newPeer struct {
	peer     Peer
	next     time.Time // when to re-initiate if still no handshake
	interval time.Duration
	attempts int
	offset   time.Duration // firstHandshakeRetry for the node with the larger key

	shakenAt   time.Time // when a handshake was first seen; zero before
	rx, tx     uint64    // the peer's counters at the last poll
	unanswered time.Time // since when data went out with nothing back; zero if answered
}

// awaitHandshake registers p, just created with an endpoint, for re-initiation.
// Callers hold n.mu.
func (n *Node) awaitHandshake(p Peer, now time.Time) {
	if !p.Endpoint.IsValid() {
		return // nothing to initiate to; the peer will initiate
	}
	var offset time.Duration
	if bytes.Compare(n.publicKey[:], p.PublicKey[:]) > 0 {
		offset = firstHandshakeRetry
	}
	n.awaiting[p.PublicKey] = &newPeer{peer: p, next: now.Add(jitter(firstHandshakeRetry) + offset), interval: firstHandshakeRetry, offset: offset}
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
		live := make(map[PublicKey]PeerStatus, len(st))
		for _, s := range st {
			live[s.PublicKey] = s
		}
		for _, p := range n.dueForRetry(live, time.Now()) {
			if !p.Hub {
				// The re-created peer has no keepalive to start a
				// handshake with; data does. A refusal is fine.
				n.wg.Go(func() { n.probe(n.probeCtx, p.Address) })
			}
		}
	}
}

// dueForRetry forgets peers that answer, changed or ran out of attempts,
// re-creates those whose retry is due, and returns them.
func (n *Node) dueForRetry(live map[PublicKey]PeerStatus, now time.Time) []Peer {
	n.mu.Lock()
	defer n.mu.Unlock()
	var due []Peer
	for k, w := range n.awaiting {
		st, ok := live[k]
		if !ok || n.peers[k] != w.peer || w.attempts >= firstHandshakeAttempts {
			delete(n.awaiting, k)
			continue
		}
		if !st.LastHandshake.IsZero() {
			if !w.observe(st, now) {
				continue // the first poll with a session: counters noted
			}
			if now.Sub(w.shakenAt) > firstSessionCheck {
				delete(n.awaiting, k) // answers came: the session works
				continue
			}
			if w.unanswered.IsZero() || now.Sub(w.unanswered) < firstHandshakeRetry+w.offset {
				continue
			}
			n.log.Debug("a new peer's session does not answer; re-initiating", "peer", w.peer.Address.String())
		} else if now.Before(w.next) {
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
		w.shakenAt, w.rx, w.tx, w.unanswered = time.Time{}, 0, 0, time.Time{} // a re-created peer counts from zero
		n.log.Debug("no handshake with a new peer yet; re-initiating", "peer", w.peer.Address.String(), "attempt", w.attempts)
		due = append(due, w.peer)
	}
	return due
}

// observe notes a peer's counters once it has a session, keeping unanswered
// at when data first went out with nothing back since (zero once something
// came back). It reports false on the first poll after the handshake, which
// has nothing to compare with.
func (w *newPeer) observe(st PeerStatus, now time.Time) bool {
	if w.shakenAt.IsZero() {
		w.shakenAt, w.rx, w.tx = now, st.RxBytes, st.TxBytes
		return false
	}
	switch {
	case st.RxBytes > w.rx:
		w.unanswered = time.Time{}
	case st.TxBytes > w.tx && w.unanswered.IsZero():
		w.unanswered = now
	}
	w.rx, w.tx = st.RxBytes, st.TxBytes
	return true
}
