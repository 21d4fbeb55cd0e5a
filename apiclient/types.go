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
	ID          string     `json:"id"`
	Description string     `json:"description,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	Revoked     bool       `json:"revoked"`
	Token       string     `json:"token,omitempty"`
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
	Status       string    `json:"status"`
	TokenID      string    `json:"token_id"`
	RegisteredAt time.Time `json:"registered_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	Free         Resources `json:"free"`
	Instances    int       `json:"instances"`
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
	Name          string    `json:"name"`
	Image         string    `json:"image,omitempty"`
	Digest        string    `json:"digest,omitempty"`
	Size          int64     `json:"size,omitempty"`
	ContainerPort int       `json:"container_port,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UsedBy        []string  `json:"used_by"`
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
}

// Front is a Front host serving an installation.
type Front struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Endpoint string `json:"endpoint"`
	Status   string `json:"status"`
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
	URL           string            `json:"url"`
	Instances     []Instance        `json:"instances"`
	FrontDetails  []Front           `json:"front_details"`
}
