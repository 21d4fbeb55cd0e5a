// Package fsm holds Potluck's replicated control-plane state and the commands
// that change it. Apply is deterministic: every timestamp, id, port and
// placement decision arrives inside the command (chosen by the leader), maps are
// only walked in sorted order, and nothing here reads the clock or a random
// source. The same log therefore yields the same state on every core node.
package fsm

import (
	"net/netip"
	"sort"
	"time"

	"potluck/agentproto"
	"potluck/internal/version"
	"potluck/meshnet"
)

// Role of a host: a Front serves public traffic, a Back runs containers.
type Role string

// Host roles.
const (
	RoleFront Role = "front"
	RoleBack  Role = "back"
)

// HostStatus is the lifecycle state of a host.
type HostStatus string

// Host states. A host is Pending until the core has reached it over the
// tunnel, Ready while it heartbeats, Down when it missed heartbeats for the
// TTL, Draining while its instances' replacements start elsewhere (it keeps
// serving meanwhile and gets no new work), and Decommissioned once drained and
// removed from the mesh.
const (
	HostPending        HostStatus = "pending"
	HostReady          HostStatus = "ready"
	HostDown           HostStatus = "down"
	HostDraining       HostStatus = "draining"
	HostDecommissioned HostStatus = "decommissioned"
)

// InstanceState is what the core knows about one container of an
// installation; its values are part of the agent protocol.
type InstanceState = agentproto.InstanceState

// Instance states (see agentproto).
const (
	InstancePending = agentproto.InstancePending
	InstanceRunning = agentproto.InstanceRunning
	InstanceFailed  = agentproto.InstanceFailed
	InstanceLost    = agentproto.InstanceLost
)

// Resources are declared capacities or requirements. CPU is in milli-CPUs so
// the state holds integers only.
type Resources struct {
	MilliCPU int64 `json:"milli_cpu"`
	MemoryMB int64 `json:"memory_mb"`
	DiskMB   int64 `json:"disk_mb"`
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{r.MilliCPU + o.MilliCPU, r.MemoryMB + o.MemoryMB, r.DiskMB + o.DiskMB}
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{r.MilliCPU - o.MilliCPU, r.MemoryMB - o.MemoryMB, r.DiskMB - o.DiskMB}
}

// Fits reports whether need fits into r.
func (r Resources) Fits(need Resources) bool {
	return need.MilliCPU <= r.MilliCPU && need.MemoryMB <= r.MemoryMB && need.DiskMB <= r.DiskMB
}

// Host is a registered Front or Back.
type Host struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Role         Role       `json:"role"`
	PublicKey    string     `json:"public_key"` // WireGuard key, base64
	TunnelAddr   netip.Addr `json:"tunnel_address"`
	Capacity     Resources  `json:"capacity"`
	Endpoint     string     `json:"endpoint,omitempty"` // public host:port of a Front
	Status       HostStatus `json:"status"`
	TokenID      string     `json:"token_id"` // join token used to register
	RegisteredAt time.Time  `json:"registered_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
}

// CoreNode is one member of the raft group as seen by hosts and peers: where
// its API is, and how to reach it on the mesh.
type CoreNode struct {
	ID           string     `json:"id"`
	APIURL       string     `json:"api_url"`
	RaftAddr     string     `json:"raft_address"`
	PublicKey    string     `json:"public_key,omitempty"`
	MeshEndpoint string     `json:"mesh_endpoint,omitempty"` // UDP host:port
	TunnelAddr   netip.Addr `json:"tunnel_address"`
	AgentPort    uint16     `json:"agent_port,omitempty"`
	// Build is the node's binary (version, commit, Go), as it published it
	// at its last start: how a rolling upgrade is followed.
	Build     version.Info `json:"build,omitzero"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// App is an uploaded image tarball (Digest set) or an image reference.
type App struct {
	Name          string    `json:"name"`
	Image         string    `json:"image,omitempty"`  // registry reference, or the tag inside the tarball
	Digest        string    `json:"digest,omitempty"` // sha256:<hex> of the uploaded tarball
	Size          int64     `json:"size,omitempty"`
	ContainerPort int       `json:"container_port,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
}

// Installation is a running app: N Fronts route Domain to M Back instances.
type Installation struct {
	Name          string            `json:"name"`
	App           string            `json:"app"`
	Fronts        int               `json:"fronts"`
	Backs         int               `json:"backs"`
	Domain        string            `json:"domain"`
	PerInstance   Resources         `json:"per_instance"`
	Env           map[string]string `json:"env,omitempty"`
	ContainerPort int               `json:"container_port"`
	FrontHosts    []string          `json:"front_hosts"` // host ids, sorted
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
}

// Instance is one container of an installation placed on a Back.
type Instance struct {
	ID           string        `json:"id"`
	Installation string        `json:"installation"`
	HostID       string        `json:"host_id"`
	Port         int           `json:"port"`
	State        InstanceState `json:"state"`
	Message      string        `json:"message,omitempty"`
	CreatedAt    time.Time     `json:"created_at"`
	UpdatedAt    time.Time     `json:"updated_at"`
}

// JoinToken lets a host register. Only the sha256 of the secret is stored.
type JoinToken struct {
	ID          string     `json:"id"`
	Hash        string     `json:"hash"` // hex sha256 of the secret
	Description string     `json:"description,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	Revoked     bool       `json:"revoked"`
}

// RequestRecord remembers the outcome of an applied request id so a retried
// write is answered from here instead of being applied twice.
type RequestRecord struct {
	ID    string `json:"id"`
	Index uint64 `json:"index"`
	Code  Code   `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	Ref   string `json:"ref,omitempty"` // name or id of the object the request produced
}

// MaxRequestRecords bounds the dedupe window (oldest forgotten first).
const MaxRequestRecords = 8192

// State is the whole replicated state. It is serialised as JSON for snapshots;
// encoding/json writes map keys sorted, so snapshots are byte-identical too.
type State struct {
	Index             uint64                   `json:"index"`
	OperatorTokenHash string                   `json:"operator_token_hash,omitempty"`
	Hosts             map[string]*Host         `json:"hosts"`
	CoreNodes         map[string]*CoreNode     `json:"core_nodes"`
	Apps              map[string]*App          `json:"apps"`
	Installations     map[string]*Installation `json:"installations"`
	Instances         map[string]*Instance     `json:"instances"`
	Tokens            map[string]*JoinToken    `json:"tokens"`
	// Addresses hands out hosts' tunnel addresses, next-fit: an address
	// freed by a decommissioned host is not reused until the range wraps,
	// so no stale peer entry meets a new host at its old address. Nil until
	// the first host registers (and in snapshots from before it existed).
	Addresses    *meshnet.Allocator       `json:"addresses,omitempty"`
	Requests     map[string]RequestRecord `json:"requests"`
	RequestOrder []string                 `json:"request_order"`
}

// NewState returns an empty state.
func NewState() *State {
	return &State{
		Hosts:         map[string]*Host{},
		CoreNodes:     map[string]*CoreNode{},
		Apps:          map[string]*App{},
		Installations: map[string]*Installation{},
		Instances:     map[string]*Instance{},
		Tokens:        map[string]*JoinToken{},
		Requests:      map[string]RequestRecord{},
	}
}

// Clone copies the whole state. Published states are never modified, so a
// reader may keep using a *State it obtained without holding any lock.
func (s *State) Clone() *State {
	c := *s
	if s.Addresses != nil {
		c.Addresses = s.Addresses.Clone()
	}
	c.Requests = make(map[string]RequestRecord, len(s.Requests)+1)
	for k, v := range s.Requests {
		c.Requests[k] = v
	}
	c.RequestOrder = append([]string(nil), s.RequestOrder...)
	c.Hosts = make(map[string]*Host, len(s.Hosts))
	for k, v := range s.Hosts {
		cp := *v
		c.Hosts[k] = &cp
	}
	c.CoreNodes = make(map[string]*CoreNode, len(s.CoreNodes))
	for k, v := range s.CoreNodes {
		cp := *v
		c.CoreNodes[k] = &cp
	}
	c.Apps = make(map[string]*App, len(s.Apps))
	for k, v := range s.Apps {
		cp := *v
		c.Apps[k] = &cp
	}
	c.Installations = make(map[string]*Installation, len(s.Installations))
	for k, v := range s.Installations {
		cp := *v
		cp.FrontHosts = append([]string(nil), v.FrontHosts...)
		c.Installations[k] = &cp
	}
	c.Instances = make(map[string]*Instance, len(s.Instances))
	for k, v := range s.Instances {
		cp := *v
		c.Instances[k] = &cp
	}
	c.Tokens = make(map[string]*JoinToken, len(s.Tokens))
	for k, v := range s.Tokens {
		cp := *v
		c.Tokens[k] = &cp
	}
	return &c
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// HostByName finds a host by name. A name can be reused after its host was
// decommissioned, so a live host wins over decommissioned ones.
func (s *State) HostByName(name string) *Host {
	var gone *Host
	for _, id := range sortedKeys(s.Hosts) {
		h := s.Hosts[id]
		if h.Name != name {
			continue
		}
		if h.Status != HostDecommissioned {
			return h
		}
		if gone == nil {
			gone = h
		}
	}
	return gone
}

// HostByKey finds a host by WireGuard public key.
func (s *State) HostByKey(key string) *Host {
	for _, id := range sortedKeys(s.Hosts) {
		if s.Hosts[id].PublicKey == key {
			return s.Hosts[id]
		}
	}
	return nil
}

// SortedHosts returns hosts ordered by id.
func (s *State) SortedHosts() []*Host {
	out := make([]*Host, 0, len(s.Hosts))
	for _, id := range sortedKeys(s.Hosts) {
		out = append(out, s.Hosts[id])
	}
	return out
}

// SortedCoreNodes returns core nodes ordered by id.
func (s *State) SortedCoreNodes() []*CoreNode {
	out := make([]*CoreNode, 0, len(s.CoreNodes))
	for _, id := range sortedKeys(s.CoreNodes) {
		out = append(out, s.CoreNodes[id])
	}
	return out
}

// SortedApps returns apps ordered by name.
func (s *State) SortedApps() []*App {
	out := make([]*App, 0, len(s.Apps))
	for _, k := range sortedKeys(s.Apps) {
		out = append(out, s.Apps[k])
	}
	return out
}

// SortedInstallations returns installations ordered by name.
func (s *State) SortedInstallations() []*Installation {
	out := make([]*Installation, 0, len(s.Installations))
	for _, k := range sortedKeys(s.Installations) {
		out = append(out, s.Installations[k])
	}
	return out
}

// SortedInstances returns instances ordered by id.
func (s *State) SortedInstances() []*Instance {
	out := make([]*Instance, 0, len(s.Instances))
	for _, k := range sortedKeys(s.Instances) {
		out = append(out, s.Instances[k])
	}
	return out
}

// SortedTokens returns join tokens ordered by id.
func (s *State) SortedTokens() []*JoinToken {
	out := make([]*JoinToken, 0, len(s.Tokens))
	for _, k := range sortedKeys(s.Tokens) {
		out = append(out, s.Tokens[k])
	}
	return out
}

// InstancesOf returns the instances of one installation, ordered by id.
func (s *State) InstancesOf(installation string) []*Instance {
	var out []*Instance
	for _, in := range s.SortedInstances() {
		if in.Installation == installation {
			out = append(out, in)
		}
	}
	return out
}

// InstancesOn returns the instances placed on one host, ordered by id.
func (s *State) InstancesOn(hostID string) []*Instance {
	var out []*Instance
	for _, in := range s.SortedInstances() {
		if in.HostID == hostID {
			out = append(out, in)
		}
	}
	return out
}

// Used returns what the instances on a host reserve.
func (s *State) Used(hostID string) Resources {
	var used Resources
	for _, in := range s.InstancesOn(hostID) {
		if inst := s.Installations[in.Installation]; inst != nil {
			used = used.Add(inst.PerInstance)
		}
	}
	return used
}

// UsedPorts returns the ports taken on a host.
func (s *State) UsedPorts(hostID string) map[int]bool {
	ports := map[int]bool{}
	for _, in := range s.InstancesOn(hostID) {
		ports[in.Port] = true
	}
	return ports
}

// UsedTunnelAddrs returns every tunnel address held by a host or core node.
func (s *State) UsedTunnelAddrs() map[netip.Addr]bool {
	used := map[netip.Addr]bool{}
	for _, h := range s.Hosts {
		if h.Status != HostDecommissioned && h.TunnelAddr.IsValid() {
			used[h.TunnelAddr] = true
		}
	}
	for _, c := range s.CoreNodes {
		if c.TunnelAddr.IsValid() {
			used[c.TunnelAddr] = true
		}
	}
	return used
}

// AppInUse returns the installations that use an app, sorted.
func (s *State) AppInUse(app string) []string {
	var out []string
	for _, inst := range s.SortedInstallations() {
		if inst.App == app {
			out = append(out, inst.Name)
		}
	}
	return out
}
