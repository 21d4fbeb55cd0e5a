// Command fast is the benchmarks' fast backend app: a fasthttp server that
// costs next to nothing per request, so a benchmark through it measures the
// proxies and the mesh rather than the app (bench/app, on net/http, is
// several times slower). GET / answers 25 bytes; POST /upload reads and
// discards the body and answers its length; GET /download?bytes=N streams
// N bytes (at most 1 GiB); /healthz answers ok.
package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// maxDownload bounds what one download streams.
const maxDownload = 1 << 30

func main() {
	listen := os.Getenv("APP_LISTEN")
	if listen == "" {
		listen = ":8080"
	}
	s := &fasthttp.Server{
		Handler:               handle,
		NoDefaultServerHeader: true,
		StreamRequestBody:     true, // uploads are read as they come, not held whole
		MaxRequestBodySize:    maxDownload,
		ReadTimeout:           time.Minute,
		WriteTimeout:          time.Minute,
		IdleTimeout:           2 * time.Minute,
	}
	if err := s.ListenAndServe(listen); err != nil {
		fmt.Fprintln(os.Stderr, "fast:", err)
		os.Exit(1)
	}
}

var hello = []byte("Hello from a Potluck app\n") // 25 bytes, as bench/nginxcmp's backends

func handle(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/", "/healthz":
		ctx.SetContentType("text/plain")
		ctx.SetBody(hello)
	case "/upload":
		n, err := io.Copy(io.Discard, ctx.RequestBodyStream())
		if err != nil {
			ctx.Error("reading the body: "+err.Error(), fasthttp.StatusBadRequest)
			return
		}
		fmt.Fprintf(ctx, "%d\n", n)
	case "/download":
		n, err := strconv.Atoi(string(ctx.QueryArgs().Peek("bytes")))
		if err != nil || n < 0 || n > maxDownload {
			ctx.Error("bytes: want 0 to 1073741824\n", fasthttp.StatusBadRequest)
			return
		}
		ctx.SetContentType("application/octet-stream")
		ctx.SetBodyStream(&zeros{left: n}, n)
	default:
		ctx.Error("not found\n", fasthttp.StatusNotFound)
	}
}

// zeros reads as left zero bytes.
type zeros struct{ left int }

func (z *zeros) Read(p []byte) (int, error) {
	if z.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), z.left)
	clear(p[:n])
	z.left -= n
	return n, nil
}
