package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"potluck/core/cluster"
	"potluck/core/fsm"
	"potluck/internal/jsonhttp"
)

// writeJSON answers indented JSON: people read this API with curl.
func writeJSON(w http.ResponseWriter, code int, v any) { jsonhttp.WriteIndented(w, code, v) }

// writeError answers {"error": msg}; a 503 says when to retry.
func writeError(w http.ResponseWriter, code int, msg string) {
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	jsonhttp.WriteIndented(w, code, jsonhttp.ErrorBody{Error: msg})
}

// decode reads a JSON body strictly (jsonhttp.Decode, at most MaxBodyBytes)
// and answers the error itself; it returns false when it did.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := jsonhttp.Decode(w, r, v, s.cfg.MaxBodyBytes); err != nil {
		writeError(w, jsonhttp.StatusOf(err), jsonhttp.MessageOf(err))
		return false
	}
	return true
}

// writeResult maps a commit outcome to an HTTP error; it returns false when
// it wrote one.
func (s *Server) writeResult(w http.ResponseWriter, res fsm.Result, err error) bool {
	if err != nil {
		if errors.Is(err, cluster.ErrNotLeader) {
			writeError(w, http.StatusServiceUnavailable, "leadership changed during the request; retry with the same X-Request-Id")
			return false
		}
		s.log.Warn("apply failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return false
	}
	if res.Err != nil {
		writeError(w, statusOf(res.Err), res.Err.Error())
		return false
	}
	w.Header().Set(HeaderIndex, strconv.FormatUint(res.Index, 10))
	return true
}

// RejectionStatus is the HTTP status of a command the FSM (or a leader's
// builder) rejected with an fsm.Code; false for any other error. The agent
// API answers heartbeats by it too.
func RejectionStatus(err error) (int, bool) {
	switch fsm.CodeOf(err) {
	case fsm.CodeInvalid:
		return http.StatusBadRequest, true
	case fsm.CodeNotFound:
		return http.StatusNotFound, true
	case fsm.CodeConflict:
		return http.StatusConflict, true
	}
	return 0, false
}

// statusOf is the HTTP status of a rejected command.
func statusOf(err error) int {
	if code, ok := RejectionStatus(err); ok {
		return code
	}
	return http.StatusInternalServerError
}

// statusOrUnavailable is statusOf for a rejection, 503 for anything else
// (no leader, raft trouble: worth a retry).
func statusOrUnavailable(err error) int {
	if code, ok := RejectionStatus(err); ok {
		return code
	}
	return http.StatusServiceUnavailable
}

// blockingState implements ?index=N&wait=D: wait until the state index
// exceeds N (at most D, default 5m, max 10m: jsonhttp.ParseBlockingQuery),
// then return the state.
func (s *Server) blockingState(w http.ResponseWriter, r *http.Request) (*fsm.State, bool) {
	st := s.node.State()
	n, wait, blocking, err := jsonhttp.ParseBlockingQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	if blocking {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		defer cancel()
		st = s.node.Wait(ctx, n)
	}
	w.Header().Set(HeaderIndex, strconv.FormatUint(st.Index, 10))
	return scopeState(callerOf(r), st), true
}

// newID returns a random id with a prefix, e.g. "h-1f2e3d4c5b6a".
func newID(prefix string) string { return prefix + "-" + randomHex(6) }

func requestID(r *http.Request) string { return r.Header.Get(HeaderRequestID) }
