package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
)

// TestDegradedNodeAnswersHonestly: a node that has not caught up answers 503
// with Retry-After where its state may be wrong, and still answers its
// status and ?stale reads without waiting for a leader (issue 11, findings 2
// and 3).
func TestDegradedNodeAnswersHonestly(t *testing.T) {
	const unknown = "some-token-this-node-does-not-know"
	laggingFollower := func(n *memNode) {
		n.setLeader("core2")
		n.lagging = true
	}
	tests := []struct {
		name  string
		setup func(n *memNode) // on a node whose state has no operator token
		req   request
		code  int
	}{
		{
			name:  "status without a leader, before the log is replayed",
			setup: func(n *memNode) { n.setLeader("") },
			req:   request{method: "GET", path: "/v1/status", token: operatorToken},
			code:  http.StatusOK,
		},
		{
			name:  "stale read without a leader",
			setup: func(n *memNode) { n.setLeader("") },
			req:   request{method: "GET", path: "/v1/hosts?stale", token: operatorToken},
			code:  http.StatusOK,
		},
		{
			name:  "unknown token on a stale read without a leader",
			setup: func(n *memNode) { n.setLeader("") },
			req:   request{method: "GET", path: "/v1/hosts?stale", token: unknown},
			code:  http.StatusServiceUnavailable,
		},
		{
			name:  "unknown token on a new leader that has not applied its log",
			setup: func(n *memNode) { n.catchUpErr = errors.New("barrier timed out") },
			req:   request{method: "GET", path: "/v1/hosts", token: unknown},
			code:  http.StatusServiceUnavailable,
		},
		{
			name:  "unknown token on a leader that caught up",
			setup: func(n *memNode) {},
			req:   request{method: "GET", path: "/v1/hosts", token: unknown},
			code:  http.StatusUnauthorized,
		},
		{
			name:  "missing app on a lagging follower's stale read",
			setup: laggingFollower,
			req:   request{method: "GET", path: "/v1/apps/web?stale", token: operatorToken},
			code:  http.StatusServiceUnavailable,
		},
		{
			name:  "missing installation's releases on a lagging follower's stale read",
			setup: laggingFollower,
			req:   request{method: "GET", path: "/v1/installations/shop/releases?stale", token: operatorToken},
			code:  http.StatusServiceUnavailable,
		},
		{
			name:  "missing installation's logs on a lagging follower",
			setup: laggingFollower,
			req:   request{method: "GET", path: "/v1/installations/shop/logs", token: operatorToken},
			code:  http.StatusServiceUnavailable,
		},
		{
			name: "missing app on a current follower's stale read",
			setup: func(n *memNode) {
				n.setLeader("core2")
			},
			req:  request{method: "GET", path: "/v1/apps/web?stale", token: operatorToken},
			code: http.StatusNotFound,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			node := newMemNode("core1", clk.Now)
			tc.setup(node)
			f := &fixture{t: t, node: node, clock: clk, api: New(Config{
				Node: node, Logger: slog.New(slog.DiscardHandler), Now: clk.Now, OperatorTokenHash: HashToken(operatorToken),
				LeaderHold: time.Hour, // a request that waited for a leader would not come back
				// Never reached: the installation is looked up first.
				Logs: func(context.Context, *fsm.Host, string, url.Values) (io.ReadCloser, error) {
					return nil, errors.New("no logs here")
				},
			})}
			rec := f.do(tc.req)
			require.Equal(t, tc.code, rec.Code, rec.Body.String())
			if tc.code == http.StatusServiceUnavailable {
				require.Equal(t, "1", rec.Header().Get("Retry-After"))
				require.Contains(t, errorOf(t, rec), "has not caught up")
			}
			if tc.req.path == "/v1/status" {
				st := decodeAs[StatusView](t, rec)
				require.Equal(t, HealthNoLeader, st.Health)
			}
		})
	}
}

// TestStartupTokenOnlyUntilTheStateHasOne: the token a node was started with
// stands in for the state's only while the state has none.
func TestStartupTokenOnlyUntilTheStateHasOne(t *testing.T) {
	clk := newClock()
	node := newMemNode("core1", clk.Now)
	node.must(t, &fsm.Command{Type: fsm.CmdSetOperatorToken, OperatorTokenHash: HashToken(operatorToken)})
	f := &fixture{t: t, node: node, clock: clk, api: New(Config{
		Node: node, Logger: slog.New(slog.DiscardHandler), Now: clk.Now, OperatorTokenHash: HashToken("an-older-operator-token-0123"),
	})}
	rec := f.do(request{method: "GET", path: "/v1/status", token: "an-older-operator-token-0123"})
	require.Equal(t, http.StatusUnauthorized, rec.Code, rec.Body.String())
	rec = f.do(request{method: "GET", path: "/v1/status", token: operatorToken})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}
