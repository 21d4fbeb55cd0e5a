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
	// InstanceDraining: replaced by a newer release; Fronts no longer route
	// to it and the leader removes it once in-flight requests had time.
	InstanceDraining = agentproto.InstanceDraining
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
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       Role       `json:"role"`
	PublicKey  string     `json:"public_key"` // WireGuard key, base64
	TunnelAddr netip.Addr `json:"tunnel_address"`
	Capacity   Resources  `json:"capacity"`
	Endpoint   string     `json:"endpoint,omitempty"` // public host:port of a Front (WireGuard, UDP)
	// PublicURL is where a Front serves the public (http(s)://host[:port]):
	// the address app owners point their DNS at.
	PublicURL    string     `json:"public_url,omitempty"`
	Status       HostStatus `json:"status"`
	TokenID      string     `json:"token_id"` // join token used to register, or OperatorTokenID
	RegisteredAt time.Time  `json:"registered_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	// Measured is what the host's agent measured the machine has (nil from
	// agents that predate it). Placement uses Schedulable, never more.
	Measured *Resources `json:"measured,omitempty"`

	// Features that installations can require (Placement.Requires) or
	// spread over (Placement.Spread). Empty means unknown: a requirement on
	// it is not met, and for spreading all unknown hosts count as one group.
	// Maps here are replaced whole, never modified in place, so Clone may
	// share them.
	Arch    string            `json:"arch,omitempty"`    // CPU architecture, GOARCH names: amd64, arm64
	Storage string            `json:"storage,omitempty"` // storage type: ssd, hdd, nvme
	Region  string            `json:"region,omitempty"`
	Lender  string            `json:"lender,omitempty"` // who lends the host
	Labels  map[string]string `json:"labels,omitempty"` // set by the operator
	// HTTPGateway: a Back whose ports parse pipelined requests
	// (agentproto.RegisterRequest.HTTPGateway), as its agent last said.
	HTTPGateway bool `json:"http_gateway,omitempty"`
}

// Schedulable is what the scheduler may place on h: its declared capacity,
// capped by what its agent measured (declared alone for older agents).
func (h *Host) Schedulable() Resources {
	c := h.Capacity
	if m := h.Measured; m != nil {
		c = Resources{min(c.MilliCPU, m.MilliCPU), min(c.MemoryMB, m.MemoryMB), min(c.DiskMB, m.DiskMB)}
	}
	return c
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
	// UncompressedSize is what an uploaded image unpacks to on a Back
	// (counted at upload); 0 for image references and older uploads.
	UncompressedSize int64 `json:"uncompressed_size,omitempty"`
	// Version is the newest version's number (0 for apps from before
	// versions: their only version, 1); the fields above describe it.
	Version int `json:"version,omitempty"`
	// Versions are the versions kept, oldest first, the newest included.
	// The slice is replaced, never changed in place, so Clone shares it.
	Versions []AppVersion `json:"versions,omitempty"`
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
	// The live release: App, PerInstance, Env, ContainerPort above and
	// AppVersion, Health here are its settings. 0 for installations from
	// before releases (their only release, 1).
	Release    int          `json:"release,omitempty"`
	AppVersion int          `json:"app_version,omitempty"`
	Health     *HealthCheck `json:"health,omitempty"`
	// Releases are the releases remembered, oldest first (at most
	// MaxReleases); empty for installations from before releases. The
	// slice and its releases are replaced, never changed in place, so
	// Clone shares them.
	Releases []*Release `json:"releases,omitempty"`
	// Placement says where the instances may go; nil places them by the
	// cluster's policy with no requirement, one per Back.
	Placement *Placement `json:"placement,omitempty"`
	// Deleting: routes are gone and the instances drain; the leader
	// deletes the installation when they have (CmdRetireInstallation).
	Deleting bool `json:"deleting,omitempty"`
	// Autoscale is its autoscaling policy; nil: never set (off).
	Autoscale *Autoscale `json:"autoscale,omitempty"`
	// TLS: HTTPS for the domain (certs.go); nil: plain HTTP only.
	TLS *TLSOptions `json:"tls,omitempty"`
}

// Placement is an installation's requirements, constraints and policy.
// It is replaced whole, never modified in place, so Clone may share it.
type Placement struct {
	// Policy overrides State.PlacementPolicy for this installation
	// (scheduler.PolicySpread, scheduler.PolicyPack); empty inherits it.
	Policy string `json:"policy,omitempty"`
	// Requires lists host features an instance needs, e.g. arch=amd64,
	// storage=ssd; other keys name Host.Labels. All must match exactly.
	Requires map[string]string `json:"requires,omitempty"`
	// Spread caps how many instances share one value of a host feature,
	// e.g. at most 1 per lender, at most 2 per region.
	Spread []SpreadConstraint `json:"spread,omitempty"`
	// MaxPerHost is how many instances may share one Back; 0 or 1 keeps
	// the default of one per Back.
	MaxPerHost int `json:"max_per_host,omitempty"`
}

// Placement policies: the names State.PlacementPolicy and Placement.Policy
// may hold ("" inherits). What they do is the scheduler's (its PolicySpread
// and PolicyPack are these).
const (
	PolicySpread = "spread"
	PolicyPack   = "pack"
)

// SpreadConstraint: at most Max instances per distinct value of the host
// feature By (lender, region, arch, storage or a label key).
type SpreadConstraint struct {
	By  string `json:"by"`
	Max int    `json:"max"`
}

// PerHostLimit is how many instances of the installation may share a Back.
func (in *Installation) PerHostLimit() int {
	if in == nil || in.Placement == nil || in.Placement.MaxPerHost < 1 {
		return 1
	}
	return in.Placement.MaxPerHost
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
	// Release is the installation's release this instance runs (0 from
	// before releases: the live one).
	Release int `json:"release,omitempty"`
}

// TokenScope is what a token (other than the operator's) may do.
type TokenScope string

// Token scopes. A join token registers hosts; an app-owner token reads and
// changes only its named apps and installations (and may create
// installations of its apps); a read-only token may only read.
const (
	ScopeJoin     TokenScope = "join"
	ScopeAppOwner TokenScope = "app-owner"
	ScopeReadOnly TokenScope = "read-only"
)

// OperatorTokenID is the TokenID of a host registered with the operator
// token (or by a core node) instead of a join token.
const OperatorTokenID = "operator"

// JoinToken is a token other than the operator's: a join token, or a
// scoped one for app owners and readers. Only the sha256 of the secret is
// stored.
type JoinToken struct {
	ID          string     `json:"id"`
	Hash        string     `json:"hash"` // hex sha256 of the secret
	Description string     `json:"description,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	Revoked     bool       `json:"revoked"`
	// Scope is empty for join tokens (and every token made before scopes).
	Scope         TokenScope `json:"scope,omitempty"`
	Apps          []string   `json:"apps,omitempty"`          // app-owner: the apps it owns
	Installations []string   `json:"installations,omitempty"` // app-owner: further installations it owns
}

// ScopeOrJoin is the token's scope, ScopeJoin when none is stored.
func (t *JoinToken) ScopeOrJoin() TokenScope {
	if t.Scope == "" {
		return ScopeJoin
	}
	return t.Scope
}

// Usable reports whether the token is neither revoked nor expired at now.
func (t *JoinToken) Usable(now time.Time) bool {
	return !t.Revoked && (t.ExpiresAt == nil || now.Before(*t.ExpiresAt))
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
	Index             uint64 `json:"index"`
	OperatorTokenHash string `json:"operator_token_hash,omitempty"`
	// PreviousOperatorTokenHash keeps working until PreviousOperatorUntil
	// after a rotation, so clients move to the new token without downtime.
	PreviousOperatorTokenHash string                   `json:"previous_operator_token_hash,omitempty"`
	PreviousOperatorUntil     *time.Time               `json:"previous_operator_until,omitempty"`
	Hosts                     map[string]*Host         `json:"hosts"`
	CoreNodes                 map[string]*CoreNode     `json:"core_nodes"`
	Apps                      map[string]*App          `json:"apps"`
	Installations             map[string]*Installation `json:"installations"`
	Instances                 map[string]*Instance     `json:"instances"`
	Tokens                    map[string]*JoinToken    `json:"tokens"`
	// Addresses hands out hosts' tunnel addresses, next-fit: an address
	// freed by a decommissioned host is not reused until the range wraps,
	// so no stale peer entry meets a new host at its old address. Nil until
	// the first host registers (and in snapshots from before it existed).
	Addresses    *meshnet.Allocator       `json:"addresses,omitempty"`
	Requests     map[string]RequestRecord `json:"requests"`
	RequestOrder []string                 `json:"request_order"`
	// PlacementPolicy is the cluster's placement policy for installations
	// that name none; empty means scheduler.PolicySpread.
	PlacementPolicy string `json:"placement_policy,omitempty"`
	// UISessions are the web UI's sessions by the hash of their id (see
	// uisessions.go); nil until the first login. The map is replaced whole
	// when it changes, so Clone shares it.
	UISessions map[string]*UISession `json:"ui_sessions,omitempty"`
	// The certificate store (certs.go): sealed values by key, locks, and
	// the Fronts' reports per domain. Each map is replaced whole on change,
	// so Clone shares them.
	Certs     map[string]*CertEntry `json:"certs,omitempty"`
	CertLocks map[string]*CertLock  `json:"cert_locks,omitempty"`
	TLSStatus map[string]*TLSStatus `json:"tls_status,omitempty"`

	// Derived, never serialised: the usage index (usage.go), what the
	// batch that made this state wrote (changes.go) and, on a working copy,
	// what it copied already (fork.go).
	usage   *usage
	changes *changeNode
	w       *writeSet
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
	// A clone is for its holder to change at will, which the index would
	// not follow: it answers from walks.
	c.usage, c.w, c.changes = nil, nil, nil
	if s.Addresses != nil {
		c.Addresses = s.Addresses.Clone()
	}
	c.Requests = make(map[string]RequestRecord, len(s.Requests)+1)
	for k, v := range s.Requests {
		c.Requests[k] = v
	}
	c.RequestOrder = append([]string(nil), s.RequestOrder...)
	c.Hosts = copyEntities(s.Hosts)
	c.Instances = copyEntities(s.Instances)
	c.Installations = copyEntities(s.Installations)
	for _, inst := range c.Installations {
		inst.FrontHosts = append([]string(nil), inst.FrontHosts...)
	}
	s.copySmallMaps(&c)
	return &c
}

// without is a copy of m without key: published maps are never changed in
// place.
func without[V any](m map[string]V, key string) map[string]V {
	out := make(map[string]V, len(m))
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
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
// decommissioned, so a live host wins over decommissioned ones (the lowest
// id among several). One pass, no sort: it runs on every registration.
func (s *State) HostByName(name string) *Host {
	var live, gone *Host
	for id, h := range s.Hosts {
		if h.Name != name {
			continue
		}
		if h.Status != HostDecommissioned {
			if live == nil || id < live.ID {
				live = h
			}
		} else if gone == nil || id < gone.ID {
			gone = h
		}
	}
	if live != nil {
		return live
	}
	return gone
}

// HostByKey finds a host by WireGuard public key (the lowest id if several).
func (s *State) HostByKey(key string) *Host {
	var found *Host
	for id, h := range s.Hosts {
		if h.PublicKey == key && (found == nil || id < found.ID) {
			found = h
		}
	}
	return found
}

// CoreNodeByKey finds a core node by WireGuard public key.
func (s *State) CoreNodeByKey(key string) *CoreNode {
	var found *CoreNode
	for id, c := range s.CoreNodes {
		if c.PublicKey != "" && c.PublicKey == key && (found == nil || id < found.ID) {
			found = c
		}
	}
	return found
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
// One pass over the instances, sorting only the matches.
func (s *State) InstancesOf(installation string) []*Instance {
	if s.indexed() {
		return s.Usage().Of(installation)
	}
	return s.instancesWhere(func(in *Instance) bool { return in.Installation == installation })
}

// InstancesByInstallation groups the instances by installation, each group
// ordered by id: one walk for a loop over all installations, where
// InstancesOf in the loop would walk every instance once per installation.
func (s *State) InstancesByInstallation() map[string][]*Instance {
	of := make(map[string][]*Instance, len(s.Installations))
	for _, in := range s.Instances {
		of[in.Installation] = append(of[in.Installation], in)
	}
	for _, list := range of {
		sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	}
	return of
}

// InstancesOn returns the instances placed on one host, ordered by id.
func (s *State) InstancesOn(hostID string) []*Instance {
	if s.indexed() {
		return s.Usage().On(hostID)
	}
	return s.instancesWhere(func(in *Instance) bool { return in.HostID == hostID })
}

func (s *State) instancesWhere(match func(*Instance) bool) []*Instance {
	var out []*Instance
	for _, in := range s.Instances {
		if match(in) {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Need is what one instance of inst reserves on a Back for placement: its
// declared resources, with at least the disk its image unpacks to.
func (s *State) Need(inst *Installation) Resources {
	return s.releaseNeed(inst.App, inst.AppVersion, inst.PerInstance)
}

// InstanceNeed is what one placed instance reserves: its release's
// resources, with disk at least what that release's image unpacks to.
func (s *State) InstanceNeed(in *Instance) Resources {
	if r := s.InstanceRelease(in); r != nil {
		return s.ReleaseNeed(r)
	}
	return Resources{}
}

// ReleaseNeed is what one instance of release r reserves.
func (s *State) ReleaseNeed(r *Release) Resources {
	return s.releaseNeed(r.App, r.AppVersion, r.PerInstance)
}

func (s *State) releaseNeed(app string, version int, per Resources) Resources {
	if a := s.Apps[app]; a != nil {
		if v, ok := a.At(version); ok && v.UncompressedSize > 0 {
			per.DiskMB = max(per.DiskMB, (v.UncompressedSize+(1<<20)-1)>>20)
		}
	}
	return per
}

// Reserved is what the instances on a host reserve for placement
// (InstanceNeed of each), where Used counts declared resources only.
func (s *State) Reserved(hostID string) Resources {
	if s.indexed() {
		return s.Usage().Host(hostID).Reserved
	}
	var used Resources
	for _, in := range s.InstancesOn(hostID) {
		used = used.Add(s.InstanceNeed(in))
	}
	return used
}

// Used is what the instances on a host declare (their releases'
// PerInstance, no image disk): what checkInvariants keeps within the host's
// declared capacity. Placement goes by Reserved.
func (s *State) Used(hostID string) Resources {
	var used Resources
	for _, in := range s.InstancesOn(hostID) {
		if r := s.InstanceRelease(in); r != nil {
			used = used.Add(r.PerInstance)
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
