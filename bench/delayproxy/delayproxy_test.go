package delayproxy

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// echoServer is a real TCP echo server on 127.0.0.1.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestDelayProxy(t *testing.T) {
	upstream := echoServer(t)
	for _, tc := range []struct {
		name  string
		delay time.Duration
		size  int
	}{
		{name: "no delay", delay: 0, size: 1 << 20},
		{name: "20ms each way, small", delay: 20 * time.Millisecond, size: 100},
		{name: "5ms each way, 4 MiB in order", delay: 5 * time.Millisecond, size: 4 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Start("127.0.0.1:0", upstream, tc.delay, nil)
			require.NoError(t, err)
			defer p.Close()
			c, err := net.Dial("tcp", p.Addr())
			require.NoError(t, err)
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))

			data := make([]byte, tc.size)
			_, err = rand.Read(data)
			require.NoError(t, err)
			start := time.Now()
			go func() {
				// Many small writes: order must survive chunking.
				for off := 0; off < len(data); off += 1000 {
					c.Write(data[off:min(off+1000, len(data))])
				}
				c.(*net.TCPConn).CloseWrite()
			}()
			got, err := io.ReadAll(c)
			require.NoError(t, err)
			// Both directions delayed: at least a round trip of 2×delay.
			require.GreaterOrEqual(t, time.Since(start), 2*tc.delay)
			require.True(t, bytes.Equal(data, got), "bytes lost or reordered (%d of %d back)", len(got), len(data))
		})
	}
}

func TestNewConnectionPaysTheHandshake(t *testing.T) {
	const d = 15 * time.Millisecond
	p, err := Start("127.0.0.1:0", echoServer(t), d, nil)
	require.NoError(t, err)
	defer p.Close()
	start := time.Now()
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("x"))
	require.NoError(t, err)
	_, err = io.ReadFull(c, make([]byte, 1))
	require.NoError(t, err)
	// Handshake round trip, then the request's round trip.
	require.GreaterOrEqual(t, time.Since(start), 4*d)
}

func TestEachRoundTripIsDelayed(t *testing.T) {
	p, err := Start("127.0.0.1:0", echoServer(t), 10*time.Millisecond, nil)
	require.NoError(t, err)
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	buf := make([]byte, 4)
	for i := range 5 {
		start := time.Now()
		_, err := c.Write([]byte{byte(i), 1, 2, 3})
		require.NoError(t, err)
		_, err = io.ReadFull(c, buf)
		require.NoError(t, err)
		require.Equal(t, []byte{byte(i), 1, 2, 3}, buf)
		require.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond)
	}
}

func TestCloseEndsOpenConnections(t *testing.T) {
	p, err := Start("127.0.0.1:0", echoServer(t), time.Millisecond, nil)
	require.NoError(t, err)
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("hi"))
	require.NoError(t, err)
	require.NoError(t, p.Close())
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) {
		require.False(t, ne.Timeout(), "the connection outlived the proxy") // EOF or reset, not a hang
	}
	_, err = Start("127.0.0.1:0", "127.0.0.1:1", -time.Second, nil)
	require.Error(t, err)
}
