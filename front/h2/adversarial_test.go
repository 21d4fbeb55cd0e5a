package h2

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawClient speaks HTTP/2 frame by frame, as a misbehaving client would.
type rawClient struct {
	t    testing.TB
	nc   net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	dec  *hpack.Decoder
}

func dialRaw(t testing.TB, addr string, settings ...http2.Setting) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	c := &rawClient{t: t, nc: nc, fr: http2.NewFramer(nc, nc)}
	c.enc = hpack.NewEncoder(&c.hbuf)
	c.dec = hpack.NewDecoder(4096, nil)
	_, err = io.WriteString(nc, http2.ClientPreface)
	require.NoError(t, err)
	require.NoError(t, c.fr.WriteSettings(settings...))
	f := c.next()
	require.IsType(t, &http2.SettingsFrame{}, f)
	require.NoError(t, c.fr.WriteSettingsAck())
	return c
}

// next is the next frame from the server; nil when the connection ended.
func (c *rawClient) next() http2.Frame {
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := c.fr.ReadFrame()
	if err != nil {
		return nil
	}
	return f
}

// until reads frames until one matches; nil when the connection ended.
func (c *rawClient) until(match func(http2.Frame) bool) http2.Frame {
	for {
		f := c.next()
		if f == nil || match(f) {
			return f
		}
	}
}

// block encodes name, value pairs.
func (c *rawClient) block(fields ...string) []byte {
	c.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		_ = c.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(c.hbuf.Bytes())
}

func (c *rawClient) headers(id uint32, end bool, fields ...string) {
	require.NoError(c.t, c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block(fields...), EndStream: end, EndHeaders: true}))
}

var get = []string{":method", "GET", ":scheme", "https", ":path", "/", ":authority", "site.test"}

func withFields(extra ...string) []string { return append(append([]string(nil), get...), extra...) }

// status reads the response status of stream id (0: reset or closed).
func (c *rawClient) status(id uint32) (int, http2.ErrCode) {
	f := c.until(func(f http2.Frame) bool {
		switch f := f.(type) {
		case *http2.HeadersFrame:
			return f.StreamID == id
		case *http2.RSTStreamFrame:
			return f.StreamID == id
		case *http2.GoAwayFrame:
			return true
		}
		return false
	})
	switch f := f.(type) {
	case *http2.HeadersFrame:
		fields, err := c.dec.DecodeFull(f.HeaderBlockFragment())
		require.NoError(c.t, err)
		for _, hf := range fields {
			if hf.Name == ":status" {
				n := 0
				for _, d := range hf.Value {
					n = n*10 + int(d-'0')
				}
				return n, 0
			}
		}
	case *http2.RSTStreamFrame:
		return 0, f.ErrCode
	case *http2.GoAwayFrame:
		return -1, f.ErrCode
	}
	return 0, 0
}

// closed waits for the server to close the connection, returning the
// GOAWAY code it sent (ErrCodeNo without one).
func (c *rawClient) closed() (code http2.ErrCode, goAway bool) {
	for {
		f := c.next()
		if f == nil {
			return code, goAway
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			code, goAway = g.ErrCode, true
		}
	}
}

func ok(ctx *fasthttp.RequestCtx) {
	if ctx.Request.IsBodyStream() {
		if _, err := io.Copy(io.Discard, ctx.RequestBodyStream()); err != nil {
			ctx.Error("body: "+err.Error(), 400)
			return
		}
	}
	ctx.SetBodyString("ok")
}

// TestMalformedRequests: what RFC 9113 forbids resets the stream with
// PROTOCOL_ERROR, and the connection goes on serving.
func TestMalformedRequests(t *testing.T) {
	_, addr := testServer(t, ok, Config{})
	c := dialRaw(t, addr)
	id := uint32(1)
	for _, tc := range []struct {
		name   string
		fields []string
		data   string // sent after HEADERS, ending the stream; "" none
	}{
		{"upper-case name", withFields("X-Upper", "v"), ""},
		{"connection header", withFields("connection", "keep-alive"), ""},
		{"transfer-encoding", withFields("transfer-encoding", "chunked"), ""},
		{"upgrade", withFields("upgrade", "websocket"), ""},
		{"te other than trailers", withFields("te", "gzip"), ""},
		{"no :path", []string{":method", "GET", ":scheme", "https", ":authority", "a"}, ""},
		{"no :method", []string{":scheme", "https", ":path", "/", ":authority", "a"}, ""},
		{"empty :path", []string{":method", "GET", ":scheme", "https", ":path", "", ":authority", "a"}, ""},
		{"pseudo after regular", []string{":method", "GET", ":scheme", "https", "x", "y", ":path", "/"}, ""},
		{"unknown pseudo", withFields(":foo", "bar"), ""},
		{"response pseudo", withFields(":status", "200"), ""},
		{"duplicate :method", withFields(":method", "POST"), ""},
		{"value with new line", withFields("x", "a\nb"), ""},
		{"value with leading space", withFields("x", " a"), ""},
		{"content-length twice, different", withFields("content-length", "1", "content-length", "2"), ""},
		{"content-length longer than body", []string{":method", "POST", ":scheme", "https", ":path", "/", "content-length", "5"}, "abc"},
		{"content-length shorter than body", []string{":method", "POST", ":scheme", "https", ":path", "/", "content-length", "2"}, "abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.data == "" {
				c.headers(id, true, tc.fields...)
			} else {
				c.headers(id, false, tc.fields...)
				require.NoError(t, c.fr.WriteData(id, true, []byte(tc.data)))
			}
			status, code := c.status(id)
			require.Equal(t, 0, status)
			require.Equal(t, http2.ErrCodeProtocol, code)
			id += 2
			c.headers(id, true, get...)
			status, _ = c.status(id)
			require.Equal(t, 200, status, "the connection goes on")
			id += 2
		})
	}
	t.Run("END_STREAM on HEADERS with a content-length", func(t *testing.T) {
		c.headers(id, true, ":method", "POST", ":scheme", "https", ":path", "/", "content-length", "3")
		_, code := c.status(id)
		require.Equal(t, http2.ErrCodeProtocol, code)
		id += 2
	})
	t.Run("CONNECT", func(t *testing.T) {
		c.headers(id, true, ":method", "CONNECT", ":authority", "x:443")
		status, _ := c.status(id)
		require.Equal(t, 405, status)
		id += 2
	})
	t.Run("stream id reused", func(t *testing.T) {
		c.headers(1, true, get...)
		code, goAway := c.closed()
		require.True(t, goAway)
		require.NotEqual(t, http2.ErrCodeNo, code)
	})
}

// TestOversizedHeaders: a header list over MaxHeaderListSize gets 431;
// one whose compressed block is far larger is a connection error.
func TestOversizedHeaders(t *testing.T) {
	_, addr := testServer(t, ok, Config{MaxHeaderListSize: 1024})
	c := dialRaw(t, addr)
	c.headers(1, true, withFields("x-big", string(bytes.Repeat([]byte("a"), 2000)))...)
	status, _ := c.status(1)
	require.Equal(t, 431, status)
	c.headers(3, true, get...)
	status, _ = c.status(3)
	require.Equal(t, 200, status, "the connection goes on")

	// Many fields, each below the limit, over several CONTINUATIONs.
	blk := c.block(withFields("x-a", string(bytes.Repeat([]byte("b"), 900)))...)
	blk = append(blk, blk[len(c.block(get...)):]...) // the x-a field again
	require.NoError(t, c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: blk[:10], EndStream: true}))
	require.NoError(t, c.fr.WriteContinuation(5, true, blk[10:]))
	status, _ = c.status(5)
	require.Equal(t, 431, status)
}

// TestContinuationFlood: endless CONTINUATION frames (empty or not) end
// the connection with a GOAWAY, without the header block growing.
func TestContinuationFlood(t *testing.T) {
	for _, size := range []int{0, 1000} {
		_, addr := testServer(t, ok, Config{})
		c := dialRaw(t, addr)
		require.NoError(t, c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block(get...)}))
		payload := bytes.Repeat([]byte{0x40 | 0}, size) // not a valid field on its own: never decoded to the end
		go func() {
			for range 10000 {
				if c.fr.WriteContinuation(1, false, payload) != nil {
					return
				}
			}
		}()
		code, goAway := c.closed()
		require.True(t, goAway, "size %d", size)
		require.NotEqual(t, http2.ErrCodeNo, code)
	}
}

// TestRapidReset: a client opening and resetting streams at once
// (CVE-2023-44487) reaches the handler at most MaxStreams times and is cut
// off with ENHANCE_YOUR_CALM.
func TestRapidReset(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	_, addr := testServer(t, func(ctx *fasthttp.RequestCtx) {
		calls.Add(1)
		<-release
	}, Config{MaxStreams: 50})
	c := dialRaw(t, addr)
	go func() {
		blk := c.block(get...)
		for id := uint32(1); id < 2*20000; id += 2 {
			if c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk, EndStream: true, EndHeaders: true}) != nil ||
				c.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				return
			}
		}
	}()
	code, goAway := c.closed()
	close(release)
	require.True(t, goAway)
	require.Equal(t, http2.ErrCodeEnhanceYourCalm, code)
	require.LessOrEqual(t, calls.Load(), int32(50))
}

// TestRefusedStream: streams past MAX_CONCURRENT_STREAMS are refused.
func TestRefusedStream(t *testing.T) {
	release := make(chan struct{})
	_, addr := testServer(t, func(ctx *fasthttp.RequestCtx) { <-release }, Config{MaxStreams: 2})
	c := dialRaw(t, addr)
	c.headers(1, true, get...)
	c.headers(3, true, get...)
	c.headers(5, true, get...)
	_, code := c.status(5)
	require.Equal(t, http2.ErrCodeRefusedStream, code)
	close(release)
	answered := map[uint32]bool{}
	for len(answered) < 2 { // in either order
		f := c.until(func(f http2.Frame) bool { _, ok := f.(*http2.HeadersFrame); return ok })
		require.NotNil(t, f)
		answered[f.Header().StreamID] = true
	}
	require.Equal(t, map[uint32]bool{1: true, 3: true}, answered)
}

// TestWindowExhaustion: a client that grants no window stalls its
// response until SendTimeout, then the connection is closed and the
// worker freed; one that closes its connection frees it at once.
func TestWindowExhaustion(t *testing.T) {
	big := bytes.Repeat([]byte("z"), 1<<20)
	handler := func(ctx *fasthttp.RequestCtx) { ctx.SetBody(big) }
	t.Run("send timeout", func(t *testing.T) {
		_, addr := testServer(t, handler, Config{SendTimeout: 300 * time.Millisecond})
		c := dialRaw(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		c.headers(1, true, get...)
		status, _ := c.status(1)
		require.Equal(t, 200, status)
		start := time.Now()
		c.closed()
		require.Less(t, time.Since(start), 5*time.Second)
	})
	t.Run("window granted later", func(t *testing.T) {
		_, addr := testServer(t, handler, Config{})
		c := dialRaw(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		c.headers(1, true, get...)
		status, _ := c.status(1)
		require.Equal(t, 200, status)
		// Raised by SETTINGS (the stream's window) and WINDOW_UPDATE (the
		// connection's), the stalled response resumes and ends whole.
		require.NoError(t, c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20}))
		require.NoError(t, c.fr.WriteWindowUpdate(0, 1<<20))
		got := 0
		f := c.until(func(f http2.Frame) bool {
			d, ok := f.(*http2.DataFrame)
			if ok {
				require.LessOrEqual(t, len(d.Data()), maxFrameSize)
				got += len(d.Data())
			}
			return ok && d.StreamEnded()
		})
		require.NotNil(t, f)
		require.Equal(t, len(big), got)
	})
	t.Run("client goes away", func(t *testing.T) {
		_, addr := testServer(t, handler, Config{})
		c := dialRaw(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		c.headers(1, true, get...)
		status, _ := c.status(1)
		require.Equal(t, 200, status)
		c.nc.Close() // the goroutine check at cleanup shows the worker freed
	})
	t.Run("request body larger than the window", func(t *testing.T) {
		_, addr := testServer(t, func(ctx *fasthttp.RequestCtx) { time.Sleep(time.Hour) }, Config{})
		c := dialRaw(t, addr)
		c.headers(1, false, ":method", "POST", ":scheme", "https", ":path", "/")
		var err error
		for i := 0; i < streamWindow/maxFrameSize && err == nil; i++ {
			err = c.fr.WriteData(1, false, make([]byte, maxFrameSize))
		}
		require.NoError(t, err)
		require.NoError(t, c.fr.WriteData(1, false, []byte("x")))
		_, code := c.status(1)
		require.Equal(t, http2.ErrCodeFlowControl, code)
	})
}

// TestGarbage: what is not HTTP/2 is closed, with a GOAWAY once the
// preface was right.
func TestGarbage(t *testing.T) {
	_, addr := testServer(t, ok, Config{ReadTimeout: time.Second})
	for _, tc := range []struct {
		name   string
		input  []byte
		goAway bool
	}{
		{"HTTP/1.1", []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), false},
		{"short preface then silence", []byte("PRI * HTTP/2.0\r\n"), false},
		{"no SETTINGS first", append([]byte(http2.ClientPreface), 0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8), true},
		{"frame too large", append([]byte(http2.ClientPreface), 0, 0, 0, 4, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer nc.Close()
			_, err = nc.Write(tc.input)
			require.NoError(t, err)
			_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			out, err := io.ReadAll(nc)
			var ne net.Error
			require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server closes the connection")
			require.Equal(t, tc.goAway, bytes.Contains(out, []byte{0, 0, 8, byte(http2.FrameGoAway)}))
		})
	}
}

// TestPingAndSettings: PING is answered with its data; SETTINGS acked.
func TestPingAndSettings(t *testing.T) {
	_, addr := testServer(t, ok, Config{})
	c := dialRaw(t, addr)
	require.NoError(t, c.fr.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}))
	f := c.until(func(f http2.Frame) bool { _, ok := f.(*http2.PingFrame); return ok })
	require.True(t, f.(*http2.PingFrame).IsAck())
	require.Equal(t, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, f.(*http2.PingFrame).Data)
	require.NoError(t, c.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20}))
	f = c.until(func(f http2.Frame) bool { s, ok := f.(*http2.SettingsFrame); return ok && s.IsAck() })
	require.NotNil(t, f)
	require.NoError(t, c.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1}))
	code, goAway := c.closed()
	require.True(t, goAway)
	require.Equal(t, http2.ErrCodeProtocol, code)
}

// TestGracefulShutdown: Shutdown sends GOAWAY, lets the stream in flight
// finish, then closes; new connections are refused.
func TestGracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	s, addr := testServer(t, func(ctx *fasthttp.RequestCtx) {
		<-release
		ctx.SetBodyString("finished")
	}, Config{})
	c := dialRaw(t, addr)
	c.headers(1, true, get...)
	time.Sleep(50 * time.Millisecond) // the stream reaches the handler
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	f := c.until(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
	require.Equal(t, http2.ErrCodeNo, f.(*http2.GoAwayFrame).ErrCode)
	require.Equal(t, uint32(1), f.(*http2.GoAwayFrame).LastStreamID)
	close(release)
	status, _ := c.status(1)
	require.Equal(t, 200, status)
	f = c.until(func(f http2.Frame) bool { d, ok := f.(*http2.DataFrame); return ok && d.StreamEnded() })
	require.Equal(t, "finished", string(f.(*http2.DataFrame).Data()))
	require.Nil(t, c.next(), "closed after its last stream")
	require.NoError(t, <-done)
	nc, err := net.Dial("tcp", addr)
	if err == nil { // the listener is still open: ServeConn refuses
		defer nc.Close()
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = nc.Read(make([]byte, 1))
		require.Error(t, err)
	}
}

// TestIdleTimeout: a connection without streams is closed with GOAWAY.
func TestIdleTimeout(t *testing.T) {
	_, addr := testServer(t, ok, Config{IdleTimeout: 300 * time.Millisecond})
	c := dialRaw(t, addr)
	c.headers(1, true, get...)
	status, _ := c.status(1)
	require.Equal(t, 200, status)
	code, goAway := c.closed()
	require.True(t, goAway)
	require.Equal(t, http2.ErrCodeNo, code)
}

// TestTrailersAndUnreadBody: trailers end a body; a response sent before
// the whole request came ends with RST_STREAM(NO_ERROR), and the
// connection's window comes back for what was dropped.
func TestTrailersAndUnreadBody(t *testing.T) {
	_, addr := testServer(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/ignore" {
			ctx.SetBodyString("ignored")
			return
		}
		ok(ctx)
	}, Config{})
	c := dialRaw(t, addr)
	c.headers(1, false, ":method", "POST", ":scheme", "https", ":path", "/")
	require.NoError(t, c.fr.WriteData(1, false, []byte("abc")))
	require.NoError(t, c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block("x-trailer", "v"), EndStream: true, EndHeaders: true}))
	status, _ := c.status(1)
	require.Equal(t, 200, status)

	c.headers(3, false, ":method", "POST", ":scheme", "https", ":path", "/ignore")
	status, _ = c.status(3)
	require.Equal(t, 200, status)
	f := c.until(func(f http2.Frame) bool { r, ok := f.(*http2.RSTStreamFrame); return ok && r.StreamID == 3 })
	require.Equal(t, http2.ErrCodeNo, f.(*http2.RSTStreamFrame).ErrCode)
	// Twice the connection window, on a stream already answered: dropped,
	// and granted back, so the connection can still carry requests.
	for range 2 * connWindow / maxFrameSize {
		require.NoError(t, c.fr.WriteData(3, false, make([]byte, maxFrameSize)))
	}
	c.headers(5, true, get...)
	status, _ = c.status(5)
	require.Equal(t, 200, status)
}
