//go:build unix

package workers

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenReusePort opens a TCP listening socket on addr with SO_REUSEPORT,
// so that several of them can share the address.
func listenReusePort(addr string) (*net.TCPListener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

// socketSet is one listener address's sockets, one per worker.
type socketSet struct {
	listener Listener
	files    []*os.File // files[i] is worker i's socket
	addr     net.Addr
}

// openSockets opens n sockets on l.Addr. The first binds the address as
// given; the others bind the address it got, so that ":0" (tests) gives
// every worker the same port.
func openSockets(l Listener, n int) (*socketSet, error) {
	s := &socketSet{listener: l}
	bind := l.Addr
	for range n {
		ln, err := listenReusePort(bind)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("listen %s: %w", l.Addr, err)
		}
		f, err := ln.File() // a duplicate: the listener itself is no longer needed
		_ = ln.Close()
		if err != nil {
			s.close()
			return nil, fmt.Errorf("listen %s: %w", l.Addr, err)
		}
		if s.addr == nil {
			s.addr = ln.Addr()
			bind = s.addr.String()
		}
		s.files = append(s.files, f)
	}
	return s, nil
}

func (s *socketSet) close() {
	for _, f := range s.files {
		_ = f.Close()
	}
}
