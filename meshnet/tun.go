package meshnet

import (
	"os"
	"sync"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"
)

const (
	// tunBatch is how many packets one Read or Write moves between
	// WireGuard and the stack; conn.IdealBatchSize, what StdNetBind uses
	// for recvmmsg and sendmmsg.
	tunBatch = 128
	// tunQueueLen and tunQueueBytes bound what the stack may queue for
	// WireGuard. Beyond them packets are dropped, as by a full NIC ring, and
	// TCP retransmits. With offload one packet is up to gsoMaxSize bytes.
	tunQueueLen   = 1024
	tunQueueBytes = 8 << 20
	// gsoMaxSize is the largest TCP segment the stack hands to the link when
	// offload is on; the link cuts it into MTU-sized packets for WireGuard.
	// It keeps the IP total length field (16 bits) valid.
	gsoMaxSize = 1<<16 - 1
)

// tunLink is the virtual wire between WireGuard and the node's userspace
// TCP/IP stack. WireGuard sees a tun.Device: Read gives it packets to encrypt,
// Write hands it decrypted ones. gVisor sees a stack.LinkEndpoint.
//
// With offload on, it works like a NIC with TSO and GRO: the stack's TCP
// sends segments of up to 64 KiB, which Read cuts into MTU-sized packets (a
// batch WireGuard encrypts and sends with one sendmmsg), and Write coalesces
// the consecutive packets of a TCP flow in a batch back into one large segment
// before the stack sees it. The per-packet cost of gVisor's TCP is paid once
// per 64 KiB instead of once per 1.4 KiB. With offload off it is a plain
// batched wire: one packet per MTU in both directions.
type tunLink struct {
	mtu     uint32
	offload bool
	stack   *stack.Stack // closed with the link
	events  chan tun.Event

	mu         sync.Mutex // guards queue, closed and dispatcher
	queue      []*stack.PacketBuffer
	queued     int // bytes in queue
	closed     bool
	dispatcher stack.NetworkDispatcher
	ready      chan struct{} // capacity 1: a packet was queued or the link closed

	readMu  sync.Mutex // guards the reader's state below; WireGuard has one reader
	taken   []*stack.PacketBuffer
	next    int          // index in taken of the packet being cut
	sent    int          // payload bytes of taken[next] already cut into packets
	scratch []byte       // the flattened packet being cut
	cut     tcpSegmenter // cuts scratch; set when sent is 0

	gros sync.Pool // of *gro.GRO; one per concurrent Write (one per peer)

	sentPackets atomic.Uint64 // packets handed to WireGuard, for benchmarks
	bytes       atomic.Uint64 // of the packets handed to WireGuard and taken from it
}

var (
	_ tun.Device         = (*tunLink)(nil)
	_ stack.LinkEndpoint = (*linkEndpoint)(nil)
	_ stack.GSOEndpoint  = (*linkEndpoint)(nil)
)

func newTUNLink(mtu int, offload bool, s *stack.Stack) *tunLink {
	l := &tunLink{
		mtu:     uint32(mtu),
		offload: offload,
		stack:   s,
		events:  make(chan tun.Event, 1),
		ready:   make(chan struct{}, 1),
		scratch: make([]byte, gsoMaxSize),
	}
	l.events <- tun.EventUp
	l.gros.New = func() any {
		g := new(gro.GRO)
		g.Init(offload)
		return g
	}
	return l
}

// --- stack side (gVisor's stack.LinkEndpoint) ---

// writePackets queues the stack's outbound packets for WireGuard. It never
// blocks: a TCP sender must not wait for the encryption goroutine.
func (l *tunLink) writePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return 0, &tcpip.ErrClosedForSend{}
	}
	n := 0
	for _, pkt := range pkts.AsSlice() {
		if len(l.queue) >= tunQueueLen || l.queued+pkt.Size() > tunQueueBytes {
			break
		}
		n++
		l.enqueue(pkt.IncRef())
	}
	l.mu.Unlock()
	l.wake()
	if n == 0 && pkts.Len() > 0 {
		return 0, &tcpip.ErrNoBufferSpace{}
	}
	return n, nil
}

// enqueue queues a packet the link holds a reference to. Callers hold mu.
func (l *tunLink) enqueue(pkt *stack.PacketBuffer) {
	l.queue = append(l.queue, pkt)
	l.queued += pkt.Size()
}

func (l *tunLink) wake() {
	select {
	case l.ready <- struct{}{}:
	default:
	}
}

// linkEndpoint is the stack's view of a tunLink. It is a separate type
// because stack.LinkEndpoint and tun.Device both have MTU and Close methods,
// with different signatures.
type linkEndpoint tunLink

func (e *linkEndpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	return (*tunLink)(e).writePackets(pkts)
}

func (e *linkEndpoint) MTU() uint32                             { return e.mtu }
func (e *linkEndpoint) SetMTU(uint32)                           {} // fixed for the node's life
func (e *linkEndpoint) MaxHeaderLength() uint16                 { return 0 }
func (e *linkEndpoint) LinkAddress() tcpip.LinkAddress          { return "" }
func (e *linkEndpoint) SetLinkAddress(tcpip.LinkAddress)        {}
func (e *linkEndpoint) Wait()                                   {}
func (e *linkEndpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }
func (e *linkEndpoint) AddHeader(*stack.PacketBuffer)           {}
func (e *linkEndpoint) ParseHeader(*stack.PacketBuffer) bool    { return true }
func (e *linkEndpoint) SetOnCloseAction(func())                 {}
func (e *linkEndpoint) Close()                                  {} // tunLink.Close closes the stack

// Capabilities: received packets need no checksum check. Every packet Write
// delivers was authenticated by WireGuard (ChaCha20-Poly1305), which a
// corrupted packet cannot pass, so the 16-bit Internet checksum adds nothing.
// Sent packets still carry correct checksums, so any WireGuard peer accepts
// them.
func (e *linkEndpoint) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityRXChecksumOffload
}

func (e *linkEndpoint) GSOMaxSize() uint32 {
	if !e.offload {
		return 0
	}
	return gsoMaxSize
}

func (e *linkEndpoint) SupportedGSO() stack.SupportedGSO {
	if !e.offload {
		return stack.GSONotSupported
	}
	return stack.HostGSOSupported
}

func (e *linkEndpoint) Attach(d stack.NetworkDispatcher) {
	e.mu.Lock()
	e.dispatcher = d
	e.mu.Unlock()
}

func (e *linkEndpoint) IsAttached() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dispatcher != nil
}

// --- WireGuard side (tun.Device) ---

func (l *tunLink) File() *os.File           { return nil }
func (l *tunLink) Name() (string, error)    { return "meshnet", nil }
func (l *tunLink) Events() <-chan tun.Event { return l.events }
func (l *tunLink) BatchSize() int           { return tunBatch }
func (l *tunLink) MTU() (int, error)        { return int(l.mtu), nil }

// Read blocks until the stack has sent something, then fills bufs with as
// many wire packets as are queued and fit, cutting large TCP segments.
func (l *tunLink) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	l.readMu.Lock()
	defer l.readMu.Unlock()
	if l.next == len(l.taken) {
		if err := l.take(); err != nil {
			return 0, err
		}
	}
	n := 0
	for n < len(bufs) && l.next < len(l.taken) {
		pkt := l.taken[l.next]
		done, k := l.emit(pkt, bufs[n:], sizes[n:], offset)
		n += k
		if !done {
			break // bufs are full; the rest of pkt goes in the next Read
		}
		pkt.DecRef()
		l.taken[l.next] = nil
		l.next++
		l.sent = 0
	}
	l.sentPackets.Add(uint64(n))
	var b int
	for _, size := range sizes[:n] {
		b += size
	}
	l.bytes.Add(uint64(b))
	return n, nil
}

// take waits for queued packets and moves them to the reader.
func (l *tunLink) take() error {
	for {
		l.mu.Lock()
		if len(l.queue) > 0 {
			// Swap the slices: the writers append to the reader's old,
			// emptied one.
			l.taken, l.queue = l.queue, l.taken[:0]
			l.queued = 0
			l.next, l.sent = 0, 0
			l.mu.Unlock()
			return nil
		}
		closed := l.closed
		l.mu.Unlock()
		if closed {
			return os.ErrClosed
		}
		<-l.ready
	}
}

// emit writes pkt (or what is left of it) into bufs as wire packets. It
// reports whether pkt is finished and how many bufs it used.
func (l *tunLink) emit(pkt *stack.PacketBuffer, bufs [][]byte, sizes []int, offset int) (bool, int) {
	gso := pkt.GSOOptions
	if gso.Type != stack.GSOTCPv4 && gso.Type != stack.GSOTCPv6 {
		sizes[0] = 0 // WireGuard skips it: never a truncated packet
		if pkt.Size() <= len(bufs[0])-offset {
			sizes[0] = flatten(pkt, bufs[0][offset:])
		}
		return true, 1
	}
	if l.sent == 0 {
		// A segment cut across Reads is flattened by the first only.
		if pkt.Size() > len(l.scratch) {
			sizes[0] = 0 // the stack keeps segments within GSOMaxSize; never happens
			return true, 1
		}
		size := flatten(pkt, l.scratch)
		l.cut = newTCPSegmenter(l.scratch[:size], len(pkt.NetworkHeader().Slice()), len(pkt.TransportHeader().Slice()), int(gso.MSS), gso.Type == stack.GSOTCPv6)
	}
	n := 0
	for n < len(bufs) {
		k, last := l.cut.segment(l.sent, bufs[n][offset:])
		sizes[n] = k
		n++
		if last {
			return true, n
		}
		l.sent += l.cut.mss
	}
	return false, n
}

// flatten copies pkt's headers and payload into dst and returns the size.
func flatten(pkt *stack.PacketBuffer, dst []byte) int {
	views, off := pkt.AsViewList()
	n := 0
	for v := views.Front(); v != nil; v = v.Next() {
		b := v.AsSlice()
		if off >= len(b) {
			off -= len(b)
			continue
		}
		n += copy(dst[n:], b[off:])
		off = 0
	}
	return n
}

// Write delivers decrypted packets to the stack. With offload on, the
// packets of one TCP flow in the batch are coalesced first.
func (l *tunLink) Write(bufs [][]byte, offset int) (int, error) {
	l.mu.Lock()
	d := l.dispatcher
	l.mu.Unlock()
	if d == nil {
		return 0, os.ErrClosed
	}
	g := l.gros.Get().(*gro.GRO)
	g.Dispatcher = d
	received := 0
	for _, b := range bufs {
		p := b[offset:]
		if len(p) == 0 {
			continue
		}
		received += len(p)
		var proto tcpip.NetworkProtocolNumber
		switch p[0] >> 4 {
		case 4:
			proto = header.IPv4ProtocolNumber
		case 6:
			proto = header.IPv6ProtocolNumber
		default:
			continue // WireGuard only passes IP packets; nothing else can arrive
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(p)})
		pkt.NetworkProtocolNumber = proto
		pkt.RXChecksumValidated = true
		g.Enqueue(pkt)
		pkt.DecRef()
	}
	g.Flush()
	g.Dispatcher = nil
	l.gros.Put(g)
	l.bytes.Add(uint64(received))
	return len(bufs), nil
}

// Close ends Read with os.ErrClosed, closes the stack and drops what is
// queued. WireGuard calls it from Device.Close.
func (l *tunLink) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.wake()

	l.stack.RemoveNIC(nicID) // calls Attach(nil): outside l.mu
	l.stack.Close()

	l.mu.Lock()
	queued := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, pkt := range queued {
		pkt.DecRef()
	}
	close(l.events)
	return nil
}
