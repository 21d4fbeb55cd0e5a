// Package agentproto is the wire protocol between a host agent (Front or
// Back) and the core: registration on the public API, and the agent API
// served on each core node's tunnel address (desired state by blocking
// query, heartbeats with instance reports, blob downloads). Both sides use
// these types, so the protocol is defined once; the package imports only the
// standard library, so an agent carries none of the control plane.
//
// Compatibility: field names and JSON tags are the protocol. Agents persist
// Registration-derived data (identity.json) and DesiredState (desired.json)
// across restarts and upgrades, so a change here must keep decoding what the
// previous release wrote (see testdata).
package agentproto

import (
	"fmt"
	"net/netip"
	"time"
)

// Paths and headers of the protocol.
const (
	// PathRegister is on the core's public API (authenticated by a join token).
	PathRegister = "/v1/hosts"
	// The agent API, on a core node's tunnel address. Callers are identified
	// by the WireGuard key of the tunnel peer, so they send no credential.
	PathState     = "/v1/agent/state"
	PathHeartbeat = "/v1/agent/heartbeat"
	PathBlobs     = "/v1/agent/blobs/" // + digest
	// HeaderIndex carries the raft index of a state, for blocking queries.
	HeaderIndex = "X-Potluck-Index"
	// HeaderRequestID makes a retried write apply once.
	HeaderRequestID = "X-Request-Id"
	// DefaultProbePort is the tunnel port where the core checks a new host
	// answers (GET /healthz) before it becomes ready.
	DefaultProbePort = 7401
	// PathLogs (+ instance id) is served by a Back on its probe port to
	// core nodes only: the instance's container log as text lines, each
	// starting with its RFC 3339 timestamp. Query: follow=true, since=RFC
	// 3339 time, tail=N (at most MaxLogTail).
	PathLogs = "/v1/logs/"
	// MaxLogTail bounds tail= of a log request.
	MaxLogTail = 10000
)

// Roles of mesh members.
const (
	RoleCore  = "core"
	RoleFront = "front"
	RoleBack  = "back"
)

// InstanceState is what the core knows about one container.
type InstanceState string

// Instance states. Pending: placed, not yet reported running by its Back.
// Lost: its Back is down and no other Back had room yet. Draining: a newer
// release replaced it; Fronts stop routing to it and its Back keeps it
// running until the core removes it. Lost and draining are the core's to
// decide; an agent never reports them.
const (
	InstancePending  InstanceState = "pending"
	InstanceRunning  InstanceState = "running"
	InstanceFailed   InstanceState = "failed"
	InstanceLost     InstanceState = "lost"
	InstanceDraining InstanceState = "draining"
)

// MaxReportMessage is the longest Message an agent may report.
const MaxReportMessage = 1024

// MaxReportsPerHeartbeat bounds the instance reports of one heartbeat.
const MaxReportsPerHeartbeat = 1024

// InstanceReport is a Back's word on one of its instances.
type InstanceReport struct {
	ID      string        `json:"id"`
	State   InstanceState `json:"state"`
	Message string        `json:"message,omitempty"`
}

// Check validates a report: only pending, running or failed, and a short
// message.
func (r InstanceReport) Check() error {
	switch r.State {
	case InstancePending, InstanceRunning, InstanceFailed:
	default:
		return fmt.Errorf("instance %s: state must be pending, running or failed", r.ID)
	}
	if len(r.Message) > MaxReportMessage {
		return fmt.Errorf("instance %s: message longer than %d bytes", r.ID, MaxReportMessage)
	}
	return nil
}

// HeartbeatRequest is the body of POST PathHeartbeat.
type HeartbeatRequest struct {
	Instances []InstanceReport `json:"instances"`
}

// Check validates a heartbeat as the core receives it.
func (h HeartbeatRequest) Check() error {
	if len(h.Instances) > MaxReportsPerHeartbeat {
		return fmt.Errorf("at most %d instance reports per heartbeat", MaxReportsPerHeartbeat)
	}
	for _, r := range h.Instances {
		if err := r.Check(); err != nil {
			return err
		}
	}
	return nil
}

// RegisterRequest is the body of POST PathRegister. CPUs, MemoryMB and
// DiskMB are what the lender declared (grants); Measured is what the agent
// found the machine has. An agent refuses to start when a declaration
// exceeds its measurement, and the core must never place beyond Measured
// either (a modified agent can lie in both, but not past the core's cap).
type RegisterRequest struct {
	Name      string  `json:"name"`
	Role      string  `json:"role"`
	PublicKey string  `json:"public_key"` // WireGuard, base64
	CPUs      float64 `json:"cpus"`
	MemoryMB  int64   `json:"memory_mb"`
	DiskMB    int64   `json:"disk_mb"`
	Endpoint  string  `json:"endpoint,omitempty"` // Fronts: public host:port for WireGuard UDP
	// PublicURL is where a Front serves the public, http(s)://host[:port]
	// (what app owners point DNS at); empty: not given.
	PublicURL string    `json:"public_url,omitempty"`
	Measured  *Capacity `json:"measured,omitempty"` // absent from agents before this field
	// Region is where the host is, as its operator declared it (e.g.
	// eu-west): the DNS answers a Front's clients nearest first by it, and
	// placement may spread by it. Empty: unknown.
	Region string `json:"region,omitempty"`
	// HTTPGateway: a Back that serves its instances' ports through its HTTP
	// gateway, which parses what Fronts send it, so Fronts may pipeline
	// requests to it. False: it relays bytes to the container (older Backs,
	// potluck-back --raw-relay).
	HTTPGateway bool `json:"http_gateway,omitempty"`
}

// Capacity is what a host has, as its agent measured it: CPUs and memory of
// the machine (a Back's: of its Docker Engine's machine), and disk free for
// Potluck (a Back's: under Docker's data root, counting its own images).
type Capacity struct {
	CPUs     float64 `json:"cpus"`
	MemoryMB int64   `json:"memory_mb"`
	DiskMB   int64   `json:"disk_mb"`
	// Arch is the CPU architecture in Go's names (amd64, arm64); Storage
	// is "ssd" or "hdd" for the disk Potluck uses. Empty: unknown (and
	// from agents before these fields). Installations can require both.
	Arch    string `json:"arch,omitempty"`
	Storage string `json:"storage,omitempty"`
}

// Host is a registered host as the core describes it to agents.
type Host struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	PublicKey  string     `json:"public_key"`
	TunnelAddr netip.Addr `json:"tunnel_address"`
	Endpoint   string     `json:"endpoint,omitempty"`
	Status     string     `json:"status"`
	// HTTPGateway: see RegisterRequest.HTTPGateway.
	HTTPGateway bool `json:"http_gateway,omitempty"`
}

// CorePeer is a core node as a mesh peer (a hub) of a host.
type CorePeer struct {
	ID         string `json:"id"`
	PublicKey  string `json:"public_key"`
	Endpoint   string `json:"endpoint"`
	TunnelAddr string `json:"tunnel_address"`
	AgentURL   string `json:"agent_url"`
}

// Registration answers POST PathRegister.
type Registration struct {
	Host         Host       `json:"host"`
	TunnelAddr   string     `json:"tunnel_address"`
	TunnelPrefix string     `json:"tunnel_prefix"`
	CorePeers    []CorePeer `json:"core_peers"`
}

// Peer is a mesh peer an agent must configure.
type Peer struct {
	Name       string `json:"name"`
	Role       string `json:"role"` // RoleCore, RoleFront or RoleBack
	PublicKey  string `json:"public_key"`
	TunnelAddr string `json:"tunnel_address"`
	Endpoint   string `json:"endpoint,omitempty"`  // empty: learn it from the peer's packets (NATed)
	Hub        bool   `json:"hub"`                 // initiate and keep alive (core nodes and Fronts)
	AgentURL   string `json:"agent_url,omitempty"` // core nodes: where the agent API is served on the tunnel
}

// CorePeer returns p as a core peer (meaningful when p.Role is RoleCore).
func (p Peer) CorePeer() CorePeer {
	return CorePeer{ID: p.Name, PublicKey: p.PublicKey, Endpoint: p.Endpoint, TunnelAddr: p.TunnelAddr, AgentURL: p.AgentURL}
}

// Instance is a container a Back must run.
type Instance struct {
	ID            string            `json:"id"`
	Installation  string            `json:"installation"`
	App           string            `json:"app"`
	Image         string            `json:"image"`
	Digest        string            `json:"digest,omitempty"`    // set when the image is an uploaded tarball
	BlobPath      string            `json:"blob_path,omitempty"` // GET this on the agent API to download it
	Port          int               `json:"port"`                // host port, exposed on the tunnel address
	ContainerPort int               `json:"container_port"`
	MilliCPU      int64             `json:"milli_cpu"`
	MemoryMB      int64             `json:"memory_mb"`
	Env           map[string]string `json:"env,omitempty"`
	AllowedFrom   []string          `json:"allowed_from"` // tunnel addresses of the installation's Fronts
	State         InstanceState     `json:"state"`
	// ReadOnlyRoot runs the container with a read-only root filesystem and
	// a writable tmpfs on /tmp (an installation option).
	ReadOnlyRoot bool `json:"read_only_root,omitempty"`
	// ImageUncompressedBytes is what the uploaded image unpacks to (the
	// core counts it at upload); a Back refuses an image that would not
	// fit before downloading it. 0: unknown (the Back counts it itself).
	ImageUncompressedBytes int64 `json:"image_uncompressed_bytes,omitempty"`
	// Release is the installation's release the instance runs.
	Release int `json:"release,omitempty"`
	// Health is how the Back checks the instance (nil: the defaults).
	Health *HealthCheck `json:"health,omitempty"`
}

// HealthCheck is how a Back checks an instance: GET Path every Interval,
// healthy when answered below 500 within Timeout; Unhealthy failures in a
// row make a running instance unhealthy (reported failed, Fronts stop
// routing to it), Healthy successes in a row healthy again. A starting
// instance has Grace to answer. Zero fields take the defaults below.
type HealthCheck struct {
	Path      string        `json:"path,omitempty"`
	Interval  time.Duration `json:"interval,omitempty"`
	Timeout   time.Duration `json:"timeout,omitempty"`
	Healthy   int           `json:"healthy_threshold,omitempty"`
	Unhealthy int           `json:"unhealthy_threshold,omitempty"`
	Grace     time.Duration `json:"grace,omitempty"`
}

// Health check defaults.
const (
	DefaultHealthPath     = "/"
	DefaultHealthInterval = 10 * time.Second
	DefaultHealthTimeout  = 2 * time.Second
	DefaultHealthyCount   = 1
	DefaultUnhealthyCount = 3
	DefaultHealthGrace    = 60 * time.Second
)

// WithDefaults returns h (nil allowed) with its zero fields set.
func (h *HealthCheck) WithDefaults() HealthCheck {
	var c HealthCheck
	if h != nil {
		c = *h
	}
	if c.Path == "" {
		c.Path = DefaultHealthPath
	}
	if c.Interval <= 0 {
		c.Interval = DefaultHealthInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultHealthTimeout
	}
	if c.Healthy <= 0 {
		c.Healthy = DefaultHealthyCount
	}
	if c.Unhealthy <= 0 {
		c.Unhealthy = DefaultUnhealthyCount
	}
	if c.Grace <= 0 {
		c.Grace = DefaultHealthGrace
	}
	return c
}

// Backend is one upstream of a route: an instance on a Back.
type Backend struct {
	InstanceID string        `json:"instance_id"`
	Address    string        `json:"address"` // tunnel address:port of the Back
	State      InstanceState `json:"state"`
	// Pipeline: the Back parses requests itself (RegisterRequest.HTTPGateway),
	// so the Front may pipeline them.
	Pipeline bool `json:"pipeline,omitempty"`
}

// Route is a domain a Front serves.
type Route struct {
	Installation string    `json:"installation"`
	Domain       string    `json:"domain"`
	Backends     []Backend `json:"backends"`
	// TLS: serve the domain over HTTPS too; nil: plain HTTP only.
	TLS *RouteTLS `json:"tls,omitempty"`
}

// DesiredState is everything an agent needs; Index is for blocking queries.
type DesiredState struct {
	Index     uint64     `json:"index"`
	Host      *Host      `json:"host"`
	Peers     []Peer     `json:"peers"`
	Instances []Instance `json:"instances"` // Backs
	Routes    []Route    `json:"routes"`    // Fronts
}

// Empty is the desired state of a host with nothing to do (standing down).
func Empty() *DesiredState {
	return &DesiredState{Peers: []Peer{}, Instances: []Instance{}, Routes: []Route{}}
}

// The certificate store on the agent API, for Fronts only: certmagic's
// storage (certificates, keys, ACME accounts, challenge tokens) kept by the
// core, so every Front of an installation serves the same certificate and
// any of them can answer a challenge.
const (
	// PathCerts + key: GET (value), PUT (body is the value), DELETE;
	// GET PathCerts?list=PREFIX[&recursive=true] lists keys (CertList);
	// GET PathCerts + key + "?stat=true" answers a CertStat.
	PathCerts = "/v1/agent/certs/"
	// PathCertLocks + name: POST takes the lock (?ttl=DURATION; 409 while
	// another Front holds it), DELETE releases it.
	PathCertLocks = "/v1/agent/cert-locks/"
	// PathTLSStatus: POST a TLSReport.
	PathTLSStatus = "/v1/agent/tls-status"
	// MaxCertValue bounds one stored value.
	MaxCertValue = 48 << 10
)

// RouteTLS is how a Front serves a route over HTTPS.
type RouteTLS struct {
	// Mode: "acme" (obtain and renew with the Front's ACME issuer) or
	// "manual" (the certificate at ManualKey in the store).
	Mode         string        `json:"mode"`
	RedirectHTTP bool          `json:"redirect_http,omitempty"`
	HSTSMaxAge   time.Duration `json:"hsts_max_age,omitempty"`
	// ManualKey is the store key of a manual certificate (PEM chain, key);
	// ManualModified changes when the operator uploads a new one.
	ManualKey      string    `json:"manual_key,omitempty"`
	ManualModified time.Time `json:"manual_modified,omitzero"`
}

// CertStat describes a stored value.
type CertStat struct {
	Key      string    `json:"key"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
	// Terminal is false for a "directory": a prefix with keys below it.
	Terminal bool `json:"terminal"`
}

// CertList answers a listing.
type CertList struct {
	Keys []string `json:"keys"`
}

// TLSReport is a Front's word on a domain's certificate.
type TLSReport struct {
	Domain      string     `json:"domain"`
	State       string     `json:"state"` // obtaining, valid, error
	Error       string     `json:"error,omitempty"`
	Issuer      string     `json:"issuer,omitempty"`
	NotAfter    *time.Time `json:"not_after,omitempty"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
}
