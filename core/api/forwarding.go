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

	"potluck/core/cluster"
)

// requestIDPattern is what a client may send as X-Request-Id.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

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
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.Header.Set(HeaderForwarded, s.node.ID())
		},
		Transport: s.proxy.Transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, http.StatusBadGateway, fmt.Sprintf("forwarding to the leader failed (%v); retry with the same X-Request-Id", err))
		},
	}
	proxy.ServeHTTP(w, r)
	return true
}

// consistentRead answers a read from the leader's state, so a read after an
// acknowledged write sees it: a follower forwards the request, the leader
// first makes sure it applied everything committed before its term. With
// ?stale the node answers from its own copy (may lag; works without a
// leader). A forwarded read that reaches a non-leader is answered locally
// rather than bounced again.
func (s *Server) consistentRead(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("stale") || r.Header.Get(HeaderForwarded) != "" {
			next(w, r)
			return
		}
		if s.node.IsLeader() {
			if err := s.node.CatchUp(); err != nil && !errors.Is(err, cluster.ErrNotLeader) {
				writeError(w, http.StatusServiceUnavailable, err.Error()+"; retry, or add ?stale")
				return
			}
			next(w, r)
			return
		}
		if !s.forward(w, r) {
			next(w, r)
		}
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
