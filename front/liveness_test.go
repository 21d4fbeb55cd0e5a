package front

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/meshnet"
)

// A Back whose mesh node dies is reported gone within a few probe rounds,
// and reported back once it answers again; a live Back never is.
func TestLivenessWatchNoticesAVanishedBack(t *testing.T) {
	frontKey, err := meshnet.GeneratePrivateKey()
	require.NoError(t, err)
	frontPort := freeUDPPort(t)
	front, err := meshnet.New(meshnet.Config{PrivateKey: frontKey, Address: netip.MustParseAddr("100.64.1.1"), ListenPort: frontPort})
	require.NoError(t, err)
	defer front.Close()

	startBack := func(key meshnet.PrivateKey, addr netip.Addr) *meshnet.Node {
		n, err := meshnet.New(meshnet.Config{PrivateKey: key, Address: addr})
		require.NoError(t, err)
		require.NoError(t, n.UpsertPeer(meshnet.Peer{PublicKey: frontKey.Public(), Address: front.Address(),
			Endpoint: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), frontPort), Hub: true}))
		require.NoError(t, front.UpsertPeer(meshnet.Peer{PublicKey: key.Public(), Address: addr}))
		return n
	}
	k1, err := meshnet.GeneratePrivateKey()
	require.NoError(t, err)
	k2, err := meshnet.GeneratePrivateKey()
	require.NoError(t, err)
	b1Addr, b2Addr := netip.MustParseAddr("100.64.1.2"), netip.MustParseAddr("100.64.1.3")
	b1 := startBack(k1, b1Addr)
	b2 := startBack(k2, b2Addr)
	defer b2.Close()

	events := make(chan string, 16)
	w := &livenessWatch{node: front, log: slog.New(slog.DiscardHandler),
		gone: func(h netip.Addr) { events <- "gone " + h.String() },
		back: func(h netip.Addr) { events <- "back " + h.String() }}
	w.setHosts([]netip.Addr{b1Addr, b2Addr})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx)

	// Both answer (the Backs initiated their sessions to the Front, a hub).
	select {
	case e := <-events:
		t.Fatalf("unexpected %q while both Backs live", e)
	case <-time.After(2 * time.Second):
	}

	require.NoError(t, b1.Close())
	killed := time.Now()
	select {
	case e := <-events:
		require.Equal(t, "gone 100.64.1.2", e)
		t.Logf("reported gone %v after its node closed", time.Since(killed).Round(10*time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("a vanished Back was never reported")
	}

	b1 = startBack(k1, b1Addr) // the same Back returns, on a new port
	defer b1.Close()
	deadline := time.After(20 * time.Second)
	for back := false; !back; {
		select {
		case e := <-events:
			if e == "gone 100.64.1.2" {
				continue // repeated while it is still silent
			}
			require.Equal(t, "back 100.64.1.2", e)
			back = true
		case <-deadline:
			t.Fatal("a returning Back was never reported back")
		}
	}
	select {
	case e := <-events:
		t.Fatalf("unexpected %q: b2 never left", e)
	case <-time.After(time.Second):
	}
}

// A Back that never answered since it is watched (its session to this
// Front not up yet, as right after a start) is not declared gone: the
// demo once lost a Back for fail_timeout that way.
func TestLivenessWatchIgnoresBacksThatNeverAnswered(t *testing.T) {
	frontKey, err := meshnet.GeneratePrivateKey()
	require.NoError(t, err)
	front, err := meshnet.New(meshnet.Config{PrivateKey: frontKey, Address: netip.MustParseAddr("100.64.1.1")})
	require.NoError(t, err)
	defer front.Close()
	ghost, err := meshnet.GeneratePrivateKey()
	require.NoError(t, err)
	// A peer with no endpoint that never sends a packet: dials to it hang.
	require.NoError(t, front.UpsertPeer(meshnet.Peer{PublicKey: ghost.Public(), Address: netip.MustParseAddr("100.64.1.9")}))

	events := make(chan string, 4)
	w := &livenessWatch{node: front, log: slog.New(slog.DiscardHandler),
		gone: func(h netip.Addr) { events <- "gone " + h.String() },
		back: func(h netip.Addr) { events <- "back " + h.String() }}
	w.setHosts([]netip.Addr{netip.MustParseAddr("100.64.1.9")})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx)
	select {
	case e := <-events:
		t.Fatalf("unexpected %q for a Back that never answered", e)
	case <-time.After(2 * time.Second):
	}
}
