package meshnet

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAllocatorUniqueAndSkipsReserved(t *testing.T) {
	a, err := NewAllocator(DefaultPrefix)
	require.NoError(t, err)
	require.NoError(t, a.Reserve(netip.MustParseAddr("100.64.0.2")))

	seen := map[netip.Addr]bool{}
	for range 1000 {
		addr, err := a.Allocate()
		require.NoError(t, err)
		require.True(t, DefaultPrefix.Contains(addr))
		require.NotEqual(t, netip.MustParseAddr("100.64.0.2"), addr, "reserved address handed out")
		require.NotEqual(t, DefaultPrefix.Addr(), addr, "network address handed out")
		require.False(t, seen[addr], "address %s handed out twice", addr)
		seen[addr] = true
	}
	require.Equal(t, 1001, a.Len())
}

func TestAllocatorNextFitDoesNotReuseAtOnce(t *testing.T) {
	a, err := NewAllocator(DefaultPrefix)
	require.NoError(t, err)
	first, _ := a.Allocate()
	second, _ := a.Allocate()
	require.NoError(t, a.Release(first))
	third, _ := a.Allocate()
	require.NotEqual(t, first, third)
	require.Equal(t, second.Next(), third)
}

func TestAllocatorExhaustionAndWrap(t *testing.T) {
	a, err := NewAllocator(netip.MustParsePrefix("10.0.0.0/30")) // .1 and .2 assignable
	require.NoError(t, err)
	x, err := a.Allocate()
	require.NoError(t, err)
	y, err := a.Allocate()
	require.NoError(t, err)
	require.Equal(t, []string{"10.0.0.1", "10.0.0.2"}, []string{x.String(), y.String()})
	_, err = a.Allocate()
	require.ErrorIs(t, err, ErrExhausted)
	require.NoError(t, a.Release(x))
	z, err := a.Allocate()
	require.NoError(t, err)
	require.Equal(t, x, z, "wraps around to the freed address")
}

func TestAllocatorErrors(t *testing.T) {
	_, err := NewAllocator(netip.Prefix{})
	require.Error(t, err)
	_, err = NewAllocator(netip.MustParsePrefix("10.0.0.0/31"))
	require.ErrorContains(t, err, "too small")

	a, err := NewAllocator(DefaultPrefix)
	require.NoError(t, err)
	for _, bad := range []string{"10.0.0.1", "100.64.0.0", "100.127.255.255"} {
		require.Error(t, a.Reserve(netip.MustParseAddr(bad)), bad)
	}
	require.NoError(t, a.Reserve(netip.MustParseAddr("100.64.0.9")))
	require.ErrorContains(t, a.Reserve(netip.MustParseAddr("100.64.0.9")), "already in use")
	require.ErrorContains(t, a.Release(netip.MustParseAddr("100.64.0.10")), "not in use")
	require.Error(t, a.UnmarshalJSON([]byte(`{"prefix":"100.64.0.0/10","next":"1.2.3.4","used":[]}`)))
	require.Error(t, a.UnmarshalJSON([]byte(`{"prefix":"100.64.0.0/10","next":"100.64.0.1","used":["100.64.0.1","100.64.0.1"]}`)))
	require.Error(t, a.UnmarshalJSON([]byte(`not json`)))
	require.True(t, a.InUse(netip.MustParseAddr("100.64.0.9")), "failed restores leave the state alone")
}

// Replicas that apply the same operations agree, and a serialised state
// continues exactly as the original would.
func TestAllocatorDeterministicAndSerialisable(t *testing.T) {
	a, _ := NewAllocator(DefaultPrefix)
	b, _ := NewAllocator(DefaultPrefix)
	rng := rand.New(rand.NewPCG(1, 2))
	var held []netip.Addr
	for i := range 500 {
		if len(held) > 0 && rng.IntN(3) == 0 {
			j := rng.IntN(len(held))
			require.NoError(t, a.Release(held[j]))
			require.NoError(t, b.Release(held[j]))
			held = append(held[:j], held[j+1:]...)
			continue
		}
		x, err := a.Allocate()
		require.NoError(t, err)
		y, err := b.Allocate()
		require.NoError(t, err)
		require.Equal(t, x, y, "step %d", i)
		held = append(held, x)
	}
	ja, err := json.Marshal(a)
	require.NoError(t, err)
	jb, err := json.Marshal(b)
	require.NoError(t, err)
	require.Equal(t, ja, jb, "equal states serialise to equal bytes")

	var restored Allocator
	require.NoError(t, json.Unmarshal(ja, &restored))
	clone := a.Clone()
	for range 50 {
		x, _ := a.Allocate()
		y, _ := restored.Allocate()
		z, _ := clone.Allocate()
		require.Equal(t, x, y)
		require.Equal(t, x, z)
	}
}

func TestAllocatorFrom(t *testing.T) {
	a, err := NewAllocatorFrom(DefaultPrefix, netip.MustParseAddr("100.64.1.1"))
	require.NoError(t, err)
	x, err := a.Allocate()
	require.NoError(t, err)
	require.Equal(t, "100.64.1.1", x.String())
	_, err = NewAllocatorFrom(DefaultPrefix, netip.MustParseAddr("10.0.0.1"))
	require.ErrorContains(t, err, "not an assignable address")
}
