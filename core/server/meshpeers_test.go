package server

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/meshnet"
)

// TestMeshPeersSkipBadOnes: a host registered with a core node's key (or
// one whose record collides otherwise) made every core fail SetPeers as a
// whole ("peer listed twice"), so no new host got onto the mesh. Now the
// bad peer is skipped and reported, and the rest is configured.
func TestMeshPeersSkipBadOnes(t *testing.T) {
	own, err := meshnet.GeneratePrivateKey()
	require.NoError(t, err)
	node, err := meshnet.New(meshnet.Config{PrivateKey: own, Address: netip.MustParseAddr("100.64.0.1"), Logger: quietLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = node.Close() })
	m := &meshRuntime{s: &Server{cfg: Config{NodeID: "core1"}}, cfg: MeshConfig{TunnelAddr: netip.MustParseAddr("100.64.0.1"), DecommissionGrace: time.Minute}, node: node}

	key := func() string {
		k, err := meshnet.GeneratePrivateKey()
		require.NoError(t, err)
		return k.Public().String()
	}
	core2 := key()
	st := fsm.NewState()
	st.CoreNodes["core1"] = &fsm.CoreNode{ID: "core1", PublicKey: own.Public().String(), TunnelAddr: netip.MustParseAddr("100.64.0.1")}
	st.CoreNodes["core2"] = &fsm.CoreNode{ID: "core2", PublicKey: core2, TunnelAddr: netip.MustParseAddr("100.64.0.2"), MeshEndpoint: "127.0.0.1:51820"}
	host := func(id, key, addr string) *fsm.Host {
		return &fsm.Host{ID: id, Name: id, Role: fsm.RoleBack, PublicKey: key, TunnelAddr: netip.MustParseAddr(addr), Status: fsm.HostReady}
	}
	good := key()
	st.Hosts["h1"] = host("h1", core2, "100.64.1.1")                 // a core node's key
	st.Hosts["h2"] = host("h2", own.Public().String(), "100.64.1.2") // this node's own key
	st.Hosts["h3"] = host("h3", key(), "100.64.0.2")                 // a core node's address
	st.Hosts["h4"] = host("h4", good, "100.64.1.4")
	st.Hosts["h5"] = host("h5", "not a key", "100.64.1.5")

	peers, skipped, _ := m.desiredPeers(st, time.Now())
	require.Len(t, peers, 2)
	require.Equal(t, core2, peers[0].PublicKey.String())
	require.Equal(t, good, peers[1].PublicKey.String())
	require.Equal(t, []string{
		"host h1 (h1): public key already used by core node core2",
		"host h2 (h2): public key already used by this core node",
		"host h3 (h3): tunnel address 100.64.0.2 already used by core node core2",
	}, skipped[:3])
	require.Contains(t, skipped[3], "host h5 (h5): public key:")
	require.NoError(t, node.SetPeers(peers), "what is left configures")
}
