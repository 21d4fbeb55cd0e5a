package h2

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// FuzzFrames feeds what a client sends after its preface and SETTINGS to
// a connection: whatever it is, the server neither panics nor hangs, and
// the connection ends when the client closes.
func FuzzFrames(f *testing.F) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for i := 0; i+1 < len(get); i += 2 {
		_ = enc.WriteField(hpack.HeaderField{Name: get[i], Value: get[i+1]})
	}
	block := bytes.Clone(hb.Bytes())
	seed := func(write func(fr *http2.Framer)) {
		var b bytes.Buffer
		write(http2.NewFramer(&b, nil))
		f.Add(b.Bytes())
	}
	seed(func(fr *http2.Framer) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true, EndHeaders: true})
	})
	seed(func(fr *http2.Framer) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:5]})
		_ = fr.WriteContinuation(1, true, block[5:])
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: block, EndHeaders: true})
		_ = fr.WriteData(3, false, []byte("body"))
		_ = fr.WriteWindowUpdate(0, 1000)
		_ = fr.WriteData(3, true, []byte("more"))
	})
	seed(func(fr *http2.Framer) {
		_ = fr.WritePing(false, [8]byte{1})
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 10})
		_ = fr.WritePriority(1, http2.PriorityParam{StreamDep: 0, Weight: 3})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true, EndHeaders: true})
		_ = fr.WriteRSTStream(1, http2.ErrCodeCancel)
		_ = fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	})
	f.Add([]byte{0, 0, 0, 9, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		s := New(Config{Logger: slog.New(slog.DiscardHandler), ReadTimeout: time.Second, SendTimeout: time.Second, BodyTimeout: time.Second})
		defer s.Close()
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			_ = s.ServeConn(server, ok)
			close(done)
		}()
		go func() { _, _ = io.Copy(io.Discard, client) }()
		var hello bytes.Buffer
		hello.WriteString(http2.ClientPreface)
		_ = http2.NewFramer(&hello, nil).WriteSettings()
		_, _ = client.Write(hello.Bytes())
		_, _ = client.Write(in)
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the connection did not end")
		}
	})
}
