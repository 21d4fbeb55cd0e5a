package meshnet

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.zx2c4.com/wireguard/conn"
)

// recvCalls sends count datagrams of size bytes through from in one Send and
// counts the receive calls a StdNetBind needs to take them all. With UDP GRO
// a call returns up to two coalesced messages of up to 64 datagrams each.
func recvCalls(t *testing.T, from conn.Bind, count, size int) int {
	t.Helper()
	to := conn.NewDefaultBind()
	fns, port, err := to.Open(0)
	require.NoError(t, err)
	defer to.Close()
	_, _, err = from.Open(0)
	require.NoError(t, err)
	defer from.Close()
	ep, err := from.ParseEndpoint(fmt.Sprintf("127.0.0.1:%d", port))
	require.NoError(t, err)

	// WireGuard's buffers have room behind each packet; StdNetBind
	// coalesces into that room.
	bufs := make([][]byte, count)
	for i := range bufs {
		bufs[i] = make([]byte, size, 1<<16)
	}
	require.NoError(t, from.Send(bufs, ep))

	rb := make([][]byte, conn.IdealBatchSize)
	for i := range rb {
		rb[i] = make([]byte, 1<<16)
	}
	sizes := make([]int, len(rb))
	eps := make([]conn.Endpoint, len(rb))
	calls := 0
	for got := 0; got < count; calls++ {
		n, err := fns[0](rb, sizes, eps) // fns[0] is IPv4
		require.NoError(t, err)
		got += n
	}
	return calls
}

// Regression: wireguard-go coalesces up to 46 WireGuard packets of 1,424
// bytes (65,504 bytes) into one UDP GSO send, and Linux delivers such a send
// as 46 single datagrams, so the receiving node got batches of ~3 packets and
// could not coalesce TCP segments. udpBind keeps each send whole.
func TestUDPBindSendsStayCoalesced(t *testing.T) {
	const wirePacket = 1424 // a full 1420-byte tunnel packet, encrypted
	if calls := recvCalls(t, conn.NewDefaultBind(), 40, wirePacket); calls > 1 {
		t.Skipf("no UDP GSO/GRO here: 40 datagrams took %d receive calls", calls)
	}
	t.Logf("wireguard-go's own bind: 90 datagrams took %d receive calls", recvCalls(t, conn.NewDefaultBind(), 90, wirePacket))
	require.LessOrEqual(t, recvCalls(t, newUDPBind(), 90, wirePacket), 2, "90 datagrams in at most two calls of two coalesced messages")
}
