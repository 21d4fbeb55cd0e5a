package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"time"
)

// requestIDPattern is what a client may send as X-Request-Id.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// Headers a forwarding core node adds: the client address it saw, vouched
// for by its node token (see clientAddr).
const (
	HeaderClientAddr = "X-Potluck-Client-Addr"
	HeaderNodeAuth   = "X-Potluck-Node-Auth"
)

// leaderPoll is how often leaderURL looks for a leader.
const leaderPoll = 50 * time.Millisecond

// leaderOnly runs a write on the leader. On a follower the request (body
// streamed) is proxied to the leader's API, marked with HeaderForwarded; a
// forwarded request that lands on a non-leader is refused instead of being
// forwarded again. Every write gets a request id (the client's, or a new one).
func (s *Server) leaderOnly(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderRequestID)
		if id == "" {
			id = randomHex(16)
			r.Header.Set(HeaderRequestID, id)
		} else if !requestIDPattern.MatchString(id) {
			writeError(w, http.StatusBadRequest, "X-Request-Id must be 1-128 characters of A-Z a-z 0-9 . _ : -")
			return
		}
		w.Header().Set(HeaderRequestID, id)
		// The size limit is checked here, so a follower refuses an
		// oversized body itself instead of streaming it to the leader.
		if limit := s.bodyLimit(r); r.ContentLength > limit {
			msg := fmt.Sprintf("body larger than %d bytes", limit)
			if r.Pattern == patternUpload {
				msg = fmt.Sprintf("image tarball larger than the limit of %d bytes", limit)
			}
			writeError(w, http.StatusRequestEntityTooLarge, msg)
			return
		}
		if s.node.IsLeader() {
			next(w, r)
			return
		}
		if by := r.Header.Get(HeaderForwarded); by != "" {
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("request forwarded by %s reached %s, which is not the leader (leadership is changing); retry with the same X-Request-Id", by, s.node.ID()))
			return
		}
		if !s.forward(w, r) {
			next(w, r) // we became the leader meanwhile
		}
	}
}

// forwardUnknown sends a request whose token this node does not know to the
// leader: a follower that lags (or just restarted and has not replayed its
// log yet) may not have a token that the leader already accepts. The leader
// gives the definite answer. Only a small body is worth that: it is read
// here first (within the body deadline and MaxBodyBytes), so a slow or
// oversized request without a valid token never reaches the leader. It
// returns false when this node must answer. unknownToken, its caller,
// keeps it from the leader and from forwarded requests.
func (s *Server) forwardUnknown(w http.ResponseWriter, r *http.Request) bool {
	if r.ContentLength != 0 {
		if r.ContentLength > s.cfg.MaxBodyBytes {
			return false
		}
		data, ok := s.bufferBody(r)
		if !ok {
			return false
		}
		r.ContentLength = int64(len(data))
	}
	return s.forward(w, r)
}

// bodyLimit is the largest body r's route accepts.
func (s *Server) bodyLimit(r *http.Request) int64 {
	if r.Pattern == patternUpload {
		return s.cfg.MaxUploadBytes
	}
	return s.cfg.MaxBodyBytes
}

// forward proxies r (body streamed) to the leader. It returns false, having
// written nothing, when this node is the leader itself.
func (s *Server) forward(w http.ResponseWriter, r *http.Request) bool {
	target, err := s.leaderURL(r.Context())
	if err != nil {
		if s.node.IsLeader() {
			return false
		}
		writeError(w, http.StatusServiceUnavailable, err.Error()+"; retry with the same X-Request-Id")
		return true
	}
	// A body of unknown length is cut at the route's limit while streaming.
	r.Body = http.MaxBytesReader(w, r.Body, s.bodyLimit(r))
	client := s.clientAddr(r)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.Header.Set(HeaderForwarded, s.node.ID())
			// The leader counts failed tokens against the client, not
			// against this node; the node token vouches for the address.
			pr.Out.Header.Del(HeaderClientAddr)
			pr.Out.Header.Del(HeaderNodeAuth)
			if s.cfg.NodeToken != "" {
				pr.Out.Header.Set(HeaderClientAddr, client)
				pr.Out.Header.Set(HeaderNodeAuth, s.cfg.NodeToken)
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode == http.StatusUnauthorized {
				s.limiter.Fail(client)
			}
			return nil
		},
		Transport: s.proxy.Transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, http.StatusBadGateway, fmt.Sprintf("forwarding to the leader failed (%v); retry with the same X-Request-Id", err))
		},
	}
	proxy.ServeHTTP(w, r)
	return true
}

// consistentRead answers a read from the leader's state, linearizably: a
// follower forwards the request, and the leader answers only after a raft
// barrier started after the read arrived (cluster.Node.ReadBarrier) proves
// it still leads and has applied everything committed. With ?stale the node
// answers from its own copy (may lag; works without a leader). A forwarded
// read that reaches a node that no longer leads gets 503, never its state.
func (s *Server) consistentRead(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("stale") {
			next(w, r)
			return
		}
		if !s.node.IsLeader() {
			if r.Header.Get(HeaderForwarded) != "" {
				// Forwarded here as to the leader, but this node no longer
				// leads: its state may be old. The client retries.
				writeError(w, http.StatusServiceUnavailable, "leadership changed while the read was forwarded; retry, or add ?stale")
				return
			}
			if s.forward(w, r) {
				return
			}
			// This node became the leader while the read waited for one.
		}
		if err := s.node.ReadBarrier(); err != nil {
			writeError(w, http.StatusServiceUnavailable, "cannot confirm this node's state is current: "+err.Error()+"; retry, or add ?stale")
			return
		}
		next(w, r)
	}
}

// leaderURL waits (bounded by LeaderHold) for a leader whose API URL is known.
func (s *Server) leaderURL(ctx context.Context) (*url.URL, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LeaderHold)
	defer cancel()
	tick := time.NewTicker(leaderPoll)
	defer tick.Stop()
	for {
		if s.node.IsLeader() {
			return nil, errors.New("this node became the leader")
		}
		if id := s.node.Leader(); id != "" {
			if c, ok := s.node.State().CoreNodes[id]; ok && c.APIURL != "" {
				u, err := url.Parse(c.APIURL)
				if err == nil {
					return u, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, errors.New("no raft leader with a known API address")
		case <-tick.C:
		}
	}
}
