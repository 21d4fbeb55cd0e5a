package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStreamedSnapshotIsTheEncoding: the streamed snapshot is byte for
// byte encoding/json's encoding of the state, for an empty state, one with
// maps left nil, and a fleet whose keys and values need escaping.
func TestStreamedSnapshotIsTheEncoding(t *testing.T) {
	fleet := NewState()
	fleet.Index = 42
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for h := range 50 {
		id := fmt.Sprintf("h-%03d", h)
		fleet.Hosts[id] = &Host{ID: id, Name: "host <&> " + id, Role: RoleBack, Status: HostReady, TunnelAddr: netip.AddrFrom4([4]byte{100, 64, 1, byte(h + 1)}),
			Labels: map[string]string{"zone": "a\"b"}, RegisteredAt: at}
		for n := range 20 {
			iid := fmt.Sprintf("i-%03d-%02d", h, n)
			fleet.Instances[iid] = &Instance{ID: iid, Installation: "web", HostID: id, Port: 5000 + n, State: InstanceRunning, CreatedAt: at}
		}
	}
	fleet.Instances["odd\u2028<key>"] = &Instance{ID: "odd", Installation: "web", HostID: "h-000", Port: 6000}
	fleet.Installations["web"] = &Installation{Name: "web", App: "a", FrontHosts: []string{"f"}, Env: map[string]string{"hosts": "null"}}
	nilMaps := NewState()
	nilMaps.Hosts, nilMaps.Instances = nil, nil
	for name, st := range map[string]*State{"empty": NewState(), "nil maps": nilMaps, "fleet": fleet} {
		t.Run(name, func(t *testing.T) {
			var want bytes.Buffer
			require.NoError(t, json.NewEncoder(&want).Encode(st))
			var got bytes.Buffer
			require.NoError(t, writeSnapshot(&got, st))
			require.Equal(t, want.String(), got.String())
		})
	}
}
