package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"potluck/agentproto"
	"potluck/internal/jsonhttp"
	"potluck/meshnet"
)

// register asks each core URL in turn; registering again with the same name
// and key returns the existing registration. A host already known (once)
// tries each node once and lets the caller fall back on its saved identity;
// a new host keeps trying with backoff for RegisterTimeout through elections
// and restarts, with one request id so the core applies the write once. A
// 4xx answer ends it at once: retrying would not help.
func (a *Agent) register(ctx context.Context, pub meshnet.PublicKey, once bool) (Identity, error) {
	body := agentproto.RegisterRequest{
		Name: a.cfg.Name, Role: a.cfg.Role, PublicKey: pub.String(),
		CPUs: a.cfg.CPUs, MemoryMB: a.cfg.MemoryMB, DiskMB: a.cfg.DiskMB, Endpoint: a.cfg.Endpoint,
		PublicURL: a.cfg.PublicURL, Measured: &a.measured, Region: a.cfg.Region, HTTPGateway: a.cfg.HTTPGateway,
	}
	hdr := http.Header{agentproto.HeaderRequestID: {"register-" + a.cfg.Name + "-" + pub.Hex()[:16]}}
	deadline := time.Now().Add(a.cfg.RegisterTimeout)
	backoff := 500 * time.Millisecond
	for {
		var errs []error
		for _, base := range a.cfg.CoreURLs {
			var reg agentproto.Registration
			req := jsonhttp.Request{Method: http.MethodPost, URL: strings.TrimRight(base, "/") + agentproto.PathRegister, Token: a.cfg.JoinToken, Header: hdr, Body: body}
			err := jsonhttp.Do(ctx, a.coreAPI, req, &reg, maxReply)
			if err == nil && len(reg.CorePeers) == 0 {
				// Registered (a retry with the same request id returns it),
				// but no core node has published its mesh address yet: a
				// core still starting. Retry like any other not-yet.
				err = errors.New("the core returned no core node with a mesh address yet (is the core's mesh configured?)")
			}
			if err == nil {
				addr, perr := netip.ParseAddr(reg.TunnelAddr)
				if perr != nil {
					return Identity{}, fmt.Errorf("register: core gave tunnel address %q: %w", reg.TunnelAddr, perr)
				}
				return Identity{HostID: reg.Host.ID, Name: a.cfg.Name, Role: a.cfg.Role, TunnelAddr: addr, CorePeers: reg.CorePeers}, nil
			}
			if jsonhttp.IsRejected(err) {
				return Identity{}, fmt.Errorf("register with %s: %w", base, err)
			}
			errs = append(errs, fmt.Errorf("%s: %w", base, err))
		}
		err := fmt.Errorf("register: no core node took the registration: %w", errors.Join(errs...))
		if once || time.Now().Add(backoff).After(deadline) {
			return Identity{}, err
		}
		a.log.Warn("registration not accepted yet; retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return Identity{}, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
