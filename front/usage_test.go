package front

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/lb"
)

func TestUsageReportsDeltasPerInstallation(t *testing.T) {
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusBadGateway)
		}
	}), ReadHeaderTimeout: time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go app.Serve(ln)
	t.Cleanup(func() { app.Close() })

	p := lb.New(lb.Options{})
	require.NoError(t, p.Update([]lb.Route{{Name: "shop", Hosts: []string{"shop.test"}, Backends: []lb.Backend{{Addr: ln.Addr().String()}}}}))
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go p.Serve(pln)
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	get := func(path string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+pln.Addr().String()+path, nil)
		req.Host = "shop.test"
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	u := newUsage(p)
	for range 5 {
		get("/")
	}
	get("/fail")
	first := u.report(context.Background())
	require.Len(t, first.Routes, 1)
	r := first.Routes[0]
	require.Equal(t, "shop", r.Installation)
	require.Equal(t, uint64(6), r.Requests)
	require.Equal(t, uint64(1), r.Errors)
	var n uint64
	for _, c := range r.LatencyCounts {
		n += c
	}
	require.Equal(t, uint64(6), n)
	require.NoError(t, first.Check())

	get("/")
	second := u.report(context.Background())
	require.Equal(t, uint64(1), second.Routes[0].Requests, "only what came since the previous report")
	require.Zero(t, second.Routes[0].Errors)
}
