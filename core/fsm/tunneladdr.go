package fsm

import (
	"net/netip"

	"potluck/meshnet"
)

// HostAddrStart is the first tunnel address handed to hosts, in
// meshnet.DefaultPrefix; core nodes use the addresses below it (100.64.0.N).
func HostAddrStart() netip.Addr { return netip.AddrFrom4([4]byte{100, 64, 1, 1}) }

// assignTunnelAddr gives a registering host its tunnel address: the next
// free one from the replicated allocator, or want if the command names one.
// Deterministic: the allocator is part of the state every replica holds.
func (s *State) assignTunnelAddr(want netip.Addr) (netip.Addr, error) {
	if s.Addresses == nil {
		a, err := meshnet.NewAllocatorFrom(meshnet.DefaultPrefix, HostAddrStart())
		if err != nil {
			return netip.Addr{}, err
		}
		for u := range s.UsedTunnelAddrs() {
			_ = a.Reserve(u) // fails only for an address outside the prefix, which cannot be handed out anyway
		}
		s.Addresses = a
		if s.w != nil {
			s.w.addresses = true
		}
	}
	s.addressesForWrite()
	if want.IsValid() {
		if s.tunnelAddrUsed(want) {
			return netip.Addr{}, errf(CodeConflict, "tunnel address %s is not free", want)
		}
		if err := s.Addresses.Reserve(want); err != nil {
			return netip.Addr{}, errf(CodeConflict, "tunnel address %s: %v", want, err)
		}
		return want, nil
	}
	// Core nodes' fixed addresses are not in the allocator; skip them.
	for range len(s.CoreNodes) + len(s.Hosts) + 1 {
		a, err := s.Addresses.Allocate()
		if err != nil {
			return netip.Addr{}, errf(CodeConflict, "no free tunnel address left")
		}
		if !s.tunnelAddrUsed(a) {
			return a, nil
		}
	}
	return netip.Addr{}, errf(CodeConflict, "no free tunnel address left")
}

// tunnelAddrUsed reports whether a live host or a core node holds addr: one
// walk without building the set of every address (a registration asks once
// or twice, and the allocator already skips the hosts' addresses).
func (s *State) tunnelAddrUsed(addr netip.Addr) bool {
	for _, c := range s.CoreNodes {
		if c.TunnelAddr == addr {
			return true
		}
	}
	for _, h := range s.Hosts {
		if h.Status != HostDecommissioned && h.TunnelAddr == addr {
			return true
		}
	}
	return false
}

// releaseTunnelAddr frees a decommissioned host's address in the allocator.
func (s *State) releaseTunnelAddr(addr netip.Addr) {
	if s.addressesForWrite() != nil {
		_ = s.Addresses.Release(addr) // unknown to an old allocator: nothing to free
	}
}
