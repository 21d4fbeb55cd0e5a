package api

import (
	"net/http"
	"strconv"

	"potluck/internal/version"
)

// NodeView is one core node in /v1/status.
type NodeView struct {
	ID          string `json:"id"`
	RaftAddress string `json:"raft_address"`
	APIURL      string `json:"api_url,omitempty"`
	TunnelAddr  string `json:"tunnel_address,omitempty"`
	Leader      bool   `json:"leader"`
	Voter       bool   `json:"voter"`
	// Build is the node's binary as it last published it (absent until it
	// has, or when it runs a version that does not).
	Build *version.Info `json:"build,omitempty"`
}

// StatusView is the body of GET /v1/status.
type StatusView struct {
	Node          string         `json:"node"`
	Build         version.Info   `json:"build"` // of the node answering
	RaftState     string         `json:"raft_state"`
	Leader        string         `json:"leader"`
	Health        string         `json:"health"` // ok | no_leader
	AppliedIndex  uint64         `json:"applied_index"`
	LastLogIndex  uint64         `json:"last_log_index"`
	StateIndex    uint64         `json:"state_index"`
	Nodes         []NodeView     `json:"nodes"`
	Hosts         map[string]int `json:"hosts"` // count by status
	Apps          int            `json:"apps"`
	Installations int            `json:"installations"`
	Instances     int            `json:"instances"`
}

// Health values of StatusView.
const (
	HealthOK       = "ok"
	HealthNoLeader = "no_leader"
)

// getStatus answers from this node alone: it is how an operator finds out
// which node leads, so it must not be forwarded.
func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	st := s.node.State()
	leader := s.node.Leader()
	rs := s.node.RaftStatus()
	v := StatusView{
		Node: s.node.ID(), Build: version.Get(), RaftState: rs.State, Leader: leader,
		Health: HealthOK, AppliedIndex: rs.AppliedIndex, LastLogIndex: rs.LastLogIndex,
		StateIndex: st.Index, Hosts: map[string]int{}, Apps: len(st.Apps),
		Installations: len(st.Installations), Instances: len(st.Instances),
	}
	if leader == "" {
		v.Health = HealthNoLeader
	}
	nodes, err := s.members(st)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	v.Nodes = nodes
	for _, h := range st.Hosts {
		v.Hosts[string(h.Status)]++
	}
	w.Header().Set(HeaderIndex, strconv.FormatUint(st.Index, 10))
	writeJSON(w, http.StatusOK, v)
}
