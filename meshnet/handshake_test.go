package meshnet

import (
	"fmt"
	"io"
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

// Two nodes that learn of each other at the same moment, both with
// endpoints, both dial at once: their handshakes cross, each answers the
// other's, and neither holds a confirmed session until one re-initiates.
// Repeated, since crossing is a race.
func TestSimultaneousFirstDialsBothGetThrough(t *testing.T) {
	requireNoLeak(t)
	for i := range 5 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			a := newNode(t, "100.64.0.1", nodeOpts{})
			b := newNode(t, "100.64.0.2", nodeOpts{})
			serveName(t, a)
			serveName(t, b)
			link(t, a, b)
			errs := make(chan error, 2)
			for _, n := range []*Node{a, b} {
				other := "100.64.0.2"
				if n == b {
					other = "100.64.0.1"
				}
				go func() {
					resp, err := httpClient(n, 4*time.Second).Get("http://" + other + "/")
					if err == nil {
						_, err = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					errs <- err
				}()
			}
			for range 2 {
				require.NoError(t, <-errs)
			}
		})
	}
}
