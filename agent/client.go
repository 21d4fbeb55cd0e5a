package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"potluck/agentproto"
	"potluck/internal/jsonhttp"
	"potluck/meshnet"
)

// agentDialTimeout bounds a tunnel dial to a core node's agent API.
const agentDialTimeout = 2 * time.Second

// coreAPIClient calls the core's public API, over HTTPS trusting the CA in
// caFile when one is given (a core certificate from a private CA), with
// timeouts on every step but the answer (registration is small and quick).
func coreAPIClient(caFile string) (*http.Client, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		data, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("core CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("core CA %s holds no PEM certificate", caFile)
		}
		tlsConf.RootCAs = pool
	}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		Proxy:           http.ProxyFromEnvironment,
		DialContext:     (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSClientConfig: tlsConf, TLSHandshakeTimeout: 10 * time.Second, IdleConnTimeout: 30 * time.Second,
	}}, nil
}

// tunnelClient reaches the core nodes' agent API through the mesh.
func (a *Agent) tunnelClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		// A live core node answers a tunnel dial in milliseconds; a dead
		// one never does, so give up fast and try the next.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, agentDialTimeout)
			defer cancel()
			return a.node.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}}
}

// peers are the core nodes (hubs) plus the desired state's peers.
func (a *Agent) peers(d *agentproto.DesiredState) []meshnet.Peer {
	seen := map[meshnet.PublicKey]bool{}
	var out []meshnet.Peer
	add := func(key, addr, endpoint string, hub bool) {
		p, err := toPeer(key, addr, endpoint, hub)
		if err != nil {
			a.log.Warn("ignoring a peer the core described badly", "err", err)
			return
		}
		if !seen[p.PublicKey] && p.PublicKey != a.node.PublicKey() {
			seen[p.PublicKey] = true
			out = append(out, p)
		}
	}
	for _, c := range a.cores.list() {
		add(c.PublicKey, c.TunnelAddr, c.Endpoint, true)
	}
	if d != nil {
		hints := a.takeEndpointHints()
		for _, p := range d.Peers {
			endpoint, hub := p.Endpoint, p.Hub && p.Endpoint != ""
			if hint, ok := hints[p.PublicKey]; ok && endpoint == "" {
				endpoint = hint.String() // not a hub: no keepalive, WireGuard roams from here
			}
			add(p.PublicKey, p.TunnelAddr, endpoint, hub)
		}
	}
	return out
}

func toPeer(key, addr, endpoint string, hub bool) (meshnet.Peer, error) {
	k, err := meshnet.ParsePublicKey(key)
	if err != nil {
		return meshnet.Peer{}, err
	}
	ta, err := netip.ParseAddr(addr)
	if err != nil {
		return meshnet.Peer{}, fmt.Errorf("tunnel address %q: %w", addr, err)
	}
	p := meshnet.Peer{PublicKey: k, Address: ta, Hub: hub}
	if endpoint != "" {
		if p.Endpoint, err = netip.ParseAddrPort(endpoint); err != nil {
			return meshnet.Peer{}, fmt.Errorf("endpoint %q: %w", endpoint, err)
		}
	}
	return p, nil
}

// Download fetches an agent API path (a blob) over the tunnel, trying each
// core node once, and hands the body to consume, which reads it from the
// start on every attempt. A download that fails or stalls (no byte for
// Config.DownloadStall) is asked of the next node: over the tunnel a node
// that died mid-stream sends no reset, and a large image has no overall
// deadline that would fit every link. An error of consume's own (not of
// reading the body) ends the download.
func (a *Agent) Download(ctx context.Context, path string, consume func(io.Reader) error) error {
	var errs []error
	for range a.cores.count() {
		err := a.download(ctx, a.cores.agentURL()+path, consume)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil || errors.As(err, new(consumerError)) {
			break
		}
		a.cores.next()
	}
	return errors.Join(errs...)
}

// errStalled ends a download that went Config.DownloadStall without a byte.
var errStalled = errors.New("download stalled")

// consumerError is a failure of Download's consumer rather than of the node.
type consumerError struct{ err error }

func (e consumerError) Error() string { return e.err.Error() }
func (e consumerError) Unwrap() error { return e.err }

func (a *Agent) download(ctx context.Context, url string, consume func(io.Reader) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := a.cfg.DownloadStall
	watchdog := time.AfterFunc(stall, func() { cancel(fmt.Errorf("%w: no data for %s", errStalled, stall)) })
	defer watchdog.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return stallCause(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return jsonhttp.ReadError(resp)
	}
	body := &progressReader{r: resp.Body, progress: func() { watchdog.Reset(stall) }}
	err = consume(body)
	switch {
	case err == nil:
		return nil
	case body.err == nil || errors.Is(body.err, io.EOF):
		return consumerError{err}
	default:
		return stallCause(ctx, err)
	}
}

// stallCause names the stall when the watchdog ended the download.
func stallCause(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errStalled) {
		return context.Cause(ctx)
	}
	return err
}

// progressReader calls progress after every read that returned data and
// keeps the first read error.
type progressReader struct {
	r        io.Reader
	progress func()
	err      error
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.progress()
	}
	if err != nil && p.err == nil {
		p.err = err
	}
	return n, err
}
