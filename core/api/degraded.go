package api

import (
	"fmt"
	"net/http"
	"strings"

	"potluck/core/fsm"
)

// This file holds how a node answers while it may not know the truth: right
// after a restart its state is whatever its last snapshot held until a
// leader tells it what was committed since, so "no such token" or "no such
// app" from it may be wrong. Such a node answers 503 with Retry-After, which
// clients retry, instead of a 401 or 404 that they would believe.

// retryAfterSeconds is the Retry-After of every 503: leader elections and
// catching up take about a second.
const retryAfterSeconds = "1"

// notCaughtUp is the message of a 503 from a node whose state may lag.
func (s *Server) notCaughtUp(what string) string {
	return fmt.Sprintf("%s, and core node %s has not caught up with the cluster (no leader, or still applying the log); retry shortly", what, s.node.ID())
}

// unknownToken answers a request whose bearer token this node's state does
// not hold. The leader, once it has applied everything committed, gives the
// definite 401; a follower asks the leader; a node that cannot reach a
// leader and is not current answers 503, because the token may well be one
// that its state lacks. Status and ?stale reads never wait for a leader.
// Only a definite 401 counts against the client's address (rate limit).
func (s *Server) unknownToken(w http.ResponseWriter, r *http.Request, client, refusal string) {
	if s.node.IsLeader() {
		if err := s.node.CatchUp(); err != nil {
			writeError(w, http.StatusServiceUnavailable, s.notCaughtUp("the token is not in this node's state")+": "+err.Error())
			return
		}
		s.refuseToken(w, r, client, refusal)
		return
	}
	forwarded := r.Header.Get(HeaderForwarded) != ""
	if !forwarded && (!answeredLocally(r) || s.node.Leader() != "") && s.forwardUnknown(w, r) {
		return
	}
	if !s.node.Current() {
		writeError(w, http.StatusServiceUnavailable, s.notCaughtUp("the token is not in this node's state"))
		return
	}
	s.refuseToken(w, r, client, refusal)
}

func (s *Server) refuseToken(w http.ResponseWriter, r *http.Request, client, refusal string) {
	s.limiter.Fail(client)
	s.log.Debug("token refused", "remote", client, "path", r.URL.Path)
	writeError(w, http.StatusUnauthorized, refusal)
}

// answeredLocally reports whether r is answered from this node's own state
// (GET /v1/status, ?stale reads), which must not wait for a leader.
func answeredLocally(r *http.Request) bool {
	return r.URL.Path == "/v1/status" || r.URL.Query().Has("stale") || strings.HasPrefix(r.URL.Path, "/v1/blobs/")
}

// notFound answers 404 for an object this node's state lacks, or 503 when
// that state may lag (a follower out of touch with its leader, or one
// answering a ?stale read while catching up).
func (s *Server) notFound(w http.ResponseWriter, msg string) {
	if !s.node.IsLeader() && !s.node.Current() {
		writeError(w, http.StatusServiceUnavailable, s.notCaughtUp(msg))
		return
	}
	writeError(w, http.StatusNotFound, msg)
}

// installation is the installation name in st, or nil once it has
// answered that there is none (as notFound does).
func (s *Server) installation(w http.ResponseWriter, st *fsm.State, name string) *fsm.Installation {
	inst := st.Installations[name]
	if inst == nil {
		s.notFound(w, fmt.Sprintf("no installation %q", name))
	}
	return inst
}

// isStartupOperator accepts, while the state holds no operator token yet (a node restarted from a snapshot older than the token, or
// one that has not replayed its log), the token this node was started with:
// so its operator can ask it for its status before it finds a leader.
func (s *Server) isStartupOperator(st *fsm.State, tok string) bool {
	return st.OperatorTokenHash == "" && tok != "" && s.cfg.OperatorTokenHash != "" && equalHash(HashToken(tok), s.cfg.OperatorTokenHash)
}
