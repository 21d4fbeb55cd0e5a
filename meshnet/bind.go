package meshnet

import (
	"golang.zx2c4.com/wireguard/conn"
)

// gsoPayloadMax is the most UDP payload one send may carry when the bind
// coalesces datagrams with UDP segmentation offload (UDP_SEGMENT).
// wireguard-go coalesces up to 65,507 bytes, but Linux delivers a coalesced
// send of more than about 65,490 bytes as single datagrams on loopback
// (measured on 6.18: 45 datagrams of 1,424 bytes arrive as one, 46 as 46),
// which turns the receiver's batches of ~45 packets into batches of ~3.
const gsoPayloadMax = 64000

// udpBind is the UDP transport nodes use by default: wireguard-go's batched
// StdNetBind (recvmmsg and sendmmsg, with UDP GSO and GRO on Linux), sending
// in slices that its coalescing turns into datagrams the kernel keeps whole.
type udpBind struct {
	conn.Bind
}

func newUDPBind() conn.Bind { return udpBind{conn.NewDefaultBind()} }

// Send passes bufs on in runs of at most gsoPayloadMax bytes.
func (b udpBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	for len(bufs) > 0 {
		n, size := 0, 0
		for n < len(bufs) && (n == 0 || size+len(bufs[n]) <= gsoPayloadMax) {
			size += len(bufs[n])
			n++
		}
		if err := b.Bind.Send(bufs[:n], ep); err != nil {
			return err
		}
		bufs = bufs[n:]
	}
	return nil
}
