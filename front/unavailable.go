package front

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"potluck/lb"
)

// UnavailableAddr is the backend address of a known domain with no
// instance ready: the Front's dialer answers it in process with 503 and a
// Retry-After, instead of the proxy's 404 for an unknown host. It is not a
// routable address (RFC 6761 .invalid), so it can never reach the network.
const UnavailableAddr = "no-instance-ready.invalid:503"

// RetryAfter is what clients of such a domain are asked to wait.
const RetryAfter = 5 * time.Second

// unavailable serves the placeholder backend over in-memory connections.
type unavailable struct {
	ln  *connQueue
	srv *http.Server
}

func newUnavailable(log *slog.Logger) *unavailable {
	u := &unavailable{ln: newConnQueue(pipeAddr{})}
	u.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
			w.Header().Set("Retry-After", strconv.Itoa(int(RetryAfter/time.Second)))
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "503 Service Unavailable: this site is starting or has no healthy instance right now; retry shortly\n")
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go u.srv.Serve(u.ln)
	return u
}

// dialer wraps next: UnavailableAddr is answered in process.
func (u *unavailable) dialer(next lb.Dialer) lb.Dialer {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == UnavailableAddr {
			return u.dial(ctx)
		}
		return next(ctx, network, addr)
	}
}

// dial connects to the placeholder in memory.
func (u *unavailable) dial(ctx context.Context) (net.Conn, error) {
	client, server := net.Pipe()
	if err := u.ln.put(ctx, server); err != nil {
		return nil, err
	}
	return client, nil
}

func (u *unavailable) close() error { return u.srv.Close() }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return UnavailableAddr }
