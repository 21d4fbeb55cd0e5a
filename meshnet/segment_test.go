package meshnet

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

const testSeq = 4_000_000_000 // near the wrap, so sequence arithmetic wraps

// gsoPacket builds what gVisor's TCP hands a link with segmentation offload:
// one large segment, TCP checksum left to the link.
func gsoPacket(t testing.TB, src, dst netip.Addr, payload []byte, flags header.TCPFlags, mss uint16) *stack.PacketBuffer {
	t.Helper()
	opts := []byte{header.TCPOptionNOP, header.TCPOptionNOP, header.TCPOptionTS, 10, 0, 0, 0, 1, 0, 0, 0, 2}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{ReserveHeaderBytes: 100, Payload: buffer.MakeWithData(payload)})
	tcp := header.TCP(pkt.TransportHeader().Push(header.TCPMinimumSize + len(opts)))
	tcp.Encode(&header.TCPFields{SrcPort: 40000, DstPort: 80, SeqNum: testSeq, AckNum: 7, DataOffset: uint8(len(tcp)), Flags: flags, WindowSize: 1000})
	copy(tcp[header.TCPMinimumSize:], opts)
	s, d := tcpip.AddrFromSlice(src.AsSlice()), tcpip.AddrFromSlice(dst.AsSlice())
	gso := stack.GSO{NeedsCsum: true, CsumOffset: header.TCPChecksumOffset, MSS: mss, MaxSize: gsoMaxSize}
	if src.Is4() {
		ip := header.IPv4(pkt.NetworkHeader().Push(header.IPv4MinimumSize))
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(pkt.Size()), ID: 65534, Flags: header.IPv4FlagDontFragment, TTL: 64, Protocol: uint8(header.TCPProtocolNumber), SrcAddr: s, DstAddr: d})
		ip.SetChecksum(^ip.CalculateChecksum())
		gso.Type, gso.L3HdrLen = stack.GSOTCPv4, header.IPv4MinimumSize
	} else {
		ip := header.IPv6(pkt.NetworkHeader().Push(header.IPv6MinimumSize))
		ip.Encode(&header.IPv6Fields{PayloadLength: uint16(len(tcp) + len(payload)), TransportProtocol: header.TCPProtocolNumber, HopLimit: 64, SrcAddr: s, DstAddr: d})
		gso.Type, gso.L3HdrLen = stack.GSOTCPv6, header.IPv6MinimumSize
	}
	pkt.GSOOptions = gso
	return pkt
}

// checkSegments verifies the packets a large segment was cut into, as a
// receiver would: valid checksums and lengths, contiguous sequence numbers,
// the payload intact, FIN and PSH on the last packet only, CWR on the first.
func checkSegments(t *testing.T, segs [][]byte, payload []byte, flags header.TCPFlags, mss int) {
	t.Helper()
	var got []byte
	for i, p := range segs {
		var tcp header.TCP
		var src, dst tcpip.Address
		if p[0]>>4 == 4 {
			ip := header.IPv4(p)
			require.True(t, ip.IsValid(len(p)), "segment %d: IPv4 header", i)
			require.True(t, ip.IsChecksumValid(), "segment %d: IPv4 checksum", i)
			require.Equal(t, len(p), int(ip.TotalLength()), "segment %d", i)
			require.Equal(t, uint16(65534+i), ip.ID(), "segment %d: IDs count up", i)
			tcp, src, dst = header.TCP(ip.Payload()), ip.SourceAddress(), ip.DestinationAddress()
		} else {
			ip := header.IPv6(p)
			require.True(t, ip.IsValid(len(p)), "segment %d: IPv6 header", i)
			require.Equal(t, len(p)-header.IPv6MinimumSize, int(ip.PayloadLength()), "segment %d", i)
			tcp, src, dst = header.TCP(ip.Payload()), ip.SourceAddress(), ip.DestinationAddress()
		}
		data := tcp.Payload()
		require.LessOrEqual(t, len(data), max(mss, 1), "segment %d", i)
		require.True(t, tcp.IsChecksumValid(src, dst, checksum.Checksum(data, 0), uint16(len(data))), "segment %d: TCP checksum", i)
		require.Equal(t, uint32(testSeq+len(got)), tcp.SequenceNumber(), "segment %d", i)
		want := flags
		if i < len(segs)-1 {
			want &^= header.TCPFlagFin | header.TCPFlagPsh
		}
		if i > 0 {
			want &^= header.TCPFlagCwr
		}
		require.Equal(t, want, tcp.Flags(), "segment %d", i)
		got = append(got, data...)
	}
	require.True(t, bytes.Equal(payload, got), "payload reassembles")
}

func TestTCPSegmenter(t *testing.T) {
	v4a, v4b := netip.MustParseAddr("100.64.0.1"), netip.MustParseAddr("100.64.0.2")
	v6a, v6b := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	all := header.TCPFlagAck | header.TCPFlagPsh | header.TCPFlagFin | header.TCPFlagCwr
	for _, tc := range []struct {
		name     string
		src, dst netip.Addr
		size     int
		mss      uint16
		segments int
	}{
		{"v4 pure ack", v4a, v4b, 0, 1368, 1},
		{"v4 syn before mss known", v4a, v4b, 0, 0, 1},
		{"v4 smaller than mss", v4a, v4b, 100, 1368, 1},
		{"v4 exactly mss", v4a, v4b, 1368, 1368, 1},
		{"v4 one byte over", v4a, v4b, 1369, 1368, 2},
		{"v4 many with a short tail", v4a, v4b, 47*1368 + 5, 1368, 48},
		{"v4 largest offload", v4a, v4b, gsoMaxSize - 20 - 32, 1368, 48},
		{"v6 many", v6a, v6b, 30*1348 + 1, 1348, 31},
		{"v6 exact multiple", v6a, v6b, 4 * 1348, 1348, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := make([]byte, tc.size)
			rand.NewChaCha8([32]byte{1}).Read(payload) //nolint:errcheck // never fails
			pkt := gsoPacket(t, tc.src, tc.dst, payload, all, tc.mss)
			defer pkt.DecRef()

			flat := make([]byte, gsoMaxSize)
			n := flatten(pkt, flat)
			s := newTCPSegmenter(flat[:n], len(pkt.NetworkHeader().Slice()), len(pkt.TransportHeader().Slice()), int(tc.mss), tc.src.Is6())
			var segs [][]byte
			for off := 0; ; off += s.mss {
				dst := make([]byte, 2000)
				k, last := s.segment(off, dst)
				segs = append(segs, dst[:k])
				if last {
					break
				}
				require.Less(t, len(segs), 200, "segmenter does not end")
			}
			require.Len(t, segs, tc.segments)
			checkSegments(t, segs, payload, all, int(tc.mss))
		})
	}
}
