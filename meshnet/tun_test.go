package meshnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// testLink is a tunLink as nodes run it (offload on) with its real stack,
// closed with the test.
func testLink(t testing.TB, addr string) *tunLink {
	t.Helper()
	dev, _, err := newIPStack(netip.MustParseAddr(addr), DefaultMTU, DefaultTCPKeepalive, pathOffload)
	require.NoError(t, err)
	l := dev.(*tunLink)
	t.Cleanup(func() { l.Close() })
	return l
}

func writeToLink(t *testing.T, l *tunLink, pkts ...*stack.PacketBuffer) int {
	t.Helper()
	var list stack.PacketBufferList
	for _, p := range pkts {
		list.PushBack(p)
	}
	n, err := (*linkEndpoint)(l).WritePackets(list)
	if n == 0 {
		require.NotNil(t, err)
	}
	list.DecRef()
	return n
}

// readAll reads packets from l, batch at a time, until want have come.
func readAll(t *testing.T, l *tunLink, batch, want int) [][]byte {
	t.Helper()
	const offset = 16 // WireGuard's header room
	var out [][]byte
	for len(out) < want {
		bufs := make([][]byte, batch)
		for i := range bufs {
			bufs[i] = make([]byte, offset+2000)
		}
		sizes := make([]int, batch)
		n, err := l.Read(bufs, sizes, offset)
		require.NoError(t, err)
		require.Positive(t, n)
		for i := range n {
			out = append(out, bufs[i][offset:offset+sizes[i]])
		}
	}
	return out
}

// A segment larger than the reader's batch is cut across Reads, in order,
// and what was queued behind it follows.
func TestTUNLinkCutsSegmentsAcrossReads(t *testing.T) {
	l := testLink(t, "100.64.0.1")
	src, dst := netip.MustParseAddr("100.64.0.1"), netip.MustParseAddr("100.64.0.2")
	payload := make([]byte, 20*1368+7)
	rand.Read(payload)
	flags := header.TCPFlagAck | header.TCPFlagPsh
	small := []byte("after")
	require.Equal(t, 2, writeToLink(t, l, gsoPacket(t, src, dst, payload, flags, 1368), gsoPacket(t, src, dst, small, flags, 1368)))

	segs := readAll(t, l, 3, 22)
	require.Len(t, segs, 22)
	checkSegments(t, segs[:21], payload, flags, 1368)
	require.Equal(t, small, header.TCP(header.IPv4(segs[21]).Payload()).Payload())
}

// The link drops rather than blocks when WireGuard falls behind: a TCP
// sender must never wait inside the stack for the encryption goroutine.
func TestTUNLinkQueueIsBounded(t *testing.T) {
	l := testLink(t, "100.64.0.1")
	src, dst := netip.MustParseAddr("100.64.0.1"), netip.MustParseAddr("100.64.0.2")
	pkts := make([]*stack.PacketBuffer, tunQueueLen+10)
	for i := range pkts {
		pkts[i] = gsoPacket(t, src, dst, []byte("x"), header.TCPFlagAck, 1368)
	}
	require.Equal(t, tunQueueLen, writeToLink(t, l, pkts...))
	require.Zero(t, writeToLink(t, l, gsoPacket(t, src, dst, nil, header.TCPFlagAck, 1368)), "full queue")

	big := make([]byte, gsoMaxSize-100)
	l2 := testLink(t, "100.64.0.3")
	var n int
	for range tunQueueBytes/len(big) + 2 {
		n += writeToLink(t, l2, gsoPacket(t, src, dst, big, header.TCPFlagAck, 1368))
	}
	require.Equal(t, tunQueueBytes/(len(big)+52), n, "queue bounded by bytes")
}

// Close ends a Read that waits for packets, with os.ErrClosed, which is how
// WireGuard's reader goroutine learns the device is gone.
func TestTUNLinkCloseEndsRead(t *testing.T) {
	requireNoLeak(t)
	dev, _, err := newIPStack(netip.MustParseAddr("100.64.0.1"), DefaultMTU, DefaultTCPKeepalive, pathOffload)
	require.NoError(t, err)
	l := dev.(*tunLink)
	done := make(chan error, 1)
	go func() {
		_, err := l.Read([][]byte{make([]byte, 2000)}, []int{0}, 0)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let Read block
	require.NoError(t, l.Close())
	select {
	case err := <-done:
		require.ErrorIs(t, err, os.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
	require.NoError(t, l.Close(), "second Close is harmless")
	_, err = l.Write([][]byte{make([]byte, 40)}, 0)
	require.ErrorIs(t, err, os.ErrClosed)
}

// Bulk data crosses the tunnel intact both ways at once, on every data path
// over IPv6 tunnel addresses and at the largest MTU New accepts: segmentation, coalescing and the skipped
// receive checksum must not cost a byte.
func TestBulkTransferIntact(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b string
		opts nodeOpts
	}{
		{"offload", "100.64.0.1", "100.64.0.2", nodeOpts{}},
		{"offload ipv6", "fd00::1", "fd00::2", nodeOpts{}},
		{"offload mtu 9000", "100.64.0.1", "100.64.0.2", nodeOpts{mtu: 9000}},
		{"offload largest mtu", "100.64.0.1", "100.64.0.2", nodeOpts{mtu: maxMTU}},
		{"stock largest mtu", "100.64.0.1", "100.64.0.2", nodeOpts{mtu: maxMTU, path: pathStock}},
		{"offload lossy", "100.64.0.1", "100.64.0.2", nodeOpts{wan: &WANConfig{Loss: 0.01, Seed: 3}}},
		{"batched", "100.64.0.1", "100.64.0.2", nodeOpts{path: pathBatched}},
		{"stock", "100.64.0.1", "100.64.0.2", nodeOpts{path: pathStock}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newNode(t, tc.a, tc.opts), newNode(t, tc.b, tc.opts)
			link(t, a, b)
			bulk(t, a, b)
		})
	}
}

// Read on a closed link with nothing queued says so at once.
func TestTUNLinkReadAfterClose(t *testing.T) {
	l := testLink(t, "100.64.0.1")
	require.NoError(t, l.Close())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := l.Read([][]byte{make([]byte, 2000)}, []int{0}, 0)
		done <- err
	}()
	select {
	case err := <-done:
		require.ErrorIs(t, err, os.ErrClosed)
	case <-ctx.Done():
		t.Fatal("Read blocked on a closed link")
	}
}

// bulk echoes 4 MiB from a through b and checks every byte.
func bulk(t *testing.T, a, b *Node) {
	t.Helper()
	ln, err := b.Listen(7)
	require.NoError(t, err)
	go func() { // echo
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		io.Copy(c, c)
	}()

	c, err := a.DialContext(ctxTimeout(t, 10*time.Second), "tcp", netip.AddrPortFrom(b.Address(), 7).String())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(60*time.Second)))
	sent := make([]byte, 4<<20)
	rand.Read(sent)
	writeErr := make(chan error, 1)
	go func() {
		_, err := c.Write(sent)
		writeErr <- err
	}()
	got := make([]byte, len(sent))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.NoError(t, <-writeErr)
	require.True(t, bytes.Equal(sent, got), "echoed data differs")
}
