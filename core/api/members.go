package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/raft"

	"potluck/core/fsm"
	"potluck/internal/jsonhttp"
	"potluck/internal/version"
)

// This file lists the members of the raft group and retires a removed one:
// a node removed from the group must stop serving, or clients and hosts
// that still know its address would read a state that no longer changes.

// members is the raft configuration with what each node published.
func (s *Server) members(st *fsm.State) ([]NodeView, error) {
	servers, err := s.node.Servers()
	if err != nil {
		return nil, err
	}
	leader := s.node.Leader()
	out := []NodeView{}
	for _, srv := range servers {
		nv := NodeView{ID: string(srv.ID), RaftAddress: string(srv.Address), Leader: string(srv.ID) == leader, Voter: srv.Suffrage == raft.Voter}
		if c, ok := st.CoreNodes[nv.ID]; ok {
			nv.APIURL = c.APIURL
			if c.TunnelAddr.IsValid() {
				nv.TunnelAddr = c.TunnelAddr.String()
			}
			if c.Build != (version.Info{}) {
				b := c.Build
				nv.Build = &b
			}
		}
		out = append(out, nv)
	}
	return out, nil
}

// listMembers answers GET /v1/cluster/members from this node's raft
// configuration (like status, without a leader too).
func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) {
	nodes, err := s.members(s.node.State())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, nodes)
}

// tellRemoved lets a node just removed from the group know, so that it
// stops serving; best effort: a node that cannot be told stays without a
// leader (503) until its operator stops it.
func (s *Server) tellRemoved(ctx context.Context, id, apiURL, token string) {
	if id == s.node.ID() {
		s.markRemoved()
		return
	}
	if apiURL == "" {
		s.log.Warn("removed core node has no API address to tell; stop it by hand", "id", id)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := jsonhttp.Do(ctx, &http.Client{Transport: s.proxy.Transport}, jsonhttp.Request{
		Method: http.MethodPost, URL: apiURL + "/v1/internal/removed", Token: token, Body: map[string]string{"id": id},
	}, nil, 1<<16)
	if err != nil {
		s.log.Warn("could not tell the removed core node to stop serving; stop it by hand", "id", id, "err", err)
	}
}

// internalRemoved is the leader telling this node it was removed.
func (s *Server) internalRemoved(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID string `json:"id"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	if req.ID != s.node.ID() {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("this is core node %s, not %q", s.node.ID(), req.ID))
		return
	}
	// The node's own configuration may still list it: the leader stops
	// replicating to a server once it removes it, so the removal rarely
	// reaches the removed node. The operator token's word is taken.
	w.WriteHeader(http.StatusNoContent)
	s.markRemoved()
}

// markRemoved switches this node to answering 410, once.
func (s *Server) markRemoved() {
	if s.removed.Swap(true) {
		return
	}
	s.log.Warn("this core node was removed from the cluster: it serves nothing from now on")
	if s.cfg.OnRemoved != nil {
		go s.cfg.OnRemoved()
	}
}

func (s *Server) removedMessage() string {
	return fmt.Sprintf("core node %s was removed from the cluster and serves nothing; use another core node (to add this one again, empty its --data-dir and start it with --join)", s.node.ID())
}

// Removed reports whether this node was removed from the cluster.
func (s *Server) Removed() bool { return s.removed.Load() }
