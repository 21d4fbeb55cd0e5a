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

// Download fetches an agent API path (a blob) over the tunnel into w,
// trying each core node once.
func (a *Agent) Download(ctx context.Context, path string, w io.Writer) error {
	var errs []error
	for range a.cores.count() {
		err := a.download(ctx, a.cores.agentURL()+path, w)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		a.cores.next()
	}
	return errors.Join(errs...)
}

func (a *Agent) download(ctx context.Context, url string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return jsonhttp.ReadError(resp)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}
