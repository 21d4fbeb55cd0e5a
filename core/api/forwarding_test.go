package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/cluster"
	"potluck/core/fsm"
)

// arrival is a request as the leader received it.
type arrival struct {
	method, path, forwardedBy, requestID string
}

// leaderServer serves a leading fixture over HTTP on loopback and records
// what reaches it.
type leaderServer struct {
	*fixture
	url string

	mu   sync.Mutex
	seen []arrival
}

func newLeaderServer(t *testing.T) *leaderServer {
	l := &leaderServer{fixture: newFixture(t)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.seen = append(l.seen, arrival{r.Method, r.URL.RequestURI(), r.Header.Get(HeaderForwarded), r.Header.Get(HeaderRequestID)})
		l.mu.Unlock()
		l.api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	l.url = srv.URL
	return l
}

// arrivals returns and forgets what reached the leader.
func (l *leaderServer) arrivals() []arrival {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := l.seen
	l.seen = nil
	return seen
}

// newFollower is core2, following core1 whose API is at leaderURL.
func newFollower(t *testing.T, leaderURL string) *fixture {
	f := newFixture(t)
	f.node.id = "core2"
	f.node.setLeader("core1")
	f.node.must(t, &fsm.Command{Type: fsm.CmdUpsertCoreNode, CoreNode: &fsm.CoreNode{ID: "core1", APIURL: leaderURL}})
	return f
}

func TestFollowerForwards(t *testing.T) {
	leader := newLeaderServer(t)
	leader.joinToken(`{"description":"made on the leader"}`)
	onlyLeaderKnows := leader.joinToken(`{}`)
	follower := newFollower(t, leader.url)
	big := `{"description":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}`

	tests := []struct {
		name      string
		req       request
		status    int
		forwarded bool
		error     string
	}{
		{"a write goes to the leader", request{method: "POST", path: "/v1/tokens", token: operatorToken, body: `{}`, header: map[string]string{HeaderRequestID: "w-1"}}, 201, true, ""},
		{"a read goes to the leader", request{method: "GET", path: "/v1/tokens", token: operatorToken}, 200, true, ""},
		{"a stale read is answered here", request{method: "GET", path: "/v1/tokens?stale", token: operatorToken}, 200, false, ""},
		{"status is answered here", request{method: "GET", path: "/v1/status", token: operatorToken}, 200, false, ""},
		{"a token only the leader knows yet", request{method: "POST", path: "/v1/hosts", token: onlyLeaderKnows.Token, body: registerBody("b1", "back", 1)}, 201, true, ""},
		{"the leader refuses an unknown token", request{method: "GET", path: "/v1/hosts", token: "nobody-knows-this-token"}, 401, true, "token is not valid for this call (operator token required)"},
		{"a missing token is refused here", request{method: "POST", path: "/v1/tokens", body: `{}`}, 401, false, "missing bearer token: send Authorization: Bearer <token>"},
		{"a forwarded write is not forwarded again", request{method: "POST", path: "/v1/tokens", token: operatorToken, body: `{}`, header: map[string]string{HeaderForwarded: "core3"}}, 503, false,
			"request forwarded by core3 reached core2, which is not the leader (leadership is changing); retry with the same X-Request-Id"},
		// A node that no longer leads never answers a forwarded read from its
		// own, possibly old state (e2e/chaos found such stale reads).
		{"a forwarded read is refused by a non-leader", request{method: "GET", path: "/v1/tokens", token: operatorToken, header: map[string]string{HeaderForwarded: "core3"}}, 503, false,
			"leadership changed while the read was forwarded; retry, or add ?stale"},
		{"an oversized write is refused here", request{method: "POST", path: "/v1/tokens", token: operatorToken, body: big}, 413, false, "body larger than 1048576 bytes"},
		{"an unknown token with a large body is refused here", request{method: "POST", path: "/v1/hosts", token: "ffffffff.unknown", body: big}, 401, false, "join token is unknown, revoked or expired"},
		{"a forwarded unknown token is refused here", request{method: "GET", path: "/v1/hosts", token: onlyLeaderKnows.Token, header: map[string]string{HeaderForwarded: "core3"}}, 401, false, "token is not valid for this call (operator token required)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := follower.do(tc.req)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			if tc.error != "" {
				require.Equal(t, tc.error, errorOf(t, rec))
			}
			if tc.status == http.StatusServiceUnavailable {
				require.Equal(t, "1", rec.Header().Get("Retry-After"), "every 503 says when to retry")
			}
			seen := leader.arrivals()
			if !tc.forwarded {
				require.Empty(t, seen)
				return
			}
			require.Len(t, seen, 1)
			require.Equal(t, tc.req.method, seen[0].method)
			require.Equal(t, tc.req.path, seen[0].path)
			require.Equal(t, "core2", seen[0].forwardedBy, "the loop guard")
			if id := tc.req.header[HeaderRequestID]; id != "" {
				require.Equal(t, id, seen[0].requestID, "the leader applies the client's request id")
				require.Equal(t, id, rec.Header().Get(HeaderRequestID))
			}
		})
	}
	require.Len(t, follower.node.State().Tokens, 0, "the follower applied nothing itself")
	require.Len(t, leader.node.State().Tokens, 3)
	require.NotNil(t, leader.node.State().HostByName("b1"))
	require.Zero(t, follower.node.decides)
}

func TestForwardingFailures(t *testing.T) {
	write := request{method: "POST", path: "/v1/tokens", token: operatorToken, body: `{}`}

	t.Run("no leader", func(t *testing.T) {
		f := newFollower(t, "http://127.0.0.1:1")
		f.node.setLeader("")
		rec := f.do(write)
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.Equal(t, "no raft leader with a known API address; retry with the same X-Request-Id", errorOf(t, rec))
		rec = f.do(request{method: "GET", path: "/v1/tokens?stale", token: operatorToken})
		require.Equal(t, http.StatusOK, rec.Code, "stale reads work without a leader")
	})

	t.Run("a leader whose address is unknown", func(t *testing.T) {
		f := newFollower(t, "http://127.0.0.1:1")
		f.node.setLeader("core9")
		rec := f.do(write)
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.Equal(t, "no raft leader with a known API address; retry with the same X-Request-Id", errorOf(t, rec))
	})

	t.Run("an unreachable leader", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close() // nothing listens there any more
		f := newFollower(t, srv.URL)
		rec := f.do(write)
		require.Equal(t, http.StatusBadGateway, rec.Code)
		require.Regexp(t, `^forwarding to the leader failed \(.*\); retry with the same X-Request-Id$`, errorOf(t, rec))
	})

	t.Run("a leader that cannot catch up", func(t *testing.T) {
		f := newFixture(t)
		f.node.catchUpErr = errors.New("raft barrier: timed out enqueuing operation")
		rec := f.do(request{method: "GET", path: "/v1/hosts", token: operatorToken})
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.Equal(t, "cannot confirm this node's state is current: raft barrier: timed out enqueuing operation; retry, or add ?stale", errorOf(t, rec))
		require.Equal(t, "1", rec.Header().Get("Retry-After"))
		rec = f.do(request{method: "GET", path: "/v1/hosts?stale", token: operatorToken})
		require.Equal(t, http.StatusOK, rec.Code)
	})

	t.Run("leadership lost while deciding", func(t *testing.T) {
		f := newFixture(t)
		f.api = New(Config{Node: deposed{f.node}, Logger: f.api.log})
		rec := f.do(write)
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.Equal(t, "leadership changed during the request; retry with the same X-Request-Id", errorOf(t, rec))
		require.NotEmpty(t, rec.Header().Get(HeaderRequestID), "a write without an id gets one to retry with")
	})
}

// deposed leads when asked but has lost leadership by the time it decides.
type deposed struct{ *memNode }

func (deposed) Decide(context.Context, string, cluster.Builder) (fsm.Result, error) {
	return fsm.Result{}, cluster.ErrNotLeader
}
