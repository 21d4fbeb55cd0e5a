package agent

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"

	"potluck/agentproto"
)

const identityFile = "identity.json"

// Identity is what registration gave this host; it is kept in the data
// directory so that a restart without the core still knows its place. Its
// JSON is a file format: testdata holds one written by an earlier release.
type Identity struct {
	HostID     string                `json:"host_id"`
	Name       string                `json:"name"`
	Role       string                `json:"role"`
	TunnelAddr netip.Addr            `json:"tunnel_address"`
	CorePeers  []agentproto.CorePeer `json:"core_peers"`
}

// loadIdentity reads the identity saved in dir, if it is one for name.
func loadIdentity(dir, name string) (Identity, bool) {
	var id Identity
	if err := readJSON(filepath.Join(dir, identityFile), &id); err != nil || id.Name != name {
		return Identity{}, false
	}
	return id, true
}

func saveIdentity(dir string, id Identity) error {
	return writeJSON(filepath.Join(dir, identityFile), id)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// writeJSON replaces path atomically.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
