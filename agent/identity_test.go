package agent

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/agentproto"
	"potluck/meshnet"
)

// TestIdentityFileFromEarlierRelease loads an identity.json as the release
// before the agentproto split wrote it: a restarted agent must keep its place.
func TestIdentityFileFromEarlierRelease(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile("testdata/identity-v1.json")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, identityFile), data, 0o600))

	id, ok := loadIdentity(dir, "back1")
	require.True(t, ok)
	require.Equal(t, "h-3f9a1c2b4d5e", id.HostID)
	require.Equal(t, "back", id.Role)
	require.Equal(t, netip.MustParseAddr("100.64.1.2"), id.TunnelAddr)
	require.Len(t, id.CorePeers, 2)
	require.Equal(t, agentproto.CorePeer{ID: "core2", PublicKey: "3vY5E3oX0m3oFgS3wC3KYd0qE9n9o+Jz0m3Jr6hXyF4=",
		Endpoint: "127.0.0.1:7451", TunnelAddr: "100.64.0.2", AgentURL: "http://100.64.0.2:7400"}, id.CorePeers[1])

	_, ok = loadIdentity(dir, "another-name")
	require.False(t, ok, "an identity saved for another host name is not ours")

	// Saved again, it reads back the same (the format did not drift).
	require.NoError(t, saveIdentity(dir, id))
	again, ok := loadIdentity(dir, "back1")
	require.True(t, ok)
	require.Equal(t, id, again)
	var before, after map[string]any
	require.NoError(t, json.Unmarshal(data, &before))
	saved, err := os.ReadFile(filepath.Join(dir, identityFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(saved, &after))
	require.Equal(t, before, after)
}

// TestDesiredStateFileFromEarlierRelease decodes a desired.json written
// before the split, so a host restarted without the core serves it again.
func TestDesiredStateFileFromEarlierRelease(t *testing.T) {
	var d agentproto.DesiredState
	require.NoError(t, readJSON("testdata/desired-v1.json", &d))
	require.Equal(t, uint64(42), d.Index)
	require.Equal(t, "ready", d.Host.Status)
	require.Len(t, d.Peers, 2)
	require.Equal(t, "http://100.64.0.1:7400", d.Peers[0].CorePeer().AgentURL)
	require.Equal(t, "100.64.1.1", d.Peers[1].TunnelAddr)
	require.Len(t, d.Instances, 1)
	in := d.Instances[0]
	require.Equal(t, agentproto.InstanceRunning, in.State)
	require.Equal(t, 5000, in.Port)
	require.Equal(t, []string{"100.64.1.1"}, in.AllowedFrom)
	require.Equal(t, map[string]string{"GREETING": "hi"}, in.Env)
}

func TestLearnedEndpoints(t *testing.T) {
	k1, err := meshnet.GeneratePrivateKey()
	require.NoError(t, err)
	k2, err := meshnet.GeneratePrivateKey()
	require.NoError(t, err)
	k3, err := meshnet.GeneratePrivateKey()
	require.NoError(t, err)
	learned := netip.MustParseAddrPort("127.0.0.1:40001")
	configured := netip.MustParseAddrPort("127.0.0.1:7450")
	st := []meshnet.PeerStatus{
		{Peer: meshnet.Peer{PublicKey: k1.Public()}, CurrentEndpoint: learned},                                     // NATed Back: learned
		{Peer: meshnet.Peer{PublicKey: k2.Public(), Endpoint: configured, Hub: true}, CurrentEndpoint: configured}, // hub: configured already
		{Peer: meshnet.Peer{PublicKey: k3.Public()}},                                                               // never heard from
	}
	require.Equal(t, map[string]netip.AddrPort{k1.Public().String(): learned}, learnedEndpoints(st))

	dir := t.TempDir()
	require.Empty(t, loadEndpoints(dir), "no file: no hints")
	require.NoError(t, writeJSON(filepath.Join(dir, endpointsFile), learnedEndpoints(st)))
	require.Equal(t, learnedEndpoints(st), loadEndpoints(dir))
}
