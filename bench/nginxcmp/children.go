package main

import (
	"flag"
	"strings"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// backendMain is `nginxcmp backend`: one test backend in its own process.
func backendMain(args []string) error {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	body := []byte("Hello from a Potluck app\n") // 25 bytes, like the anchor figures
	s := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("text/plain")
			ctx.SetBody(body)
		},
		NoDefaultServerHeader: true,
	}
	return s.ListenAndServe(*addr)
}

// rawProxyMain is the baseline: the ten-line fasthttp proxy (one HostClient
// per backend, plain round robin, no health, no header handling). It shows
// what fasthttp itself costs here, apart from lb's work.
func rawProxyMain(args []string) error {
	fs := flag.NewFlagSet("rawproxy", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address (loopback only)")
	backends := fs.String("backends", "", "comma-separated backend addresses")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var clients []*fasthttp.HostClient
	for _, a := range strings.Split(*backends, ",") {
		clients = append(clients, &fasthttp.HostClient{Addr: a, MaxIdemponentCallAttempts: 1})
	}
	var next atomic.Uint64
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		hc := clients[next.Add(1)%uint64(len(clients))]
		if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
			ctx.Error("502 Bad Gateway\n", fasthttp.StatusBadGateway)
		}
	}}
	return s.ListenAndServe(*listen)
}
