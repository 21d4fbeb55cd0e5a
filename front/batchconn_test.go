package front

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/internal/acmetest"
)

// tlsPair is a TLS connection over loopback: the server side wrapped in a
// batchConn, the client side as is.
func tlsPair(t *testing.T) (*batchConn, *tls.Conn) {
	t.Helper()
	roots, certPEM, keyPEM := acmetest.Certificate(t, "batch.test")
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan *tls.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{pair}})
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if tc.Handshake() != nil {
			close(accepted)
			return
		}
		accepted <- tc
	}()
	client, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "batch.test"})
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	require.NoError(t, client.SetDeadline(time.Now().Add(10*time.Second)))
	sc, ok := <-accepted
	require.True(t, ok, "server handshake")
	return newBatchConn(sc, &writeBuffers{}), client
}

func TestBatchConn(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes int
		size   int
	}{
		{"small writes, as frames", 1000, 37},
		{"writes past the pending bound", 40, 100 << 10},
	} {
		t.Run(tc.name+": every byte arrives in order, the last ones at Close", func(t *testing.T) {
			bc, client := tlsPair(t)
			var want bytes.Buffer
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(client)
				got <- b
			}()
			for i := range tc.writes {
				p := bytes.Repeat([]byte{byte('a' + i%26)}, tc.size)
				want.Write(p)
				n, err := bc.Write(p)
				require.NoError(t, err)
				require.Equal(t, len(p), n)
			}
			require.NoError(t, bc.Close())
			require.Equal(t, want.Bytes(), <-got)
		})
	}

	t.Run("a write error shows on a later Write", func(t *testing.T) {
		bc, client := tlsPair(t)
		require.NoError(t, client.Close())
		var err error
		require.Eventually(t, func() bool {
			_, err = bc.Write(make([]byte, 64<<10))
			return err != nil
		}, 10*time.Second, 10*time.Millisecond)
		_, again := bc.Write([]byte("x"))
		require.ErrorIs(t, again, err)
		bc.Close()
	})

	t.Run("an idle connection holds no buffer", func(t *testing.T) {
		bc, client := tlsPair(t)
		go func() { _, _ = io.Copy(io.Discard, client) }()
		_, err := bc.Write(make([]byte, 1000))
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			bc.mu.Lock()
			defer bc.mu.Unlock()
			return !bc.writing && bc.pending == nil && bc.spare == nil
		}, 10*time.Second, time.Millisecond)
		require.NoError(t, bc.Close())
	})

	t.Run("Write after Close fails", func(t *testing.T) {
		bc, _ := tlsPair(t)
		require.NoError(t, bc.Close())
		_, err := bc.Write([]byte("x"))
		require.ErrorIs(t, err, net.ErrClosed)
	})
}
