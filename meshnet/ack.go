package meshnet

import (
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// gVisor's TCP acknowledges every segment it receives at once, where Linux
// delays an acknowledgement of less than two full segments for up to 40 ms,
// hoping to send it with data. Over the tunnel every packet is encrypted,
// sent, received and decrypted through about eight goroutine hand-offs on each
// side, so a small request and its response cost four packets instead of two:
// the request, an ACK alone, the response, and another ACK alone.
//
// The link can therefore delay pure ACKs as Linux does (pathDelayedACK;
// nodes do not, see ipstack.go), for at most
// ackDelay: an ACK that carries no data, no SYN, FIN or RST and no SACK
// blocks, and that acknowledges more than before but less than two full
// segments, is held. A later packet of the same connection that acknowledges
// as much (the response) replaces it, as does a later pure ACK (which keeps
// the first one's deadline); otherwise it leaves when ackDelay ends. A
// connection whose data came more than ackReplyWindow after such an ACK left
// (a Front: its next request comes when its client sends one, not in reply
// to the response it acknowledged) sends its ACKs at once for quickAckTime,
// since holding them would only delay its peer; one whose reply was merely
// late (a slow container behind a Back) keeps holding.
// Duplicate ACKs, window updates, SACKs and the ACKs of bulk data (a
// coalesced segment is many full segments) go at once, so loss recovery and
// throughput are untouched. gVisor's tail-loss probe waits 2 × SRTT plus
// 200 ms for a lone outstanding segment, so a held ACK never provokes one.
const (
	ackDelay = time.Millisecond
	// ackReplyWindow: data later than this after a held ACK left alone
	// is not a reply.
	ackReplyWindow = 5 * time.Millisecond
	// quickAckTime is how long a connection that does not reply sends its
	// ACKs at once before trying to hold one again.
	quickAckTime = time.Second
	// maxAckFlows bounds the connections whose last ACK the link
	// remembers; beyond it the table starts over (an unknown connection's
	// next ACK simply goes at once).
	maxAckFlows = 1 << 14
)

// flowKey names one direction of a TCP connection as the stack sends it.
type flowKey struct {
	src, dst     netip.Addr
	sport, dport uint16
}

type heldAck struct {
	pkt      *stack.PacketBuffer
	ack      uint32
	deadline time.Time
}

// tcpInfo is what the link reads from an outbound TCP packet.
type tcpInfo struct {
	flow    flowKey
	ack     uint32
	flags   header.TCPFlags
	pureAck bool // no data, only the ACK flag, no SACK blocks
	hasData bool
}

// parseTCP reads pkt's TCP header; ok is false for anything else.
func parseTCP(pkt *stack.PacketBuffer) (tcpInfo, bool) {
	nh, th := pkt.NetworkHeader().Slice(), pkt.TransportHeader().Slice()
	if len(th) < header.TCPMinimumSize {
		return tcpInfo{}, false
	}
	var src, dst netip.Addr
	switch {
	case len(nh) >= header.IPv4MinimumSize && nh[0]>>4 == 4:
		ip := header.IPv4(nh)
		if ip.TransportProtocol() != header.TCPProtocolNumber {
			return tcpInfo{}, false
		}
		src, dst = netip.AddrFrom4(ip.SourceAddress().As4()), netip.AddrFrom4(ip.DestinationAddress().As4())
	case len(nh) >= header.IPv6MinimumSize && nh[0]>>4 == 6:
		ip := header.IPv6(nh)
		if ip.TransportProtocol() != header.TCPProtocolNumber {
			return tcpInfo{}, false
		}
		src, dst = netip.AddrFrom16(ip.SourceAddress().As16()), netip.AddrFrom16(ip.DestinationAddress().As16())
	default:
		return tcpInfo{}, false
	}
	t := header.TCP(th)
	info := tcpInfo{
		flow:  flowKey{src: src, dst: dst, sport: t.SourcePort(), dport: t.DestinationPort()},
		ack:   t.AckNumber(),
		flags: t.Flags(),
	}
	info.hasData = pkt.Data().Size() > 0
	if info.flags == header.TCPFlagAck && !info.hasData {
		off := int(t.DataOffset())
		info.pureAck = off <= header.TCPMinimumSize || (off <= len(th) && len(header.ParseTCPOptions(th[header.TCPMinimumSize:off]).SACKBlocks) == 0)
	}
	return info, true
}

// flowAcks is what the link remembers of a connection's ACKs.
type flowAcks struct {
	last       uint32    // the last acknowledgement number sent
	expiredAt  time.Time // when a held ACK last left alone; zero once data followed
	quickUntil time.Time // ACKs go at once until then
}

// ackState is the link's delayed-ACK bookkeeping, guarded by tunLink.mu.
type ackState struct {
	fullSegment uint32 // payload of a full-sized packet
	lastAck     map[flowKey]flowAcks
	held        map[flowKey]heldAck
	timer       *time.Timer // flushes held ACKs; armed while any is held
	armed       bool
}

// seqAfter reports whether a comes after b in sequence space.
func seqAfter(a, b uint32) bool { return int32(a-b) > 0 }

// filter decides what happens to an outbound packet: it returns the packets
// to queue now, in order (a held ACK the packet does not replace goes
// first), or none when pkt itself is held.
func (s *ackState) filter(pkt *stack.PacketBuffer, now time.Time, out []*stack.PacketBuffer) (_ []*stack.PacketBuffer, held bool) {
	info, ok := parseTCP(pkt)
	if !ok {
		return append(out, pkt), false
	}
	f := info.flow
	h, holding := s.held[f]
	if info.flags&(header.TCPFlagSyn|header.TCPFlagFin|header.TCPFlagRst) != 0 {
		if holding {
			out = append(out, h.pkt)
			delete(s.held, f)
		}
		delete(s.lastAck, f)
		return append(out, pkt), false
	}
	if info.flags&header.TCPFlagAck == 0 {
		return append(out, pkt), false
	}
	fa, known := s.lastAck[f]
	if info.pureAck && known && seqAfter(info.ack, fa.last) && info.ack-fa.last < 2*s.fullSegment && !now.Before(fa.quickUntil) {
		deadline := now.Add(ackDelay)
		if holding {
			h.pkt.DecRef() // replaced: the new one acknowledges at least as much
			deadline = h.deadline
		}
		s.held[f] = heldAck{pkt: pkt, ack: info.ack, deadline: deadline}
		return out, true
	}
	if holding {
		if seqAfter(h.ack, info.ack) {
			out = append(out, h.pkt) // acknowledges more than pkt: keep it
		} else {
			h.pkt.DecRef() // pkt carries the acknowledgement
		}
		delete(s.held, f)
	}
	if len(s.lastAck) >= maxAckFlows {
		clear(s.lastAck)
	}
	if info.hasData && !fa.expiredAt.IsZero() {
		if now.Sub(fa.expiredAt) > ackReplyWindow {
			fa.quickUntil = now.Add(quickAckTime)
		}
		fa.expiredAt = time.Time{}
	}
	fa.last = info.ack
	s.lastAck[f] = fa
	return append(out, pkt), false
}

// due takes the held ACKs whose deadline passed and returns when the next
// one is due (zero if none is held).
func (s *ackState) due(now time.Time, out []*stack.PacketBuffer) ([]*stack.PacketBuffer, time.Time) {
	var next time.Time
	for f, h := range s.held {
		if !h.deadline.After(now) {
			out = append(out, h.pkt)
			s.lastAck[f] = flowAcks{last: h.ack, expiredAt: now}
			delete(s.held, f)
			continue
		}
		if next.IsZero() || h.deadline.Before(next) {
			next = h.deadline
		}
	}
	return out, next
}

// drop releases every held ACK (the link is closing).
func (s *ackState) drop() {
	for f, h := range s.held {
		h.pkt.DecRef()
		delete(s.held, f)
	}
	if s.timer != nil {
		s.timer.Stop()
	}
}
