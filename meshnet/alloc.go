package meshnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// DefaultPrefix is the shared address space (RFC 6598) tunnel addresses come
// from. Netstack never installs kernel routes, so it cannot clash with a host
// whose own underlay sits behind carrier-grade NAT in the same range.
var DefaultPrefix = netip.MustParsePrefix("100.64.0.0/10")

// ErrExhausted is returned when every address of the prefix is in use.
var ErrExhausted = errors.New("meshnet: no free tunnel address left")

// Allocator hands out unique tunnel addresses from a prefix. Its result is a
// function of its state alone (no randomness, no clock), so replicas applying
// the same operations in the same order agree; the core keeps it in Raft.
//
// Allocation is next-fit: it continues after the last address handed out and
// wraps around, so a released address is not reused until the rest of the
// prefix has been, and a stale peer entry somewhere is unlikely to meet a new
// host at its old address.
type Allocator struct {
	prefix netip.Prefix
	next   netip.Addr
	used   map[netip.Addr]struct{}
}

// NewAllocator returns an allocator over prefix (IPv4 or IPv6, at least 4
// addresses).
func NewAllocator(prefix netip.Prefix) (*Allocator, error) {
	if !prefix.IsValid() {
		return nil, errors.New("meshnet: allocator: invalid prefix")
	}
	prefix = prefix.Masked()
	if prefix.Addr().BitLen()-prefix.Bits() < 2 {
		return nil, fmt.Errorf("meshnet: allocator: prefix %s is too small", prefix)
	}
	return &Allocator{prefix: prefix, next: first(prefix), used: make(map[netip.Addr]struct{})}, nil
}

// NewAllocatorFrom returns an allocator over prefix whose first allocation
// is start (e.g. hosts from 100.64.1.1, leaving 100.64.0.0/24 to fixed
// addresses); it wraps to the start of the prefix when it reaches the end.
func NewAllocatorFrom(prefix netip.Prefix, start netip.Addr) (*Allocator, error) {
	a, err := NewAllocator(prefix)
	if err != nil {
		return nil, err
	}
	if !a.usable(start) {
		return nil, fmt.Errorf("meshnet: allocator: start %s is not an assignable address of %s", start, a.prefix)
	}
	a.next = start
	return a, nil
}

// first is the lowest assignable address (the network address is skipped).
func first(p netip.Prefix) netip.Addr { return p.Addr().Next() }

// usable reports whether a is in the prefix and neither its network address
// nor (for IPv4) its broadcast address.
func (a *Allocator) usable(addr netip.Addr) bool {
	if !a.prefix.Contains(addr) || addr == a.prefix.Addr() {
		return false
	}
	if addr.Is4() && !a.prefix.Contains(addr.Next()) {
		return false // broadcast
	}
	return true
}

// Prefix is the range addresses come from.
func (a *Allocator) Prefix() netip.Prefix { return a.prefix }

// Allocate returns the next free address and marks it in use.
func (a *Allocator) Allocate() (netip.Addr, error) {
	start := a.next
	addr := start
	for {
		if _, taken := a.used[addr]; !taken {
			a.used[addr] = struct{}{}
			a.next = a.advance(addr)
			return addr, nil
		}
		addr = a.advance(addr)
		if addr == start {
			return netip.Addr{}, ErrExhausted
		}
	}
}

func (a *Allocator) advance(addr netip.Addr) netip.Addr {
	n := addr.Next()
	if !n.IsValid() || !a.usable(n) {
		return first(a.prefix)
	}
	return n
}

// Reserve marks a specific address in use, e.g. one fixed by configuration.
func (a *Allocator) Reserve(addr netip.Addr) error {
	addr = addr.Unmap()
	if !a.usable(addr) {
		return fmt.Errorf("meshnet: reserve %s: not an assignable address of %s", addr, a.prefix)
	}
	if _, taken := a.used[addr]; taken {
		return fmt.Errorf("meshnet: reserve %s: already in use", addr)
	}
	a.used[addr] = struct{}{}
	return nil
}

// Release frees an address.
func (a *Allocator) Release(addr netip.Addr) error {
	addr = addr.Unmap()
	if _, taken := a.used[addr]; !taken {
		return fmt.Errorf("meshnet: release %s: not in use", addr)
	}
	delete(a.used, addr)
	return nil
}

// InUse reports whether addr is allocated.
func (a *Allocator) InUse(addr netip.Addr) bool {
	_, taken := a.used[addr.Unmap()]
	return taken
}

// Len is the number of addresses in use.
func (a *Allocator) Len() int { return len(a.used) }

// Clone returns an independent copy.
func (a *Allocator) Clone() *Allocator {
	c := &Allocator{prefix: a.prefix, next: a.next, used: make(map[netip.Addr]struct{}, len(a.used))}
	for k := range a.used {
		c.used[k] = struct{}{}
	}
	return c
}

type allocatorJSON struct {
	Prefix netip.Prefix `json:"prefix"`
	Next   netip.Addr   `json:"next"`
	Used   []netip.Addr `json:"used"`
}

// MarshalJSON writes the state with the used addresses sorted, so equal
// states serialise to equal bytes.
func (a *Allocator) MarshalJSON() ([]byte, error) {
	used := make([]netip.Addr, 0, len(a.used))
	for k := range a.used {
		used = append(used, k)
	}
	slices.SortFunc(used, netip.Addr.Compare)
	return json.Marshal(allocatorJSON{Prefix: a.prefix, Next: a.next, Used: used})
}

// UnmarshalJSON restores a state written by MarshalJSON, checking it.
func (a *Allocator) UnmarshalJSON(b []byte) error {
	var s allocatorJSON
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("meshnet: allocator state: %w", err)
	}
	fresh, err := NewAllocator(s.Prefix)
	if err != nil {
		return err
	}
	if !fresh.usable(s.Next) {
		return fmt.Errorf("meshnet: allocator state: next %s outside %s", s.Next, fresh.prefix)
	}
	fresh.next = s.Next
	for _, u := range s.Used {
		if err := fresh.Reserve(u); err != nil {
			return fmt.Errorf("meshnet: allocator state: %w", err)
		}
	}
	*a = *fresh
	return nil
}
