package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// HTTP/1.1 message framing (RFC 9112), just enough to find where each
// message ends. Heads and bodies are passed on as received: the gateway
// never rewrites a header name or value, except that it drops a response's
// own "Connection: close" (see dropConnectionClose).

var (
	errHeadTooLarge = errors.New("message head too large")
	errMalformed    = errors.New("malformed message")
)

// bodyKind is how a message's body is delimited.
type bodyKind uint8

const (
	bodyNone       bodyKind = iota
	bodyLength              // Content-Length bytes
	bodyChunked             // chunked transfer coding, trailers included
	bodyUntilClose          // a response read until the server closes
)

// message is what the gateway needs to know of a head.
type message struct {
	kind    bodyKind
	length  int64
	close   bool // the sender closes after this message
	upgrade bool // request: Connection: upgrade with an Upgrade header, or CONNECT
	head    bool // request: HEAD, whose response has no body
	expect  bool // request: Expect: 100-continue, whose body waits for the answer
	// resendable: a request that may be sent again when a pooled connection
	// turns out closed; not POST, PATCH or LOCK, as lb and NGINX decide.
	resendable bool
	status     int // response

	// closeLine is the byte range of a response's "Connection: close"
	// line, when that is the whole field, else zero.
	closeLine [2]int
}

// readHead reads a message head, the start line through the empty line,
// into buf and returns it. Empty lines before a request line are skipped
// (RFC 9112 §2.2). io.EOF means the stream ended before the first byte.
func readHead(br *bufio.Reader, limit int, buf []byte) ([]byte, error) {
	buf = buf[:0]
	lineStart := 0
	for skipped := 0; ; {
		part, err := br.ReadSlice('\n')
		if len(buf)+len(part) > limit {
			return nil, errHeadTooLarge
		}
		buf = append(buf, part...)
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				continue // a long line: the limit above bounds it
			}
			if errors.Is(err, io.EOF) && len(buf) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line := buf[lineStart:]
		lineStart = len(buf)
		if !isEmptyLine(line) {
			continue
		}
		if len(buf) > len(line) {
			return buf, nil
		}
		// An empty line before the start line.
		if skipped++; skipped > 4 {
			return nil, fmt.Errorf("%w: empty lines before the start line", errMalformed)
		}
		buf, lineStart = buf[:0], 0
	}
}

func isEmptyLine(l []byte) bool {
	return len(l) == 1 && l[0] == '\n' || len(l) == 2 && l[0] == '\r' && l[1] == '\n'
}

// parseRequest reads a request head's framing.
func parseRequest(h []byte) (message, error) {
	var m message
	line, rest := cutLine(h)
	method, after, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(method) == 0 || !isToken(method) {
		return m, fmt.Errorf("%w: request line", errMalformed)
	}
	target, version, ok := bytes.Cut(after, []byte(" "))
	if !ok || len(target) == 0 || bytes.ContainsAny(target, " \t\x00\r\n\x7f") {
		return m, fmt.Errorf("%w: request target", errMalformed)
	}
	http10, err := parseVersion(version)
	if err != nil {
		return m, err
	}
	f, err := parseFields(rest)
	if err != nil {
		return m, err
	}
	m.head = string(method) == "HEAD"
	switch string(method) {
	case "POST", "PATCH", "LOCK":
	default:
		m.resendable = true
	}
	m.upgrade = f.connUpgrade && f.upgrade || string(method) == "CONNECT"
	m.expect = f.expect
	m.close = f.connClose || http10 && !f.connKeepAlive
	switch {
	case f.te && f.hasLength:
		// Possibly an attempt to smuggle a request (RFC 9112 §6.3).
		return m, fmt.Errorf("%w: both Content-Length and Transfer-Encoding", errMalformed)
	case f.te && !f.chunkedLast:
		return m, fmt.Errorf("%w: a request's last transfer coding must be chunked", errMalformed)
	case f.te:
		m.kind = bodyChunked
	case f.hasLength && f.length > 0:
		m.kind, m.length = bodyLength, f.length
	}
	return m, nil
}

// parseResponse reads a response head's framing; head tells whether it
// answers a HEAD request.
func parseResponse(h []byte, head bool) (message, error) {
	var m message
	line, rest := cutLine(h)
	version, after, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return m, fmt.Errorf("%w: status line", errMalformed)
	}
	http10, err := parseVersion(version)
	if err != nil {
		return m, err
	}
	if len(after) < 3 || len(after) > 3 && after[3] != ' ' {
		return m, fmt.Errorf("%w: status code", errMalformed)
	}
	for _, c := range after[:3] {
		if c < '0' || c > '9' {
			return m, fmt.Errorf("%w: status code", errMalformed)
		}
		m.status = m.status*10 + int(c-'0')
	}
	if m.status < 100 {
		return m, fmt.Errorf("%w: status code", errMalformed)
	}
	f, err := parseFields(rest)
	if err != nil {
		return m, err
	}
	m.close = f.connClose || http10 && !f.connKeepAlive
	if f.closeOnly {
		off := len(h) - len(rest)
		m.closeLine = [2]int{off + f.closeLine[0], off + f.closeLine[1]}
	}
	switch {
	case head || m.status < 200 || m.status == 204 || m.status == 304:
	case f.te && f.chunkedLast:
		m.kind = bodyChunked
		if f.hasLength {
			m.close = true // RFC 9112 §6.3: do not reuse the connection
		}
	case f.te:
		m.kind = bodyUntilClose
	case f.hasLength:
		if f.length > 0 {
			m.kind, m.length = bodyLength, f.length
		}
	default:
		m.kind = bodyUntilClose
	}
	if m.kind == bodyUntilClose {
		m.close = true
	}
	return m, nil
}

func parseVersion(v []byte) (http10 bool, err error) {
	switch string(v) {
	case "HTTP/1.1":
		return false, nil
	case "HTTP/1.0":
		return true, nil
	}
	return false, fmt.Errorf("%w: version %q", errMalformed, clip(v))
}

// fields are the header fields that decide framing.
type fields struct {
	length                       int64
	hasLength, te, chunkedLast   bool
	connClose, connKeepAlive     bool
	connUpgrade, upgrade, expect bool
	closeOnly                    bool
	closeLine                    [2]int
}

func parseFields(b []byte) (fields, error) {
	var f fields
	off := 0
	for len(b) > 0 {
		line, rest := cutLine(b)
		start := off
		off += len(b) - len(rest)
		b = rest
		if len(line) == 0 {
			if len(b) != 0 {
				return f, fmt.Errorf("%w: data after the head", errMalformed)
			}
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return f, fmt.Errorf("%w: folded header line", errMalformed)
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || !isToken(name) {
			return f, fmt.Errorf("%w: header line %q", errMalformed, clip(line))
		}
		value = bytes.Trim(value, " \t")
		if bytes.ContainsAny(value, "\x00\r\n") {
			return f, fmt.Errorf("%w: header value", errMalformed)
		}
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := parseLength(value)
			if err != nil {
				return f, err
			}
			if f.hasLength && n != f.length {
				return f, fmt.Errorf("%w: different Content-Length values", errMalformed)
			}
			f.hasLength, f.length = true, n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			last := value
			if i := bytes.LastIndexByte(value, ','); i >= 0 {
				last = bytes.Trim(value[i+1:], " \t")
			}
			if len(last) > 0 {
				f.te = true
				f.chunkedLast = bytes.EqualFold(last, []byte("chunked"))
			}
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				f.closeOnly, f.closeLine = true, [2]int{start, off}
			}
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.Trim(tok, " \t")
				switch {
				case bytes.EqualFold(tok, []byte("close")):
					f.connClose = true
				case bytes.EqualFold(tok, []byte("keep-alive")):
					f.connKeepAlive = true
				case bytes.EqualFold(tok, []byte("upgrade")):
					f.connUpgrade = true
				}
			}
		case bytes.EqualFold(name, []byte("Upgrade")):
			f.upgrade = len(value) > 0
		case bytes.EqualFold(name, []byte("Expect")):
			f.expect = bytes.EqualFold(value, []byte("100-continue"))
		}
	}
	return f, nil
}

// parseLength accepts a Content-Length value, a list of one value
// repeated included (RFC 9110 §8.6).
func parseLength(v []byte) (int64, error) {
	n := int64(-1)
	for part := range bytes.SplitSeq(v, []byte(",")) {
		part = bytes.Trim(part, " \t")
		if len(part) == 0 || len(part) > 18 {
			return 0, fmt.Errorf("%w: Content-Length %q", errMalformed, clip(v))
		}
		var x int64
		for _, c := range part {
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("%w: Content-Length %q", errMalformed, clip(v))
			}
			x = x*10 + int64(c-'0')
		}
		if n >= 0 && x != n {
			return 0, fmt.Errorf("%w: Content-Length %q", errMalformed, clip(v))
		}
		n = x
	}
	return n, nil
}

// cutLine splits off the first line, without its CRLF or LF.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, rest
}

func isToken(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`"(),/:;<=>?@[\]{}`), c) >= 0 {
			return false
		}
	}
	return true
}

func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// copyChunked copies a chunked body as received, chunk lines, extensions
// and trailers included, and stops after its last empty line. limit bounds
// each chunk-size line and the trailer section. Errors of dst are
// *writeError.
func copyChunked(dst *bufio.Writer, src *bufio.Reader, limit int) error {
	var line []byte
	put := func(b []byte) error {
		if _, err := dst.Write(b); err != nil {
			return &writeError{err}
		}
		return nil
	}
	for {
		if err := flushIfDry(dst, src); err != nil {
			return err
		}
		var err error
		line, err = readLine(src, limit, line[:0])
		if err != nil {
			return err
		}
		size, err := chunkSize(line)
		if err != nil {
			return err
		}
		if err := put(line); err != nil {
			return err
		}
		if size == 0 {
			break
		}
		if err := copyN(dst, src, size); err != nil {
			return err
		}
		line, err = readLine(src, 2, line[:0])
		if err != nil || !isEmptyLine(line) {
			return fmt.Errorf("%w: no CRLF after chunk data", errMalformed)
		}
		if err := put(line); err != nil {
			return err
		}
	}
	// Trailers, then the empty line.
	for n := 0; ; {
		var err error
		line, err = readLine(src, limit-n, line[:0])
		if err != nil {
			return err
		}
		n += len(line)
		if err := put(line); err != nil {
			return err
		}
		if isEmptyLine(line) {
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' || bytes.IndexByte(line, ':') <= 0 {
			return fmt.Errorf("%w: trailer line", errMalformed)
		}
	}
}

// readLine appends one line, LF included, to buf.
func readLine(src *bufio.Reader, limit int, buf []byte) ([]byte, error) {
	n := len(buf)
	for {
		part, err := src.ReadSlice('\n')
		if len(buf)-n+len(part) > limit {
			return nil, fmt.Errorf("%w: line too long", errMalformed)
		}
		buf = append(buf, part...)
		if err == nil {
			return buf, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, noEOF(err)
		}
	}
}

// chunkSize parses a chunk-size line: hex digits, optional extensions.
func chunkSize(line []byte) (int64, error) {
	l, _ := cutLine(line)
	var n int64
	i := 0
	for ; i < len(l); i++ {
		c := l[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			goto ext
		}
		if i >= 15 {
			return 0, fmt.Errorf("%w: chunk size too large", errMalformed)
		}
		n = n<<4 | int64(d)
	}
ext:
	if i == 0 {
		return 0, fmt.Errorf("%w: chunk size", errMalformed)
	}
	rest := bytes.TrimLeft(l[i:], " \t")
	if len(rest) > 0 && rest[0] != ';' {
		return 0, fmt.Errorf("%w: chunk size", errMalformed)
	}
	if bytes.ContainsAny(rest, "\x00\r") {
		return 0, fmt.Errorf("%w: chunk extension", errMalformed)
	}
	return n, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
