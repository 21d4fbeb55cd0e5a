package main

import (
	"bytes"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

func TestHandler(t *testing.T) {
	ln := fasthttputil.NewInmemoryListener()
	s := &fasthttp.Server{Handler: handle, StreamRequestBody: true, MaxRequestBodySize: maxDownload}
	go s.Serve(ln)
	t.Cleanup(func() { ln.Close() })
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }, StreamResponseBody: false}
	upload := bytes.Repeat([]byte("x"), 3<<20)
	for _, tc := range []struct {
		name, method, uri string
		body              []byte
		status            int
		want              string
		size              int
	}{
		{name: "hello", method: "GET", uri: "/", status: 200, want: "Hello from a Potluck app\n"},
		{name: "health", method: "GET", uri: "/healthz", status: 200, want: "Hello from a Potluck app\n"},
		{name: "upload counts the body", method: "POST", uri: "/upload", body: upload, status: 200, want: "3145728\n"},
		{name: "download", method: "GET", uri: "/download?bytes=1048577", status: 200, size: 1048577},
		{name: "download nothing", method: "GET", uri: "/download?bytes=0", status: 200, size: 0},
		{name: "download too much", method: "GET", uri: "/download?bytes=1073741825", status: 400},
		{name: "download no size", method: "GET", uri: "/download", status: 400},
		{name: "unknown path", method: "GET", uri: "/nope", status: 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.Header.SetMethod(tc.method)
			req.SetRequestURI("http://fast.test" + tc.uri)
			req.SetBody(tc.body)
			require.NoError(t, c.Do(req, resp))
			require.Equal(t, tc.status, resp.StatusCode())
			if tc.want != "" {
				require.Equal(t, tc.want, string(resp.Body()))
			}
			if tc.status == 200 && tc.want == "" {
				require.Len(t, resp.Body(), tc.size)
				require.Equal(t, bytes.Repeat([]byte{0}, tc.size), resp.Body())
			}
		})
	}
}
