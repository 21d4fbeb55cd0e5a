package meshnet

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// ackPacket is an outbound IPv4 TCP packet of the connection
// 100.64.0.1:40000 → 100.64.0.2:80 acknowledging ack.
func ackPacket(t *testing.T, ack uint32, flags header.TCPFlags, payload int, sack bool) *stack.PacketBuffer {
	t.Helper()
	var opts []byte
	if sack {
		opts = []byte{header.TCPOptionNOP, header.TCPOptionNOP, header.TCPOptionSACK, 10, 0, 0, 1, 0, 0, 0, 2, 0}
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{ReserveHeaderBytes: 100, Payload: buffer.MakeWithData(make([]byte, payload))})
	tcp := header.TCP(pkt.TransportHeader().Push(header.TCPMinimumSize + len(opts)))
	tcp.Encode(&header.TCPFields{SrcPort: 40000, DstPort: 80, SeqNum: 1, AckNum: ack, DataOffset: uint8(len(tcp)), Flags: flags, WindowSize: 1000})
	copy(tcp[header.TCPMinimumSize:], opts)
	ip := header.IPv4(pkt.NetworkHeader().Push(header.IPv4MinimumSize))
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(pkt.Size()), TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr: tcpip.AddrFrom4([4]byte{100, 64, 0, 1}), DstAddr: tcpip.AddrFrom4([4]byte{100, 64, 0, 2})})
	return pkt
}

func TestDelayedACKs(t *testing.T) {
	const full = 1380
	ack, data := header.TCPFlagAck, header.TCPFlagAck|header.TCPFlagPsh
	type step struct {
		ack     uint32
		flags   header.TCPFlags
		payload int
		sack    bool
		after   time.Duration // since the start: time passes, due ACKs leave first
		want    []uint32      // acknowledgement numbers queued by this step, in order
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"a request's ACK is replaced by the response", []step{
			{ack: 1000, flags: ack, want: []uint32{1000}}, // unknown connection: at once
			{ack: 1100, flags: ack, want: nil},            // held
			{ack: 1100, flags: data, payload: 200, want: []uint32{1100}},
		}},
		{"a held ACK leaves after the delay; a late reply keeps holding", []step{
			{ack: 1000, flags: ack, want: []uint32{1000}},
			{ack: 1100, flags: ack, want: nil},
			{after: ackDelay / 2, want: nil},
			{after: ackDelay, want: []uint32{1100}},
			{ack: 1100, flags: data, payload: 10, after: ackDelay + ackReplyWindow/2, want: []uint32{1100}},
			{ack: 1200, flags: ack, after: ackDelay + ackReplyWindow/2, want: nil},
		}},
		{"no reply: ACKs go at once for a while", []step{
			{ack: 1000, flags: ack, want: []uint32{1000}},
			{ack: 1100, flags: ack, want: nil},
			{after: ackDelay, want: []uint32{1100}},
			{ack: 1100, flags: data, payload: 10, after: ackDelay + 2*ackReplyWindow, want: []uint32{1100}}, // the next request
			{ack: 1200, flags: ack, after: ackDelay + 2*ackReplyWindow, want: []uint32{1200}},
			{ack: 1300, flags: ack, after: ackDelay + 2*ackReplyWindow + quickAckTime, want: nil}, // held again
		}},
		{"a second pure ACK replaces the first and keeps its deadline", []step{
			{ack: 1000, flags: ack, want: []uint32{1000}},
			{ack: 1100, flags: ack, want: nil},
			{ack: 1200, flags: ack, after: ackDelay / 2, want: nil},
			{after: ackDelay, want: []uint32{1200}},
		}},
		{"two full segments or more go at once", []step{
			{ack: 1000, flags: ack, want: []uint32{1000}},
			{ack: 1000 + 2*full, flags: ack, want: []uint32{1000 + 2*full}},
			{ack: 1000 + 2*full + 1, flags: ack, want: nil},
			{ack: 1000 + 4*full + 10, flags: ack, want: []uint32{1000 + 4*full + 10}}, // replaces the held one
		}},
		{"duplicate ACKs and SACKs go at once", []step{
			{ack: 1000, flags: ack, want: []uint32{1000}},
			{ack: 1000, flags: ack, want: []uint32{1000}},
			{ack: 1100, flags: ack, sack: true, want: []uint32{1100}},
		}},
		{"a FIN sends the held ACK first", []step{
			{ack: 1000, flags: ack, want: []uint32{1000}},
			{ack: 1100, flags: ack, want: nil},
			{ack: 1100, flags: ack | header.TCPFlagFin, want: []uint32{1100, 1100}},
			{ack: 1200, flags: ack, want: []uint32{1200}}, // forgotten: unknown again
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &ackState{fullSegment: full, lastAck: map[flowKey]flowAcks{}, held: map[flowKey]heldAck{}}
			defer s.drop()
			start := time.Now()
			for i, st := range tc.steps {
				now := start.Add(st.after)
				out, _ := s.due(now, nil)
				if st.flags != 0 {
					out, _ = s.filter(ackPacket(t, st.ack, st.flags, st.payload, st.sack), now, out)
				}
				var got []uint32
				for _, p := range out {
					got = append(got, header.TCP(p.TransportHeader().Slice()).AckNumber())
					p.DecRef()
				}
				require.Equal(t, st.want, got, "step %d", i)
			}
		})
	}
}

func TestDelayedACKIgnoresOtherTraffic(t *testing.T) {
	s := &ackState{fullSegment: 1380, lastAck: map[flowKey]flowAcks{}, held: map[flowKey]heldAck{}}
	pkt := gsoPacket(t, netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2"), make([]byte, 10), header.TCPFlagAck, 1000)
	pkt.GSOOptions = stack.GSO{}
	out, held := s.filter(pkt, time.Now(), nil)
	require.False(t, held)
	require.Len(t, out, 1) // IPv6 data: queued
	out[0].DecRef()
	udp := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(make([]byte, 28))})
	out, held = s.filter(udp, time.Now(), nil)
	require.False(t, held)
	require.Len(t, out, 1)
	out[0].DecRef()
}
