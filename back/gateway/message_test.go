package gateway

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseRequestFraming(t *testing.T) {
	tests := []struct {
		name string
		head string
		want message
		bad  bool
	}{
		{name: "no body", head: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", want: message{resendable: true}},
		{name: "length", head: "POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n", want: message{kind: bodyLength, length: 12}},
		{name: "repeated equal length", head: "PUT / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n", want: message{kind: bodyLength, length: 3, resendable: true}},
		{name: "chunked", head: "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", want: message{kind: bodyChunked}},
		{name: "HTTP/1.0 closes", head: "GET / HTTP/1.0\r\n\r\n", want: message{close: true, resendable: true}},
		{name: "HTTP/1.0 keep-alive", head: "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", want: message{resendable: true}},
		{name: "close", head: "GET / HTTP/1.1\r\nconnection: CLOSE\r\n\r\n", want: message{close: true, resendable: true}},
		{name: "upgrade", head: "GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n", want: message{upgrade: true, resendable: true}},
		{name: "upgrade header alone is not one", head: "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", want: message{resendable: true}},
		{name: "HEAD", head: "HEAD / HTTP/1.1\r\n\r\n", want: message{head: true, resendable: true}},
		{name: "expect", head: "PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", want: message{kind: bodyLength, length: 1, expect: true, resendable: true}},
		{name: "bare LF", head: "GET / HTTP/1.1\nHost: a\n\n", want: message{resendable: true}},
		{name: "length and chunked", head: "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", bad: true},
		{name: "chunked not last", head: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", bad: true},
		{name: "lengths differ", head: "POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n", bad: true},
		{name: "length sign", head: "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", bad: true},
		{name: "space before colon", head: "GET / HTTP/1.1\r\nHost : a\r\n\r\n", bad: true},
		{name: "HTTP/2", head: "PRI * HTTP/2.0\r\n\r\n", bad: true},
		{name: "no target", head: "GET  HTTP/1.1\r\n\r\n", bad: true},
		{name: "NUL in value", head: "GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRequest([]byte(tt.head))
			if tt.bad {
				require.ErrorIs(t, err, errMalformed)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseResponseFraming(t *testing.T) {
	tests := []struct {
		name      string
		head      string
		headReq   bool
		kind      bodyKind
		length    int64
		close     bool
		closeLine string
	}{
		{name: "length", head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", kind: bodyLength, length: 5},
		{name: "zero length", head: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", kind: bodyNone},
		{name: "no reason", head: "HTTP/1.1 200\r\nContent-Length: 5\r\n\r\n", kind: bodyLength, length: 5},
		{name: "chunked", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", kind: bodyChunked},
		{name: "chunked wins over length, and closes", head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", kind: bodyChunked, close: true},
		{name: "until close", head: "HTTP/1.1 200 OK\r\n\r\n", kind: bodyUntilClose, close: true},
		{name: "HEAD", head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", headReq: true, kind: bodyNone},
		{name: "204", head: "HTTP/1.1 204 No Content\r\n\r\n", kind: bodyNone},
		{name: "304", head: "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", kind: bodyNone},
		{name: "close line", head: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", kind: bodyLength, length: 1, close: true, closeLine: "Connection: close\r\n"},
		{name: "close with others", head: "HTTP/1.1 200 OK\r\nConnection: close, X-A\r\nContent-Length: 1\r\n\r\n", kind: bodyLength, length: 1, close: true},
		{name: "HTTP/1.0", head: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", kind: bodyLength, length: 1, close: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseResponse([]byte(tt.head), tt.headReq)
			require.NoError(t, err)
			require.Equal(t, tt.kind, m.kind)
			require.Equal(t, tt.length, m.length)
			require.Equal(t, tt.close, m.close)
			line := ""
			if m.closeLine[1] > 0 {
				line = tt.head[m.closeLine[0]:m.closeLine[1]]
			}
			require.Equal(t, tt.closeLine, line)
		})
	}
	for _, bad := range []string{"HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 099 X\r\n\r\n", "ICY 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"} {
		_, err := parseResponse([]byte(bad), false)
		require.ErrorIs(t, err, errMalformed, bad)
	}
}

func TestCopyChunked(t *testing.T) {
	tests := []struct {
		name, in string
		bad      bool
	}{
		{name: "plain", in: "5\r\nhello\r\n0\r\n\r\n"},
		{name: "extensions and trailers", in: "5;a=b\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n"},
		{name: "bare LF", in: "5\nhello\n0\n\n"},
		{name: "bad size", in: "5x\r\nhello\r\n0\r\n\r\n", bad: true},
		{name: "no CRLF after data", in: "5\r\nhelloX\r\n0\r\n\r\n", bad: true},
		{name: "size overflow", in: "ffffffffffffffffff\r\n", bad: true},
		{name: "cut short", in: "5\r\nhel", bad: true},
		{name: "bad trailer", in: "0\r\nnocolon\r\n\r\n", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			bw := bufio.NewWriter(&out)
			err := copyChunked(bw, bufio.NewReader(strings.NewReader(tt.in+"NEXT")), 1024)
			if tt.bad {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.NoError(t, bw.Flush())
			require.Equal(t, tt.in, out.String(), "copied as received, and no further")
		})
	}
}

// The parsers never panic, and what they accept is consistent.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "\r\n\r\nGET / HTTP/1.0\r\n\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		head, err := readHead(bufio.NewReader(bytes.NewReader(b)), 1<<16, nil)
		if err != nil {
			return
		}
		m, err := parseRequest(head)
		if err == nil && m.kind == bodyLength && m.length <= 0 {
			t.Fatalf("length body of %d bytes", m.length)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "HTTP/1.1 204 X\r\n\r\n", "HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n"} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, b []byte, head bool) {
		m, err := parseResponse(b, head)
		if err == nil && m.closeLine[1] > len(b) {
			t.Fatalf("close line %v beyond the head", m.closeLine)
		}
	})
}

func FuzzCopyChunked(f *testing.F) {
	f.Add([]byte("5;x\r\nhello\r\n0\r\nT: 1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var out bytes.Buffer
		bw := bufio.NewWriter(&out)
		if err := copyChunked(bw, bufio.NewReader(bytes.NewReader(b)), 256); err == nil {
			bw.Flush()
			if !bytes.HasPrefix(b, out.Bytes()) {
				t.Fatal("output is not the input's prefix")
			}
		}
	})
}
