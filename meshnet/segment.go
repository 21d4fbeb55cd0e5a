package meshnet

import (
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// tcpSegmenter cuts one large TCP segment (what the stack sends when the
// link offers segmentation offload) into packets of at most mss payload
// bytes, as a NIC with TSO does: each packet gets a copy of the IP and TCP
// headers with its own length, sequence number and checksums, FIN and PSH
// only on the last packet and CWR only on the first.
type tcpSegmenter struct {
	pkt  []byte // IP header, TCP header, payload
	l3   int    // IP header length
	l4   int    // TCP header length, options included
	mss  int
	ipv6 bool
}

// newTCPSegmenter cuts pkt. The stack marks even segments no larger than the
// MSS (and SYNs, before an MSS is known, with mss 0) for offload, since
// their TCP checksum is left for the link to complete: those become one
// packet.
func newTCPSegmenter(pkt []byte, l3, l4, mss int, ipv6 bool) tcpSegmenter {
	if payload := len(pkt) - l3 - l4; mss <= 0 || mss > payload {
		mss = max(payload, 1)
	}
	return tcpSegmenter{pkt: pkt, l3: l3, l4: l4, mss: mss, ipv6: ipv6}
}

// segment writes the packet carrying the payload that starts at off into
// dst. It returns the packet's size and whether it is the last one.
func (s tcpSegmenter) segment(off int, dst []byte) (int, bool) {
	hdrLen := s.l3 + s.l4
	payload := s.pkt[hdrLen:]
	end := min(off+s.mss, len(payload))
	last := end == len(payload)
	n := copy(dst, s.pkt[:hdrLen])
	n += copy(dst[n:], payload[off:end])
	p := dst[:n]

	tcp := header.TCP(p[s.l3:])
	tcp.SetSequenceNumber(tcp.SequenceNumber() + uint32(off))
	flags := tcp.Flags()
	if !last {
		flags &^= header.TCPFlagFin | header.TCPFlagPsh
	}
	if off > 0 {
		flags &^= header.TCPFlagCwr
	}
	tcp.SetFlags(uint8(flags))

	tcpLen := uint16(n - s.l3)
	var xsum uint16
	if s.ipv6 {
		ip := header.IPv6(p)
		ip.SetPayloadLength(tcpLen)
		xsum = header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), tcpLen)
	} else {
		ip := header.IPv4(p)
		ip.SetTotalLength(uint16(n))
		// Consecutive IDs, as Linux gives the packets of one TSO segment.
		ip.SetID(ip.ID() + uint16(off/s.mss))
		ip.SetChecksum(0)
		ip.SetChecksum(^ip.CalculateChecksum())
		xsum = header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), tcpLen)
	}
	tcp.SetChecksum(0)
	tcp.SetChecksum(^checksum.Checksum(tcp, xsum))
	return n, last
}
