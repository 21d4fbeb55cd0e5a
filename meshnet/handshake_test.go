package meshnet

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A NATed node (a Back) learns of a hub (a Front) before the hub learns of
// it: its first handshake reaches a hub that drops it as unknown, and
// WireGuard retries only after 5 s (RekeyTimeout). The hub has no endpoint for
// the NATed node, so it cannot initiate. The session must be up well before
// WireGuard's own retry: the node re-initiates while a new peer has not
// completed a handshake.
func TestLatePeerGetsASessionBeforeWireGuardsRetry(t *testing.T) {
	requireNoLeak(t)
	hub := newNode(t, "100.64.0.1", nodeOpts{})
	back := newNode(t, "100.64.0.2", nodeOpts{})
	serveName(t, back)

	start := time.Now()
	hubPeer := peerOf(hub)
	hubPeer.Hub = true
	require.NoError(t, back.UpsertPeer(hubPeer)) // handshake sent now, and dropped
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, hub.UpsertPeer(Peer{PublicKey: back.PublicKey(), Address: back.Address()})) // NATed: no endpoint

	// WireGuard alone retries at 5–5.33 s after the first attempt.
	body, err := get(httpClient(hub, 3500*time.Millisecond-time.Since(start)), "http://100.64.0.2/")
	require.NoError(t, err, "no session %v after the NATed node learned of the hub", time.Since(start).Round(time.Millisecond))
	require.Contains(t, body, "100.64.0.2 from 100.64.0.1")
	t.Logf("session after %v", time.Since(start).Round(time.Millisecond))
}
