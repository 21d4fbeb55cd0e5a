// Package agentapi serves the API that Front and Back agents use over the
// WireGuard mesh: their desired state (mesh peers, instances to run, routes
// to serve), image blob downloads, and heartbeats with instance status. It is
// served only on a core node's tunnel address, and a caller is identified by
// the WireGuard key of the tunnel peer its source address belongs to
// (WireGuard's cryptokey routing makes that authentic), so agents need no
// other credential.
package agentapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"potluck/agentproto"
	"potluck/core/api"
	"potluck/core/blobs"
	"potluck/core/fsm"
	"potluck/internal/jsonhttp"
)

// maxHeartbeatBytes bounds a heartbeat's body: MaxReportsPerHeartbeat
// reports of MaxReportMessage bytes fit.
const maxHeartbeatBytes = 1 << 20

// Identify returns the WireGuard public key (base64) of the peer that sent r.
type Identify func(r *http.Request) (publicKey string, ok bool)

// HeartbeatFunc delivers a heartbeat to the leader.
type HeartbeatFunc func(ctx context.Context, hostID string, reports []agentproto.InstanceReport) error

// StateSource gives the current replicated state and blocking waits on it.
type StateSource interface {
	State() *fsm.State
	Wait(ctx context.Context, index uint64) *fsm.State
}

// Config wires the agent API.
type Config struct {
	State     StateSource
	Blobs     *blobs.Store
	Identify  Identify
	Heartbeat HeartbeatFunc
	// Metrics delivers a metrics report to the leader; nil: reports are
	// accepted and dropped.
	Metrics MetricsFunc
	// Certs is the certificate store (certs.go); nil: none.
	Certs  *CertStore
	Logger *slog.Logger
	// Context bounds the handler's follower of the state (see watch);
	// nil: it follows for the life of the process.
	Context context.Context
}

// Handler serves the agent API.
type Handler struct {
	cfg   Config
	mux   *http.ServeMux
	watch *watch
}

// New returns the agent API handler.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux(), watch: newWatch(cfg.Context, cfg.State)}
	h.mux.HandleFunc("GET "+agentproto.PathState, h.host(h.getState))
	h.mux.HandleFunc("GET "+agentproto.PathBlobs+"{digest}", h.host(h.getBlob))
	h.mux.HandleFunc("POST "+agentproto.PathHeartbeat, h.host(h.heartbeat))
	h.mux.HandleFunc("POST "+agentproto.PathMetrics, h.host(h.metrics))
	h.routeCerts()
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		jsonhttp.WriteError(w, http.StatusNotFound, "no such agent endpoint: "+r.Method+" "+r.URL.Path)
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

type hostHandler func(w http.ResponseWriter, r *http.Request, host *fsm.Host)

// host resolves the caller's tunnel identity to a registered host.
func (h *Handler) host(next hostHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, ok := h.cfg.Identify(r)
		if !ok {
			jsonhttp.WriteError(w, http.StatusForbidden, "caller is not a known tunnel peer")
			return
		}
		host := h.hostByKey(key)
		if host == nil {
			jsonhttp.WriteError(w, http.StatusForbidden, "no host is registered with this WireGuard key")
			return
		}
		if host.Status == fsm.HostDecommissioned {
			// 410, not 403: the agent must tell "removed for good" (stand
			// down) from a core node that merely lags behind.
			jsonhttp.WriteError(w, http.StatusGone, "host is decommissioned")
			return
		}
		next(w, r, host)
	}
}

// hostByKey finds the caller's host in the current state: through the
// key's host id as found before (one map lookup), else by a walk over the
// hosts.
func (h *Handler) hostByKey(key string) *fsm.Host {
	st := h.cfg.State.State()
	if id, ok := h.watch.hostIDOf(key); ok {
		// Keys are unique among hosts (registration refuses a taken
		// one), so the host found before is the one HostByKey finds.
		if cur := st.Hosts[id]; cur != nil && cur.PublicKey == key {
			return cur
		}
	}
	ho := st.HostByKey(key)
	if ho != nil {
		h.watch.rememberKey(key, ho.ID)
	}
	return ho
}

func (h *Handler) getState(w http.ResponseWriter, r *http.Request, host *fsm.Host) {
	n, wait, blocking, err := jsonhttp.ParseBlockingQuery(r.URL.Query())
	if err != nil {
		jsonhttp.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	ix := h.watch.atLeast(h.cfg.State.State())
	if blocking {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		defer cancel()
		changed := h.waitForChange(ctx, ix, n, host.ID)
		if r.Context().Err() != nil {
			// The node is stopping (or the agent left): send the agent on
			// to another node rather than answer "nothing new".
			jsonhttp.WriteError(w, http.StatusServiceUnavailable, "this core node is shutting down; ask another")
			return
		}
		ix = h.watch.atLeast(changed)
	}
	st := ix.st
	cur := st.Hosts[host.ID]
	if cur == nil || cur.Status == fsm.HostDecommissioned {
		writeGone(w) // decommissioned while the query was waiting
		return
	}
	w.Header().Set(agentproto.HeaderIndex, strconv.FormatUint(st.Index, 10))
	h.writeDesired(w, ix, cur)
}

// zeroIndex is how the JSON of a desired state with index 0 begins.
var zeroIndex = []byte(`{"index":0,`)

// writeDesired answers host's desired state in ix's state: the encoding
// cached for the host with the index put in, byte for byte what encoding
// the desired state would write.
func (h *Handler) writeDesired(w http.ResponseWriter, ix *index, host *fsm.Host) {
	data := h.watch.encoded(ix, host)
	if !bytes.HasPrefix(data, zeroIndex) {
		jsonhttp.WriteJSON(w, http.StatusOK, h.watch.desiredOf(ix, host))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(strconv.AppendUint([]byte(`{"index":`), ix.st.Index, 10))
	_, _ = w.Write(data[len(zeroIndex)-1:])
	_, _ = w.Write([]byte{'\n'})
}

// waitForChange answers a blocking query. An agent that is behind (the
// state is past its index) gets the state at once. Otherwise it waits until
// this host's desired state differs from the current one, ignoring changes
// elsewhere (other hosts' heartbeats would wake every agent), or until ctx
// ends. The handler's watch wakes it only for changes that may concern the
// host; it then compares the desired state itself.
func (h *Handler) waitForChange(ctx context.Context, start *index, index uint64, hostID string) *fsm.State {
	if start.st.Index > index {
		return start.st
	}
	// The agent's own state is the base, not a newer one the follower
	// already holds (that change would go unnoticed). Only its index and
	// fingerprint are kept while waiting: thousands of waiters each holding
	// the whole state they started on kept hundreds of states alive.
	from, base := start.st.Index, h.watch.fingerprint(start, hostID)
	start = nil
	for range 100_000 { // bounded; each round waits for a change of this host or ctx
		ix, ch := h.watch.subscribe(hostID)
		if ix.st.Index > from && !bytes.Equal(h.watch.fingerprint(ix, hostID), base) {
			return ix.st
		}
		ix = nil
		select {
		case <-ctx.Done():
			return h.cfg.State.State()
		case <-ch:
		}
	}
	return h.cfg.State.State()
}

// Desired computes a host's desired state from the replicated state.
func Desired(st *fsm.State, host *fsm.Host) agentproto.DesiredState {
	return desired(newIndex(st), host)
}

// desired is Desired over an index of the state: it visits only the
// installations the host fronts or runs an instance of (and of those a
// Back runs, only its own instances).
func desired(ix *index, host *fsm.Host) agentproto.DesiredState {
	st := ix.st
	d := agentproto.DesiredState{Index: st.Index, Host: wireHost(host), Peers: []agentproto.Peer{}, Instances: []agentproto.Instance{}, Routes: []agentproto.Route{}}
	for _, c := range st.SortedCoreNodes() {
		if c.PublicKey == "" || !c.TunnelAddr.IsValid() {
			continue
		}
		d.Peers = append(d.Peers, agentproto.Peer{Name: c.ID, Role: agentproto.RoleCore, PublicKey: c.PublicKey, TunnelAddr: c.TunnelAddr.String(), Endpoint: c.MeshEndpoint, Hub: true,
			AgentURL: "http://" + netip.AddrPortFrom(c.TunnelAddr, c.AgentPort).String()})
	}
	peerSet := map[string]bool{}
	addHostPeer := func(o *fsm.Host) {
		if o == nil || o.ID == host.ID || peerSet[o.ID] || o.Status == fsm.HostDecommissioned {
			return
		}
		peerSet[o.ID] = true
		p := agentproto.Peer{Name: o.Name, Role: string(o.Role), PublicKey: o.PublicKey, TunnelAddr: o.TunnelAddr.String()}
		if o.Role == fsm.RoleFront {
			p.Endpoint, p.Hub = o.Endpoint, true
		}
		d.Peers = append(d.Peers, p)
	}
	if host.Role == fsm.RoleFront {
		for _, name := range ix.frontsOf(host.ID) {
			inst := st.Installations[name]
			instances := ix.instancesOf(name)
			r := agentproto.Route{Installation: inst.Name, Domain: inst.Domain, Backends: make([]agentproto.Backend, 0, len(instances)), TLS: routeTLS(st, inst)}
			for _, in := range instances {
				b := st.Hosts[in.HostID]
				// A draining Back keeps serving until its replacement runs.
				if b == nil || (b.Status != fsm.HostReady && b.Status != fsm.HostDraining) || in.State == fsm.InstanceLost {
					continue
				}
				addHostPeer(b)
				r.Backends = append(r.Backends, agentproto.Backend{InstanceID: in.ID, Address: netip.AddrPortFrom(b.TunnelAddr, uint16(in.Port)).String(), State: in.State, Pipeline: b.HTTPGateway})
			}
			d.Routes = append(d.Routes, r)
		}
		return d
	}
	if host.Role != fsm.RoleBack {
		return d
	}
	names, on := ix.backOf(host.ID)
	for _, name := range names {
		inst := st.Installations[name]
		var allowed []string
		for _, f := range inst.FrontHosts {
			if fh := st.Hosts[f]; fh != nil {
				addHostPeer(fh)
				allowed = append(allowed, fh.TunnelAddr.String())
			}
		}
		sort.Strings(allowed)
		for ; len(on) > 0 && on[0].Installation < name; on = on[1:] {
		}
		for ; len(on) > 0 && on[0].Installation == name; on = on[1:] {
			in := on[0]
			// Each instance runs its own release's settings: during a
			// rollout a Back may hold both the old and the new.
			rel := st.InstanceRelease(in)
			ai := agentproto.Instance{
				ID: in.ID, Installation: inst.Name, App: rel.App, Port: in.Port, ContainerPort: rel.ContainerPort,
				MilliCPU: rel.PerInstance.MilliCPU, MemoryMB: rel.PerInstance.MemoryMB, Env: rel.Env,
				AllowedFrom: allowed, State: in.State, Release: rel.Version, Health: wireHealth(rel.Health),
			}
			if app := st.Apps[rel.App]; app != nil {
				if v, ok := app.At(rel.AppVersion); ok {
					ai.Image, ai.Digest = v.Image, v.Digest
					if v.Digest != "" {
						ai.BlobPath = agentproto.PathBlobs + v.Digest
						ai.ImageUncompressedBytes = v.UncompressedSize
					}
				}
			}
			d.Instances = append(d.Instances, ai)
		}
	}
	return d
}

func (h *Handler) getBlob(w http.ResponseWriter, r *http.Request, host *fsm.Host) {
	digest := r.PathValue("digest")
	if _, err := blobs.ParseDigest(digest); err != nil {
		jsonhttp.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	// A host may download only images of instances placed on it.
	allowed := false
	for _, in := range h.watch.desiredOf(h.watch.indexOf(h.cfg.State.State()), host).Instances {
		allowed = allowed || in.Digest == digest
	}
	if !allowed {
		jsonhttp.WriteError(w, http.StatusForbidden, "no instance on this host uses blob "+digest)
		return
	}
	f, size, err := h.cfg.Blobs.Open(digest)
	if err != nil {
		jsonhttp.WriteError(w, http.StatusServiceUnavailable, "blob not replicated to this core node yet; retry or ask another core node")
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	http.ServeContent(w, r, "", time.Time{}, f)
}

func (h *Handler) heartbeat(w http.ResponseWriter, r *http.Request, host *fsm.Host) {
	var req agentproto.HeartbeatRequest
	// An empty body is a heartbeat that reports no instances.
	if err := jsonhttp.Decode(w, r, &req, maxHeartbeatBytes); err != nil && !errors.Is(err, jsonhttp.ErrEmptyBody) {
		jsonhttp.WriteError(w, jsonhttp.StatusOf(err), "heartbeat: "+jsonhttp.MessageOf(err))
		return
	}
	if err := req.Check(); err != nil {
		jsonhttp.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := h.cfg.Heartbeat(r.Context(), host.ID, req.Instances); err != nil {
		jsonhttp.WriteError(w, deliveryStatus(err), fmt.Sprintf("heartbeat not recorded: %v", err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// deliveryStatus is the status an agent gets for a write the leader did not
// record: the leader's verdict on the request (relayed by a follower, or
// this node's own as the leader), else 503 so the agent retries.
func deliveryStatus(err error) int {
	if st, ok := api.RejectionStatus(err); ok {
		return st
	}
	if st := jsonhttp.StatusOf(err); st >= 400 && st < 500 {
		return st
	}
	return http.StatusServiceUnavailable
}

// writeGone tells the agent of a decommissioned host to stand down.
func writeGone(w http.ResponseWriter) {
	jsonhttp.WriteError(w, http.StatusGone, "this host was decommissioned: stop every instance and leave the mesh")
}

// wireHost is a host as the protocol describes it to agents.
func wireHost(h *fsm.Host) *agentproto.Host {
	return &agentproto.Host{ID: h.ID, Name: h.Name, Role: string(h.Role), PublicKey: h.PublicKey, TunnelAddr: h.TunnelAddr, Endpoint: h.Endpoint, Status: string(h.Status), HTTPGateway: h.HTTPGateway}
}

// wireHealth is a release's health check as the protocol carries it.
func wireHealth(h *fsm.HealthCheck) *agentproto.HealthCheck {
	if h == nil {
		return nil
	}
	c := *h // the same type: a copy, so no agent shares the state's
	return &c
}
