package h2

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// headerBlock is the state of the header block being read (HEADERS, then
// CONTINUATION frames): its fields go straight into the stream's request.
type headerBlock struct {
	open      bool
	id        uint32
	frames    int // CONTINUATION frames
	bytes     int // compressed
	size      int // RFC 9113's header list size
	endStream bool
	trailers  bool
	ignore    bool          // after GOAWAY: decoded for HPACK's sake only
	st        *stream       // nil: refused, trailers or ignored
	err       http2.ErrCode // the stream error to answer, 0: none
	tooLarge  bool          // answered 431
	regular   bool          // a regular field came (pseudo ones must come first)
	method    bool
	scheme    bool
	path      bool
	authority bool
	host      bool
	connect   bool
	options   bool
}

// malformed marks the request malformed: its stream is reset with
// PROTOCOL_ERROR (RFC 9113 §8.1.1).
func (h *headerBlock) malformed() { h.err = http2.ErrCodeProtocol }

// onField takes one decoded field of the block being read.
func (c *conn) onField(f hpack.HeaderField) {
	h := &c.hdr
	if h.ignore || h.err != 0 || h.tooLarge {
		return
	}
	h.size += len(f.Name) + len(f.Value) + 32
	if h.size > int(c.srv.cfg.MaxHeaderListSize) {
		h.tooLarge = true
		c.dec.SetEmitEnabled(false)
		return
	}
	if h.trailers {
		if strings.HasPrefix(f.Name, ":") {
			h.malformed() // trailers: no pseudo-header fields
		}
		return // otherwise dropped: lb's backends get no trailers
	}
	st := h.st
	if st == nil {
		return
	}
	req := &st.ctx.Request
	if strings.HasPrefix(f.Name, ":") {
		if h.regular {
			h.malformed()
			return
		}
		switch f.Name {
		case ":method":
			if h.method || !httpguts.ValidHeaderFieldName(f.Value) {
				h.malformed()
				return
			}
			h.method = true
			h.connect = f.Value == http.MethodConnect
			h.options = f.Value == http.MethodOptions
			req.Header.SetMethod(f.Value)
		case ":scheme":
			if h.scheme || f.Value == "" {
				h.malformed()
				return
			}
			h.scheme = true
		case ":path":
			if h.path || f.Value == "" || f.Value[0] != '/' && f.Value != "*" || !validValue(f.Value) {
				h.malformed()
				return
			}
			h.path = true
			req.SetRequestURI(f.Value)
		case ":authority":
			if h.authority || !httpguts.ValidHostHeader(f.Value) {
				h.malformed()
				return
			}
			h.authority = true
			req.Header.SetHost(f.Value)
		default: // :protocol (no extended CONNECT here), :status, others
			h.malformed()
		}
		return
	}
	h.regular = true
	if !validName(f.Name) || !validValue(f.Value) {
		h.malformed()
		return
	}
	switch f.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		h.malformed() // connection-specific (RFC 9113 §8.2.2)
	case "te":
		if f.Value != "trailers" {
			h.malformed()
		}
	case "content-length":
		n, err := strconv.ParseUint(f.Value, 10, 63)
		if err != nil || st.declared >= 0 && st.declared != int64(n) {
			h.malformed()
			return
		}
		st.declared = int64(n)
	case "expect":
		// Answered here (100 Continue when the handler first waits for
		// the body), as Go's server does; lb's backends never see it.
		if strings.EqualFold(f.Value, "100-continue") {
			st.expectContinue = true
		} else {
			req.Header.Add(f.Name, f.Value)
		}
	case "host":
		if !h.authority { // :authority wins (RFC 9113 §8.3.1)
			h.host = true
			req.Header.SetHost(f.Value)
		}
	default:
		// fasthttp joins cookie crumbs into one Cookie line (§8.2.3).
		req.Header.Add(f.Name, f.Value)
	}
}

// validName: a token without upper case (RFC 9113 §8.2.1).
func validName(s string) bool {
	if !httpguts.ValidHeaderFieldName(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return false
		}
	}
	return true
}

// validValue: no NUL, CR or LF, no white space at either end (§8.2.1).
func validValue(s string) bool {
	if !httpguts.ValidHeaderFieldValue(s) {
		return false
	}
	return s == "" || s[0] != ' ' && s[0] != '\t' && s[len(s)-1] != ' ' && s[len(s)-1] != '\t'
}

// endHeaders acts on a whole header block: a new request goes to a
// worker, trailers end a body, a malformed request is reset.
func (c *conn) endHeaders(h *headerBlock) error {
	switch {
	case h.ignore:
		return nil
	case h.trailers:
		if h.err != 0 {
			return http2.StreamError{StreamID: h.id, Code: h.err}
		}
		return c.onTrailers(h.id)
	case h.err == http2.ErrCodeRefusedStream:
		return http2.StreamError{StreamID: h.id, Code: h.err}
	}
	st := h.st
	if h.err == 0 && !h.tooLarge && (!h.method || !h.connect && (!h.scheme || !h.path) || h.path && st.ctx.Request.Header.RequestURI()[0] == '*' && !h.options) {
		h.malformed()
	}
	if h.err != 0 {
		st.release()
		return http2.StreamError{StreamID: h.id, Code: h.err}
	}
	switch {
	case h.tooLarge:
		st.release()
		return c.answer(h.id, fasthttp.StatusRequestHeaderFieldsTooLarge, h.endStream)
	case h.connect:
		st.release()
		return c.answer(h.id, fasthttp.StatusMethodNotAllowed, h.endStream)
	case h.endStream && st.declared > 0:
		st.release()
		return http2.StreamError{StreamID: h.id, Code: http2.ErrCodeProtocol}
	}
	req := &st.ctx.Request
	switch {
	case !h.endStream:
		req.SetBodyStream(&st.reader, int(st.declared))
	case st.declared == 0:
		req.Header.SetContentLength(0)
	}
	c.mu.Lock()
	if c.closed || c.goingAway {
		c.mu.Unlock()
		st.release()
		return nil
	}
	st.refs, st.inMap = 2, true
	st.remoteDone, st.bodyDone = h.endStream, h.endStream
	c.streams[h.id] = st
	c.active++
	c.mu.Unlock()
	c.srv.pool.run(st)
	return nil
}

// onTrailers ends a request body with its trailers (dropped).
func (c *conn) onTrailers(id uint32) error {
	c.mu.Lock()
	st := c.streams[id]
	if st == nil {
		c.mu.Unlock()
		return nil
	}
	if st.declared >= 0 && st.received != st.declared {
		c.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	st.remoteDone, st.bodyDone = true, true
	st.bodyCond.Signal()
	var rel bool
	if st.localDone {
		rel = c.drop(st)
	}
	c.mu.Unlock()
	if rel {
		st.release()
	}
	return nil
}

// answer responds to a request the handler does not see (431, 405), with
// no body; the rest of a request body is not wanted.
func (c *conn) answer(id uint32, status int, ended bool) error {
	block := statusBlock(status)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.wbuf = appendHeaders(c.wbuf, id, block, true, c.peerMaxFrame)
	if !ended {
		c.wbuf = appendRSTStream(c.wbuf, id, http2.ErrCodeNo)
	}
	c.wake.Signal()
	return nil
}

// statusBlock is a header block of only ":status": a literal without
// indexing, with indexed name 8 (RFC 7541 Appendix A).
func statusBlock(status int) []byte {
	return strconv.AppendInt([]byte{0x08, 3}, int64(status), 10)
}

// Response headers that do not go into HTTP/2 (connection-specific, or
// set here: Content-Length).
var skipResponse = map[string]bool{"content-length": true, "connection": true, "keep-alive": true,
	"proxy-connection": true, "transfer-encoding": true, "upgrade": true, "trailer": true, "te": true}

// encodeHeaders encodes the response's header block into st.hbuf.
func (st *stream) encodeHeaders(resp *fasthttp.Response, status int, head, bodyless, streamed bool, bodyLen int) {
	st.hbuf = st.hbuf[:0]
	num := st.num[:0] // not on the stack: the encoder's argument escapes
	st.field(":status", strconv.AppendInt(num, int64(status), 10))
	sawDate := false
	for k, v := range resp.Header.All() {
		st.name = appendLower(st.name[:0], k)
		name := unsafe.String(unsafe.SliceData(st.name), len(st.name))
		if skipResponse[name] {
			continue
		}
		if name == "date" {
			sawDate = true
		}
		st.field(name, v)
	}
	switch {
	case !bodyless && !streamed:
		st.field("content-length", strconv.AppendInt(num, int64(bodyLen), 10))
	case streamed:
		if cl := resp.Header.ContentLength(); cl >= 0 {
			st.field("content-length", strconv.AppendInt(num, int64(cl), 10))
		}
	case head && bodyLen > 0: // a HEAD answered here: a GET's length
		st.field("content-length", strconv.AppendInt(num, int64(bodyLen), 10))
	case head || status == 304:
		if v := resp.Header.Peek(fasthttp.HeaderContentLength); len(v) > 0 {
			st.field("content-length", v)
		}
	}
	if !sawDate {
		st.field("date", st.c.srv.date())
	}
}

// field encodes one field. The strings point into reused buffers: the
// encoder, its dynamic table size 0, keeps none of them.
func (st *stream) field(name string, value []byte) {
	_ = st.enc.WriteField(hpack.HeaderField{Name: name, Value: unsafe.String(unsafe.SliceData(value), len(value))})
}

func appendLower(dst, s []byte) []byte {
	for _, b := range s {
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		dst = append(dst, b)
	}
	return dst
}

// dateCache is the Date header's value, made once a second.
type dateCache struct {
	unix int64
	v    []byte
}

func (s *Server) date() []byte {
	now := time.Now()
	if d := s.dates.Load(); d != nil && d.unix == now.Unix() {
		return d.v
	}
	d := &dateCache{unix: now.Unix(), v: now.UTC().AppendFormat(nil, http.TimeFormat)}
	s.dates.Store(d)
	return d.v
}

// Frames written by hand: a 9-byte header (RFC 9113 §4.1) and a payload.

func appendFrameHeader(b []byte, length int, t http2.FrameType, flags http2.Flags, id uint32) []byte {
	return append(b, byte(length>>16), byte(length>>8), byte(length), byte(t), byte(flags),
		byte(id>>24)&0x7f, byte(id>>16), byte(id>>8), byte(id))
}

// appendHeaders writes block as HEADERS and as many CONTINUATION frames
// as the client's frame size needs.
func appendHeaders(b []byte, id uint32, block []byte, end bool, maxFrame int) []byte {
	var flags http2.Flags
	if end {
		flags |= http2.FlagHeadersEndStream
	}
	first := true
	for {
		n := min(len(block), maxFrame)
		f := flags
		if n == len(block) {
			f |= http2.FlagHeadersEndHeaders
		}
		t := http2.FrameHeaders
		if !first {
			t = http2.FrameContinuation
			f &^= http2.FlagHeadersEndStream
		}
		b = appendFrameHeader(b, n, t, f, id)
		b = append(b, block[:n]...)
		block = block[n:]
		if len(block) == 0 {
			return b
		}
		first = false
	}
}

func appendData(b []byte, id uint32, data []byte, end bool) []byte {
	var flags http2.Flags
	if end {
		flags = http2.FlagDataEndStream
	}
	return append(appendFrameHeader(b, len(data), http2.FrameData, flags, id), data...)
}

func appendSettings(b []byte, settings ...http2.Setting) []byte {
	b = appendFrameHeader(b, 6*len(settings), http2.FrameSettings, 0, 0)
	for _, s := range settings {
		b = append(b, byte(s.ID>>8), byte(s.ID), byte(s.Val>>24), byte(s.Val>>16), byte(s.Val>>8), byte(s.Val))
	}
	return b
}

func appendSettingsAck(b []byte) []byte {
	return appendFrameHeader(b, 0, http2.FrameSettings, http2.FlagSettingsAck, 0)
}

func appendPing(b []byte, data [8]byte) []byte {
	return append(appendFrameHeader(b, 8, http2.FramePing, http2.FlagPingAck, 0), data[:]...)
}

func appendGoAway(b []byte, last uint32, code http2.ErrCode) []byte {
	b = appendFrameHeader(b, 8, http2.FrameGoAway, 0, 0)
	return append(b, byte(last>>24)&0x7f, byte(last>>16), byte(last>>8), byte(last),
		byte(code>>24), byte(code>>16), byte(code>>8), byte(code))
}

func appendRSTStream(b []byte, id uint32, code http2.ErrCode) []byte {
	b = appendFrameHeader(b, 4, http2.FrameRSTStream, 0, id)
	return append(b, byte(code>>24), byte(code>>16), byte(code>>8), byte(code))
}

func appendWindowUpdate(b []byte, id, inc uint32) []byte {
	b = appendFrameHeader(b, 4, http2.FrameWindowUpdate, 0, id)
	return append(b, byte(inc>>24)&0x7f, byte(inc>>16), byte(inc>>8), byte(inc))
}
