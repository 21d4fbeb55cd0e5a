package lb

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"potluck/lb/health"
)

// Defaults, chosen to match NGINX where it has an equivalent.
const (
	DefaultWeight         = 1
	DefaultMaxFails       = 1
	DefaultFailTimeout    = 20 * time.Second // NGINX says 10 s; Potluck's plan uses 20 s
	DefaultConnectTimeout = 5 * time.Second
	DefaultSendTimeout    = 60 * time.Second
	DefaultReadTimeout    = 60 * time.Second
	DefaultMaxBodySize    = 1 << 20 // client_max_body_size 1m
	DefaultRetryBuffer    = 64 << 10
	DefaultIdleConnTime   = 30 * time.Second
	DefaultMaxConns       = 1024
	DefaultClientIdle     = 75 * time.Second // keepalive_timeout 75s
	DefaultClientHeader   = 60 * time.Second // client_header_timeout 60s
	DefaultClientBody     = 60 * time.Second // client_body_timeout 60s
	DefaultClientSend     = 60 * time.Second // send_timeout 60s
	DefaultMaxClientConns = 10000
	DefaultPipelineDepth  = 64
	DefaultPipelineStall  = 20 * time.Millisecond
	DefaultPipelineBusy   = 4

	// DisableHealth as Backend.MaxFails never marks the backend down.
	DisableHealth = -1
)

// Backend is one upstream server of a route.
type Backend struct {
	// Addr is host:port as understood by the Dialer.
	Addr string
	// Weight is the round-robin weight; 0 means DefaultWeight.
	Weight int
	// MaxFails is NGINX's max_fails; 0 means DefaultMaxFails and
	// DisableHealth (-1) turns accounting off (NGINX's max_fails=0).
	MaxFails int
	// FailTimeout is NGINX's fail_timeout; 0 means DefaultFailTimeout.
	FailTimeout time.Duration
	// Pipeline > 0 pipelines requests to this backend over this many
	// connections, as Options.PipelineBackends does for every backend; for
	// a backend that parses pipelined requests itself, such as a Potluck
	// Back's HTTP gateway. 0 leaves it to Options.PipelineBackends.
	Pipeline int
}

// Route sends requests for some Host names to a set of backends.
type Route struct {
	// Name labels metrics and logs; defaults to the first host or "default".
	Name string
	// Hosts are exact host names (case-insensitive, port ignored).
	Hosts []string
	// Default makes this route serve hosts no other route names.
	Default bool
	// Backends are the upstream servers.
	Backends []Backend
}

// FailureKinds selects extra responses counted as failures, like NGINX's
// proxy_next_upstream http_5xx flags. Connect, send, timeout and bad-header
// errors are always failures.
type FailureKinds uint8

const (
	// FailOn5xx counts backend 500, 502, 503 and 504 responses as failures
	// (they are retried on the next backend when the method allows it).
	FailOn5xx FailureKinds = 1 << iota
	// FailOn429 counts 429 Too Many Requests as a failure.
	FailOn429
)

// Timeouts bound the exchange with a backend.
type Timeouts struct {
	// Connect bounds establishing a connection (proxy_connect_timeout).
	Connect time.Duration
	// Send bounds each write to the backend (proxy_send_timeout).
	Send time.Duration
	// Read bounds each read from the backend, the response header included
	// (proxy_read_timeout).
	Read time.Duration
}

// Options configure a Proxy. Zero values mean the documented defaults.
type Options struct {
	// Dialer reaches backends; nil means TCP.
	Dialer Dialer
	// Timeouts for backend exchanges.
	Timeouts Timeouts
	// MaxBodySize is the largest request body accepted (413 beyond); -1 = unlimited.
	MaxBodySize int64
	// RetryBuffer is the largest request body held in memory so that it can
	// be re-sent to the next backend; larger bodies are held in a temporary
	// file (or streamed, with StreamRequestBodies).
	RetryBuffer int
	// StreamRequestBodies streams bodies larger than RetryBuffer (and chunked
	// ones) to the backend as they arrive, instead of holding them whole
	// first (NGINX's proxy_request_buffering off): nothing touches the disk
	// and the backend sees the upload at once, but such a request is not
	// retried on another backend once some of its body was sent.
	StreamRequestBodies bool
	// TempDir holds request bodies larger than RetryBuffer while they are
	// proxied (NGINX's client_body_temp_path); "" means os.TempDir(). The
	// files are unlinked as soon as they are created.
	TempDir string
	// FailOn adds response kinds counted as failures.
	FailOn FailureKinds
	// MaxConnsPerBackend bounds open connections (busy plus idle keep-alive)
	// per backend; a request finding all of them busy waits up to the
	// connect timeout for one.
	MaxConnsPerBackend int
	// IdleConnTimeout closes pooled backend connections idle this long, so
	// the idle pool shrinks back after a burst.
	IdleConnTimeout time.Duration
	// PipelineBackends > 0 sends requests whose body is held in memory
	// (no body, or up to RetryBuffer) over this many pipelined HTTP/1.1
	// connections per backend instead of the keep-alive pool: requests are
	// written back to back and answered in order, so one send and one read
	// serve several requests. A response waits for the ones before it on
	// its connection; PipelineStall bounds how long a request may join a
	// connection behind a slow one. 0 (default) = off, unless
	// Backend.Pipeline says otherwise. See docs/lb.md.
	PipelineBackends int
	// PipelineDepth bounds the requests in flight on one pipelined
	// connection; 0 means DefaultPipelineDepth.
	PipelineDepth int
	// PipelineStall: a pipelined connection whose oldest unanswered
	// request has waited this long takes no new request, which goes over
	// the keep-alive pool instead, until that response has come whole. So
	// a slow or endless (streamed) response holds up only the requests
	// queued behind it within this time. 0 means DefaultPipelineStall.
	PipelineStall time.Duration
	// PipelineBusy: a pipelined backend gets a request over its pipelined
	// connections only while at least this many are in flight to it,
	// counting that one; fewer go over the keep-alive pool, as through
	// NGINX. Pipelining pays when requests share writes, and this way a
	// slow request at low concurrency never holds up another. 0 means
	// DefaultPipelineBusy; 1 pipelines every request.
	PipelineBusy int
	// ClientIdleTimeout closes a client keep-alive connection when no
	// request starts within it (NGINX's keepalive_timeout).
	ClientIdleTimeout time.Duration
	// ClientHeaderTimeout bounds reading a whole request header, however
	// slowly its lines come (client_header_timeout); 408 and close.
	ClientHeaderTimeout time.Duration
	// ClientBodyTimeout bounds each read of a request body, between two
	// successive reads, not the whole body (client_body_timeout); 408.
	ClientBodyTimeout time.Duration
	// ClientSendTimeout bounds each write of a response to the client
	// (send_timeout); the connection is closed when it passes.
	ClientSendTimeout time.Duration
	// MaxClientConns bounds open client connections, idle keep-alive ones
	// included; beyond it a new connection gets 503 and is closed.
	MaxClientConns int
	// Scheme is sent as X-Forwarded-Proto for plain connections; default
	// "http" (TLS connections send "https").
	Scheme string
	// Wrap, if set, wraps the proxy's handler: the embedder answers some
	// requests itself (ACME challenges, redirects to HTTPS) and adds
	// response headers (HSTS) around the proxy.
	Wrap func(next fasthttp.RequestHandler) fasthttp.RequestHandler
	// AccessLog logs one line per request at Info level.
	AccessLog bool
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
	// Clock drives health timing; nil means the monotonic clock.
	Clock health.Clock
}

func (o Options) withDefaults() Options {
	if o.Dialer == nil {
		o.Dialer = TCPDialer()
	}
	if o.Timeouts.Connect <= 0 {
		o.Timeouts.Connect = DefaultConnectTimeout
	}
	if o.Timeouts.Send <= 0 {
		o.Timeouts.Send = DefaultSendTimeout
	}
	if o.Timeouts.Read <= 0 {
		o.Timeouts.Read = DefaultReadTimeout
	}
	if o.MaxBodySize == 0 {
		o.MaxBodySize = DefaultMaxBodySize
	}
	if o.RetryBuffer <= 0 {
		o.RetryBuffer = DefaultRetryBuffer
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.MaxConnsPerBackend <= 0 {
		o.MaxConnsPerBackend = DefaultMaxConns
	}
	if o.IdleConnTimeout <= 0 {
		o.IdleConnTimeout = DefaultIdleConnTime
	}
	if o.PipelineDepth <= 0 {
		o.PipelineDepth = DefaultPipelineDepth
	}
	if o.PipelineStall <= 0 {
		o.PipelineStall = DefaultPipelineStall
	}
	if o.PipelineBusy <= 0 {
		o.PipelineBusy = DefaultPipelineBusy
	}
	if o.ClientIdleTimeout <= 0 {
		o.ClientIdleTimeout = DefaultClientIdle
	}
	if o.ClientHeaderTimeout <= 0 {
		o.ClientHeaderTimeout = DefaultClientHeader
	}
	if o.ClientBodyTimeout <= 0 {
		o.ClientBodyTimeout = DefaultClientBody
	}
	if o.ClientSendTimeout <= 0 {
		o.ClientSendTimeout = DefaultClientSend
	}
	if o.MaxClientConns <= 0 {
		o.MaxClientConns = DefaultMaxClientConns
	}
	if o.Scheme == "" {
		o.Scheme = "http"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = health.NewMonotonicClock()
	}
	return o
}

// ValidateRoutes checks a routing table and returns an error naming the
// offending field, e.g. `routes[1].backends[0].addr: missing port`.
func ValidateRoutes(routes []Route) error {
	var errs []error
	hostOwner := map[string]int{}
	defaults := 0
	for i, r := range routes {
		at := fmt.Sprintf("routes[%d]", i)
		if len(r.Hosts) == 0 && !r.Default {
			errs = append(errs, fmt.Errorf("%s.hosts: a route needs at least one host or default: true", at))
		}
		if r.Default {
			defaults++
			if defaults > 1 {
				errs = append(errs, fmt.Errorf("%s.default: only one route may be the default", at))
			}
		}
		for j, h := range r.Hosts {
			h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
			if h == "" || strings.ContainsAny(h, " /:\t") {
				errs = append(errs, fmt.Errorf("%s.hosts[%d]: %q is not a host name (no port, scheme or path)", at, j, r.Hosts[j]))
				continue
			}
			if prev, dup := hostOwner[h]; dup {
				errs = append(errs, fmt.Errorf("%s.hosts[%d]: host %q is already routed by routes[%d]", at, j, h, prev))
			}
			hostOwner[h] = i
		}
		if len(r.Backends) == 0 {
			errs = append(errs, fmt.Errorf("%s.backends: a route needs at least one backend", at))
		}
		seen := map[string]bool{}
		for j, b := range r.Backends {
			bat := fmt.Sprintf("%s.backends[%d]", at, j)
			if _, port, err := net.SplitHostPort(b.Addr); err != nil || port == "" {
				errs = append(errs, fmt.Errorf("%s.addr: %q is not host:port", bat, b.Addr))
			} else if seen[b.Addr] {
				errs = append(errs, fmt.Errorf("%s.addr: %q appears twice in this route", bat, b.Addr))
			}
			seen[b.Addr] = true
			if b.Weight < 0 || b.Weight > 1000 {
				errs = append(errs, fmt.Errorf("%s.weight: %d is outside 1..1000", bat, b.Weight))
			}
			if b.MaxFails < DisableHealth {
				errs = append(errs, fmt.Errorf("%s.max_fails: %d is negative", bat, b.MaxFails))
			}
			if b.FailTimeout < 0 {
				errs = append(errs, fmt.Errorf("%s.fail_timeout: %s is negative", bat, b.FailTimeout))
			}
		}
	}
	return errors.Join(errs...)
}

func (r Route) name() string {
	switch {
	case r.Name != "":
		return r.Name
	case len(r.Hosts) > 0:
		return strings.ToLower(r.Hosts[0])
	default:
		return "default"
	}
}
