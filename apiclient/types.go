package apiclient

import (
	"time"

	"potluck/internal/version"
)

// These types mirror the JSON of docs/api.md. They are declared here rather
// than imported from the core so that the client has no core dependency.

// Resources are capacities or requirements (cpu in milli-CPUs, MiB).
type Resources struct {
	MilliCPU int64 `json:"milli_cpu"`
	MemoryMB int64 `json:"memory_mb"`
	DiskMB   int64 `json:"disk_mb"`
}

// Node is one core node in the status.
type Node struct {
	ID          string `json:"id"`
	RaftAddress string `json:"raft_address"`
	APIURL      string `json:"api_url,omitempty"`
	TunnelAddr  string `json:"tunnel_address,omitempty"`
	Leader      bool   `json:"leader"`
	Voter       bool   `json:"voter"`
	// Build is the node's binary as it last published it; nil for a node
	// that has not (yet).
	Build *version.Info `json:"build,omitempty"`
}

// Status is the answer of GET /v1/status.
type Status struct {
	Node          string         `json:"node"`
	Build         version.Info   `json:"build"` // of the node that answered
	RaftState     string         `json:"raft_state"`
	Leader        string         `json:"leader"`
	Health        string         `json:"health"`
	AppliedIndex  uint64         `json:"applied_index"`
	LastLogIndex  uint64         `json:"last_log_index"`
	StateIndex    uint64         `json:"state_index"`
	Nodes         []Node         `json:"nodes"`
	Hosts         map[string]int `json:"hosts"`
	Apps          int            `json:"apps"`
	Installations int            `json:"installations"`
	Instances     int            `json:"instances"`
}

// Token is a join token; Token (the secret) is set only when created.
type Token struct {
	ID            string     `json:"id"`
	Scope         string     `json:"scope,omitempty"` // join, app-owner or read-only
	Apps          []string   `json:"apps,omitempty"`
	Installations []string   `json:"installations,omitempty"`
	Description   string     `json:"description,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	Revoked       bool       `json:"revoked"`
	Token         string     `json:"token,omitempty"`
}

// Host is a registered Front or Back.
type Host struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Role         string    `json:"role"`
	PublicKey    string    `json:"public_key"`
	TunnelAddr   string    `json:"tunnel_address"`
	Capacity     Resources `json:"capacity"`
	Endpoint     string    `json:"endpoint,omitempty"`
	PublicURL    string    `json:"public_url,omitempty"` // a Front's address for clients
	Region       string    `json:"region,omitempty"`     // where the host is, as its operator declared
	Status       string    `json:"status"`
	TokenID      string    `json:"token_id"`
	RegisteredAt time.Time `json:"registered_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	Free         Resources `json:"free"`
	Instances    int       `json:"instances"`
	// LastHeartbeat is when the host last heartbeated to the leader (nil
	// when the leader has not heard from it since it was elected).
	LastHeartbeat *time.Time `json:"last_heartbeat,omitempty"`

	// Measured is what the host's agent measured (nil for older agents);
	// the core places no more than the smaller of it and Capacity.
	Measured *Resources `json:"measured,omitempty"`
	// Features installations can require or spread over: Arch and Storage
	// as the agent measured them, Region as the host declared it, Lender
	// and Labels as the operator set them. Empty: unknown.
	Arch    string            `json:"arch,omitempty"`
	Storage string            `json:"storage,omitempty"`
	Lender  string            `json:"lender,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// RegisterHostRequest is the body of POST /v1/hosts.
type RegisterHostRequest struct {
	Name      string  `json:"name"`
	Role      string  `json:"role"`
	PublicKey string  `json:"public_key"`
	CPUs      float64 `json:"cpus"`
	MemoryMB  int64   `json:"memory_mb"`
	DiskMB    int64   `json:"disk_mb"`
	Endpoint  string  `json:"endpoint,omitempty"`
}

// Registration answers POST /v1/hosts.
type Registration struct {
	Host         Host   `json:"host"`
	TunnelAddr   string `json:"tunnel_address"`
	TunnelPrefix string `json:"tunnel_prefix"`
}

// App is an uploaded tarball (Digest set) or an image reference.
type App struct {
	Name          string       `json:"name"`
	Image         string       `json:"image,omitempty"`
	Digest        string       `json:"digest,omitempty"`
	Size          int64        `json:"size,omitempty"`
	ContainerPort int          `json:"container_port,omitempty"`
	CreatedAt     time.Time    `json:"created_at"`
	UsedBy        []string     `json:"used_by"`
	Version       int          `json:"version,omitempty"`  // the newest version
	Versions      []AppVersion `json:"versions,omitempty"` // oldest first
}

// AppVersion is one pushed version of an app.
type AppVersion struct {
	Version       int       `json:"version"`
	Image         string    `json:"image,omitempty"`
	Digest        string    `json:"digest,omitempty"`
	Size          int64     `json:"size,omitempty"`
	ContainerPort int       `json:"container_port,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	// UncompressedSize is what an uploaded image unpacks to (counted at
	// upload; each instance reserves at least this much disk).
	UncompressedSize int64 `json:"uncompressed_size,omitempty"`
}

// HealthCheck is an installation's health check as the API takes it:
// durations as strings such as "10s"; zero fields for the defaults.
type HealthCheck struct {
	Path      string `json:"path,omitempty"`
	Interval  string `json:"interval,omitempty"`
	Timeout   string `json:"timeout,omitempty"`
	Healthy   int    `json:"healthy_threshold,omitempty"`
	Unhealthy int    `json:"unhealthy_threshold,omitempty"`
	Grace     string `json:"grace,omitempty"`
}

// DeployRequest is the body of POST /v1/installations/NAME/releases: a new
// release from the live one; zero fields keep its settings, Env (when not
// nil) replaces its environment.
type DeployRequest struct {
	App           string            `json:"app,omitempty"`
	AppVersion    int               `json:"app_version,omitempty"`
	CPUs          float64           `json:"cpus,omitempty"`
	MemoryMB      int64             `json:"memory_mb,omitempty"`
	DiskMB        int64             `json:"disk_mb,omitempty"`
	Env           map[string]string `json:"env,omitempty"`
	ContainerPort int               `json:"container_port,omitempty"`
	Health        *HealthCheck      `json:"health,omitempty"`
	Description   string            `json:"description,omitempty"`
}

// Release is one release of an installation as the core stores it (the
// installation's Releases). Health durations are in nanoseconds here.
type Release struct {
	Version       int               `json:"version"`
	App           string            `json:"app"`
	AppVersion    int               `json:"app_version,omitempty"`
	PerInstance   Resources         `json:"per_instance"`
	Env           map[string]string `json:"env,omitempty"`
	ContainerPort int               `json:"container_port"`
	Health        *struct {
		Path string `json:"path,omitempty"`
	} `json:"health,omitempty"`
	Status      string    `json:"status"`
	Message     string    `json:"message,omitempty"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// ListedRelease is a release as Client.Releases lists it: with whether it
// is the live one and how many of its instances exist and run.
type ListedRelease struct {
	Release
	Live      bool `json:"live"`
	Instances int  `json:"instances"`
	Running   int  `json:"running"`
}

// CreateInstallationRequest is the body of POST /v1/installations. Zero
// values are left to the server's defaults.
type CreateInstallationRequest struct {
	Name          string            `json:"name"`
	App           string            `json:"app"`
	Fronts        int               `json:"fronts"`
	Backs         int               `json:"backs"`
	Domain        string            `json:"domain"`
	CPUs          float64           `json:"cpus,omitempty"`
	MemoryMB      int64             `json:"memory_mb,omitempty"`
	DiskMB        int64             `json:"disk_mb,omitempty"`
	Env           map[string]string `json:"env,omitempty"`
	ContainerPort int               `json:"container_port,omitempty"`
	Health        *HealthCheck      `json:"health,omitempty"`
	Placement     *Placement        `json:"placement,omitempty"`
	TLS           *TLSRequest       `json:"tls,omitempty"` // acme or off; manual: SetInstallationTLS after
}

// Placement is where an installation's instances may go (docs/api.md).
type Placement struct {
	Policy     string            `json:"policy,omitempty"`   // spread or pack; "" = the cluster's
	Requires   map[string]string `json:"requires,omitempty"` // arch=amd64, storage=ssd, label=value
	Spread     []Spread          `json:"spread,omitempty"`
	MaxPerHost int               `json:"max_per_host,omitempty"`
}

// Spread: at most Max instances per value of the host feature By.
type Spread struct {
	By  string `json:"by"`
	Max int    `json:"max"`
}

// Instance is one container of an installation.
type Instance struct {
	ID           string    `json:"id"`
	Installation string    `json:"installation"`
	HostID       string    `json:"host_id"`
	Port         int       `json:"port"`
	State        string    `json:"state"`
	Message      string    `json:"message,omitempty"`
	App          string    `json:"app"`
	HostName     string    `json:"host_name"`
	TunnelAddr   string    `json:"tunnel_address"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	Release      int       `json:"release,omitempty"`
}

// Front is a Front host serving an installation.
type Front struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Endpoint  string `json:"endpoint"`             // WireGuard (UDP), for Backs
	PublicURL string `json:"public_url,omitempty"` // where clients reach it
	Status    string `json:"status"`
}

// Installation is an app placed on Fronts and Backs.
type Installation struct {
	Name          string            `json:"name"`
	App           string            `json:"app"`
	Fronts        int               `json:"fronts"`
	Backs         int               `json:"backs"`
	Domain        string            `json:"domain"`
	PerInstance   Resources         `json:"per_instance"`
	Env           map[string]string `json:"env,omitempty"`
	ContainerPort int               `json:"container_port"`
	FrontHosts    []string          `json:"front_hosts"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
	Release       int               `json:"release,omitempty"` // the live release
	AppVersion    int               `json:"app_version,omitempty"`
	Releases      []Release         `json:"releases,omitempty"` // oldest first
	URL           string            `json:"url"`
	Instances     []Instance        `json:"instances"`
	FrontDetails  []Front           `json:"front_details"`
	TLS           *TLSOptions       `json:"tls,omitempty"`
	TLSStatus     *TLSStatus        `json:"tls_status,omitempty"`
}
