package agent

import (
	"context"
	"maps"
	"net/netip"
	"path/filepath"
	"time"

	"potluck/meshnet"
)

// endpointsFile keeps the UDP endpoints this host learned from its peers'
// packets (NATed Backs, as a Front sees them). A hub that restarts forgets
// them, and until a NATed peer's own probe notices (10–15 s) the hub cannot
// reach it: "no known endpoint for peer". Restored at start, they let the hub
// send a handshake at once through the peer's still-open NAT mapping.
const endpointsFile = "endpoints.json"

// endpointSaveInterval is how often learned endpoints are saved when they
// changed.
const endpointSaveInterval = 5 * time.Second

// loadEndpoints reads the endpoints a previous run saved (none on error).
func loadEndpoints(dir string) map[string]netip.AddrPort {
	saved := map[string]netip.AddrPort{}
	if err := readJSON(filepath.Join(dir, endpointsFile), &saved); err != nil {
		return map[string]netip.AddrPort{}
	}
	return saved
}

// learnedEndpoints are the current endpoints of peers that were not
// configured with one, by public key.
func learnedEndpoints(st []meshnet.PeerStatus) map[string]netip.AddrPort {
	out := map[string]netip.AddrPort{}
	for _, p := range st {
		if !p.Endpoint.IsValid() && p.CurrentEndpoint.IsValid() {
			out[p.PublicKey.String()] = p.CurrentEndpoint
		}
	}
	return out
}

// saveEndpoints writes the learned endpoints every endpointSaveInterval when
// they changed, and once more when ctx ends.
func (a *Agent) saveEndpoints(ctx context.Context) {
	t := time.NewTicker(endpointSaveInterval)
	defer t.Stop()
	var last map[string]netip.AddrPort
	save := func() {
		st, err := a.node.Status()
		if err != nil {
			return
		}
		cur := learnedEndpoints(st)
		if maps.Equal(cur, last) {
			return
		}
		if err := writeJSON(filepath.Join(a.cfg.DataDir, endpointsFile), cur); err != nil {
			a.log.Warn("could not save learned peer endpoints", "err", err)
			return
		}
		last = cur
	}
	for {
		select {
		case <-ctx.Done():
			save()
			return
		case <-t.C:
			save()
		}
	}
}

// takeEndpointHints returns the endpoints saved by the last run, once: they
// seed the first peer configuration only. Later configurations leave
// endpoints to WireGuard, which follows a roaming peer; a stale hint written
// again would send packets to an address the peer has left.
func (a *Agent) takeEndpointHints() map[string]netip.AddrPort {
	a.hintsMu.Lock()
	defer a.hintsMu.Unlock()
	h := a.hints
	a.hints = nil
	return h
}
