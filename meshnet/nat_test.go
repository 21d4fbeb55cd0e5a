package meshnet

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/internal/freeport"
)

func freeUDPPort(t testing.TB) uint16 {
	p, err := freeport.UDP()
	require.NoError(t, err)
	return p
}

// A NATed node initiates to its hub. When the hub restarts (same key, same
// endpoint) it knows nothing of the node's endpoint and cannot reach it until
// the node re-handshakes. With keepalives alone that took 132 s, and
// WireGuard's own retry comes 15 s after its first unanswered packet; the
// probes must bring the path back before that. With the default 5 s interval
// (probes time out after 2.5 s) that is 7.5–12.5 s after the restart; here,
// with 1 s, 2–4 s, and the bound (12 s) stays under WireGuard's retry so that
// only the probes can pass it. (With the default interval this test passed
// even with the probes broken: the first round after a restart so early in
// the node's life counts the first contact's bytes as an answer, and
// WireGuard's retry came first, at 15.2 s.)
func TestNATedNodeRecoversAfterHubRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 10 s; run without -short")
	}
	hubKey := mustKey(t)
	hubPort := freeUDPPort(t)
	hub := newNode(t, "100.64.0.1", nodeOpts{key: hubKey, port: hubPort})
	natted := newNode(t, "100.64.1.7", nodeOpts{probe: time.Second})
	natPeer := Peer{PublicKey: natted.PublicKey(), Address: natted.Address()} // endpoint unknown
	require.NoError(t, hub.UpsertPeer(natPeer))
	require.NoError(t, natted.UpsertPeer(Peer{PublicKey: hubKey.Public(), Address: hub.Address(),
		Endpoint: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), hubPort), Hub: true}))
	serveName(t, natted)

	reach := func(n *Node) error {
		_, err := get(httpClient(n, time.Second), "http://100.64.1.7/")
		return err
	}
	// First contact is normally under a second. It took over 10 s once in
	// CI (make test under -race beside lb's tests, 2026-12-03; cause not
	// found; not seen in 14 runs under -race beside busy loops since): the
	// bound is generous, and the time is logged.
	start := time.Now()
	require.Eventually(t, func() bool { return reach(hub) == nil }, 25*time.Second, 100*time.Millisecond)
	t.Logf("first contact after %.1f s", time.Since(start).Seconds())
	// Past the first handshake's watch (5 s, handshake.go), which would
	// repair the path by itself, and past the rounds that saw the first
	// contact's bytes.
	time.Sleep(6 * time.Second)

	require.NoError(t, hub.Close())
	restarted := time.Now()
	hub2 := newNode(t, "100.64.0.1", nodeOpts{key: hubKey, port: hubPort})
	require.NoError(t, hub2.UpsertPeer(natPeer))

	for reach(hub2) != nil {
		require.Less(t, time.Since(restarted), 12*time.Second, "the hub could not reach the NATed node 12 s after restarting: the probes did not re-handshake")
	}
	t.Logf("path back %.1f s after the hub restarted", time.Since(restarted).Seconds())
}

func TestProbeRoundAnswered(t *testing.T) {
	start := time.Now()
	tests := []struct {
		name   string
		probed bool
		heard  heard
		lastRx uint64
		want   bool
	}{
		{name: "the probe was answered", probed: true, heard: heard{rx: 100}, lastRx: 100, want: true},
		{name: "bytes arrived", heard: heard{rx: 150}, lastRx: 100, want: true},
		// WireGuard's own retry restored the session while the probe's SYN
		// waited out its backoff: re-creating the peer would drop it.
		{name: "a handshake completed during the round", heard: heard{rx: 100, handshake: start.Add(time.Second)}, lastRx: 100, want: true},
		{name: "silent, an old handshake", heard: heard{rx: 100, handshake: start.Add(-time.Minute)}, lastRx: 100, want: false},
		{name: "silent, never a handshake", heard: heard{}, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, answered(tc.probed, tc.heard, tc.lastRx, start))
		})
	}
}
