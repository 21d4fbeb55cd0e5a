// Package splice joins two connections: what one reads the other writes,
// both ways, until both directions end. A Back's forward relays a Front's
// tunnel connection to a container with it, and its HTTP gateway an
// upgraded (WebSocket) connection.
package splice

import (
	"io"
	"net"
	"sync"
)

// Conns copies both ways until both directions end. A direction that ends
// cleanly is passed on as a half-close where the destination can (TCP), so
// request/response protocols that close their write side still work; an
// error on either side closes both, which unblocks the other copy.
func Conns(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() { copyHalf(b, a) })
	copyHalf(a, b)
	wg.Wait()
}

type closeWriter interface{ CloseWrite() error }

func copyHalf(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if cw, ok := dst.(closeWriter); ok && err == nil {
		_ = cw.CloseWrite()
		return
	}
	_ = dst.Close()
	_ = src.Close()
}
