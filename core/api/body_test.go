package api

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRefusedBodyLingers: a client that sends its whole body before it
// reads the answer (the body is refused at once: 413) can send it to the
// end and then reads the refusal, because the server reads and drops what
// follows a refusal for a while before it closes; without that the client's
// write fails on a connection closed with its bytes unread.
func TestRefusedBodyLingers(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.api)
	t.Cleanup(srv.Close)
	const size = 6 << 20 // below lingerBytes; more than socket buffers take unread
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	head := fmt.Sprintf("POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", operatorToken, size)
	_, err = conn.Write(append([]byte(head), bytes.Repeat([]byte("a"), size)...))
	require.NoError(t, err, "the body is read and dropped after the refusal, not reset")
	line, err := bufio.NewReader(conn).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 413 Request Entity Too Large\r\n", line)
}
