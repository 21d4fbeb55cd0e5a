package api

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"time"

	"potluck/agentproto"
	"potluck/core/fsm"
)

// This file serves the calls about the core cluster itself: raft
// membership, the records core nodes publish about themselves, and the
// heartbeats followers pass on to the leader.

// nodeIDPattern is a raft server id (a node's --id).
var nodeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

type addVoterRequest struct {
	ID          string `json:"id"`
	RaftAddress string `json:"raft_address"`
}

func (req *addVoterRequest) check() error {
	if !nodeIDPattern.MatchString(req.ID) {
		return errors.New("id must be 1-64 of A-Za-z0-9._- (the new node's --id)")
	}
	if _, _, err := net.SplitHostPort(req.RaftAddress); err != nil {
		return errors.New("raft_address must be the new node's raft host:port")
	}
	return nil
}

func (s *Server) addVoter(w http.ResponseWriter, r *http.Request) {
	var req addVoterRequest
	if !s.decode(w, r, &req) {
		return
	}
	if err := req.check(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	servers, err := s.node.Servers()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	for _, srv := range servers {
		if string(srv.ID) == req.ID && string(srv.Address) != req.RaftAddress {
			writeError(w, http.StatusConflict, fmt.Sprintf("node %q is already a member at %s; remove it first", req.ID, srv.Address))
			return
		}
		if string(srv.ID) != req.ID && string(srv.Address) == req.RaftAddress {
			writeError(w, http.StatusConflict, fmt.Sprintf("raft address %s belongs to node %q", req.RaftAddress, srv.ID))
			return
		}
	}
	if err := s.node.AddVoter(req.ID, req.RaftAddress); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	s.log.Info("added raft voter", "id", req.ID, "raft_address", req.RaftAddress)
	s.getStatus(w, r)
}

func (s *Server) removeVoter(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	servers, err := s.node.Servers()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	found := false
	for _, srv := range servers {
		found = found || string(srv.ID) == id
	}
	if !found {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no raft member %q", id))
		return
	}
	if len(servers) == 1 {
		writeError(w, http.StatusConflict, "cannot remove the only member of the group")
		return
	}
	if err := s.node.RemoveServer(id); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	var apiURL string
	if rec, ok := s.node.State().CoreNodes[id]; ok {
		apiURL = rec.APIURL
	}
	// Hosts stop peering with it once its record is gone.
	if _, ok := s.node.State().CoreNodes[id]; ok && s.node.IsLeader() {
		res, err := s.node.Decide(r.Context(), "", func(st *fsm.State, now time.Time) (*fsm.Command, error) {
			if _, ok := st.CoreNodes[id]; !ok {
				return nil, nil
			}
			return &fsm.Command{Type: fsm.CmdRemoveCoreNode, Name: id}, nil
		})
		if err == nil && res.Err != nil {
			err = res.Err
		}
		if err != nil {
			s.log.Warn("remove core node record", "id", id, "err", err)
		}
	}
	s.log.Info("removed raft member", "id", id)
	w.WriteHeader(http.StatusNoContent)
	s.tellRemoved(r.Context(), id, apiURL, bearer(r))
}

// upsertCoreNode records where a core node's API and mesh endpoint are
// (each node publishes its own record at start).
func (s *Server) upsertCoreNode(w http.ResponseWriter, r *http.Request) {
	var req fsm.CoreNode
	if !s.decode(w, r, &req) {
		return
	}
	if req.ID == "" || req.APIURL == "" {
		writeError(w, http.StatusBadRequest, "core node needs id and api_url")
		return
	}
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		return &fsm.Command{Type: fsm.CmdUpsertCoreNode, CoreNode: &req}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	writeJSON(w, http.StatusOK, s.node.State().CoreNodes[req.ID])
}

// HeartbeatRequest is what a follower forwards for an agent.
type HeartbeatRequest struct {
	HostID    string                      `json:"host_id"`
	Instances []agentproto.InstanceReport `json:"instances"`
}

func (s *Server) internalHeartbeat(w http.ResponseWriter, r *http.Request) {
	var req HeartbeatRequest
	if !s.decode(w, r, &req) {
		return
	}
	if s.cfg.Heartbeat == nil {
		writeError(w, http.StatusNotImplemented, "heartbeats are not handled by this node")
		return
	}
	if err := s.cfg.Heartbeat(r.Context(), req.HostID, req.Instances); err != nil {
		writeError(w, statusOrUnavailable(err), err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
