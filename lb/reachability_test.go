package lb

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBackendUnreachableFailsInFlightFast: a backend stops answering with
// requests in flight; when the transport reports it unreachable they fail
// at once instead of waiting for the 60 s read timeout: the GETs are
// retried on the other backend, the POST gets 502. Then the backend is
// reported reachable and serves again at once.
func TestBackendUnreachableFailsInFlightFast(t *testing.T) {
	for _, pipeline := range []int{0, 1} {
		t.Run(fmt.Sprintf("pipeline=%d", pipeline), func(t *testing.T) {
			var answering atomic.Bool
			var waiting atomic.Int64
			stop := make(chan struct{})
			t.Cleanup(func() { close(stop) })
			a := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
				if !answering.Load() { // stopped answering: hold the request
					waiting.Add(1)
					<-stop
					return
				}
				_, _ = io.WriteString(w, "a")
			})
			b := startBackend(t, "b", nil)
			// a takes (almost) every request; reads wait 60 s, far longer
			// than the client's patience.
			p := startProxy(t, Options{PipelineBackends: pipeline}, []Route{{Hosts: []string{"app.test"},
				Backends: []Backend{{Addr: a.addr, Weight: 1000}, {Addr: b.addr, Weight: 1}}}})
			answering.Store(true)
			code, body, _ := do(t, newClient(), "GET", p.url, "app.test", nil)
			require.Equal(t, 200, code)
			require.Equal(t, "a", body, "a serves, with a connection to it open")
			answering.Store(false)

			type reply struct {
				code int
				body string
				err  error
			}
			send := func(method string) <-chan reply {
				out := make(chan reply, 1)
				go func() {
					req, _ := http.NewRequest(method, p.url, strings.NewReader("x"))
					req.Host = "app.test"
					resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
					if err != nil {
						out <- reply{err: err}
						return
					}
					got, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					out <- reply{code: resp.StatusCode, body: string(got)}
				}()
				return out
			}
			var gets []<-chan reply
			for range 3 {
				gets = append(gets, send("GET"))
			}
			post := send("POST")
			// All four sent to a (pipelined, a handles them one at a time).
			inflight := &p.table.Load().routes[0].backends[0].inflight
			require.Eventually(t, func() bool { return inflight.Load() == 4 && waiting.Load() >= 1 },
				10*time.Second, 5*time.Millisecond)

			require.Equal(t, 1, p.BackendUnreachable(a.addr))
			for _, g := range gets {
				require.Equal(t, reply{code: 200, body: "b"}, <-g, "retried on b, long before any timeout")
			}
			require.Equal(t, reply{code: 502, body: msgBadGW}, <-post, "a POST that was sent is not re-sent")
			st := p.Status().Routes[0].Backends[0]
			require.Equal(t, "down", st.State)
			require.Equal(t, uint64(1), st.MarkDowns)
			code, body, _ = do(t, newClient(), "GET", p.url, "app.test", nil)
			require.Equal(t, 200, code)
			require.Equal(t, "b", body, "a is out")

			answering.Store(true)
			require.Equal(t, 1, p.BackendReachable(a.addr))
			require.Equal(t, "live", p.Status().Routes[0].Backends[0].State)
			code, body, _ = do(t, newClient(), "GET", p.url, "app.test", nil)
			require.Equal(t, 200, code)
			require.Equal(t, "a", body, "back at once, no fail_timeout to wait")
			require.Equal(t, uint64(1), p.Status().Routes[0].Backends[0].Recoveries)
		})
	}
}

// TestBackendUnreachableCancelsDials: a request whose connect hangs (a
// tunnel dial to a vanished peer is never refused) moves on to the next
// backend as soon as the backend is reported unreachable, instead of
// waiting for the connect timeout.
func TestBackendUnreachableCancelsDials(t *testing.T) {
	silent := silentAddr(t)
	good := startBackend(t, "good", nil)
	p := startProxy(t, Options{Timeouts: Timeouts{Connect: time.Minute}}, []Route{route("app.test", silent, good.addr)})
	res := goGet(p.url, "app.test") // the rotation starts with silent
	inflight := &p.table.Load().routes[0].backends[0].inflight
	require.Eventually(t, func() bool { return inflight.Load() == 1 }, 10*time.Second, time.Millisecond)
	// The attempt is on silent, its dial started or about to: reported
	// until the request moves on (a report that came just before the dial
	// began would not cancel it), long before the connect timeout.
	var got result
	require.Eventually(t, func() bool {
		require.Equal(t, 1, p.BackendUnreachable(silent))
		select {
		case got = <-res:
			return true
		default:
			return false
		}
	}, 20*time.Second, 50*time.Millisecond)
	require.Equal(t, result{200, "good"}, got)
}

// TestBackendUnreachableMatchesHostOrAddr: a bare host names every backend
// on it, host:port one; routes sharing an address are all told.
func TestBackendUnreachableMatchesHostOrAddr(t *testing.T) {
	p := startProxy(t, Options{}, []Route{
		route("a.test", "10.1.0.1:80", "10.1.0.1:81", "10.1.0.2:80"),
		route("b.test", "10.1.0.1:80", "[fd00::1]:80"),
	})
	cases := []struct {
		addr string
		want int
	}{
		{"10.1.0.1:80", 2}, {"10.1.0.1", 3}, {"10.1.0.2", 1}, {"fd00::1", 1}, {"[fd00::1]:80", 1}, {"10.1.0.3", 0},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, p.BackendUnreachable(tc.addr), tc.addr)
		require.Equal(t, tc.want, p.BackendReachable(tc.addr), tc.addr)
	}
}

// TestBackendUnreachableReachesDrainingBackends: a backend removed from the
// table finishes its requests in flight; if it vanishes meanwhile, they fail
// fast too instead of waiting for the read timeout.
func TestBackendUnreachableReachesDrainingBackends(t *testing.T) {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	started := make(chan struct{}, 1)
	a := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-stop // stops answering
	})
	b := startBackend(t, "b", nil)
	p := startProxy(t, Options{}, []Route{route("app.test", a.addr)})
	res := goGet(p.url, "app.test")
	<-started
	require.NoError(t, p.Update([]Route{route("app.test", b.addr)}))
	require.Equal(t, 0, p.BackendUnreachable(a.addr), "no longer in the table")
	r := <-res
	require.Equal(t, 502, r.code, "failed at once, not after 60 s")
}
