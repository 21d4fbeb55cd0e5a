package back

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"potluck/agentproto"
)

// TestMonitorReportsUnhealthyAndRecovered: the continuous check reports an
// instance failed after Unhealthy failures in a row and running again after
// Healthy successes, against a real HTTP server on loopback.
func TestMonitorReportsUnhealthyAndRecovered(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(int(status.Load()))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	b := &Back{
		cfg: Config{PublishIP: netip.MustParseAddr("127.0.0.1")}, log: slog.New(slog.DiscardHandler),
		reports: map[string]agentproto.InstanceReport{}, health: map[string]*health{}, checker: newChecker(),
	}
	in := agentproto.Instance{ID: "i-1", Port: port, ContainerPort: 8080, Health: &agentproto.HealthCheck{
		Path: "/healthz", Interval: 50 * time.Millisecond, Timeout: time.Second, Healthy: 2, Unhealthy: 3,
	}}
	require.NoError(t, b.startupCheck(t.Context(), in, "", "", 5*time.Second))
	b.report(in.ID, agentproto.InstanceRunning, "")
	b.watch(in)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go b.monitor(ctx)

	state := func() agentproto.InstanceReport {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.reports[in.ID]
	}
	status.Store(http.StatusInternalServerError)
	require.Eventually(t, func() bool { return state().State == agentproto.InstanceFailed }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, "unhealthy: GET /healthz failed 3 times in a row: HTTP 500", state().Message)
	status.Store(http.StatusNoContent)
	require.Eventually(t, func() bool { return state().State == agentproto.InstanceRunning }, 10*time.Second, 20*time.Millisecond)

	// An instance nothing answers for fails its start-up check with why.
	dead := agentproto.Instance{ID: "i-2", Port: 1, ContainerPort: 8080, Health: &agentproto.HealthCheck{Path: "/healthz", Timeout: 100 * time.Millisecond}}
	err = b.startupCheck(t.Context(), dead, "", "", 500*time.Millisecond)
	require.ErrorContains(t, err, "app does not answer GET /healthz on port 8080 within 500ms")
}

// TestReportsFitTheProtocol: a long error (Docker's can be) is cut to what
// the core accepts, on a UTF-8 boundary; a longer one made the core refuse
// the whole heartbeat.
func TestReportsFitTheProtocol(t *testing.T) {
	b := &Back{log: slog.New(slog.DiscardHandler), reports: map[string]agentproto.InstanceReport{}}
	b.report("i-1", agentproto.InstanceFailed, strings.Repeat("é", agentproto.MaxReportMessage))
	reps := b.snapshotReports()
	require.NoError(t, agentproto.HeartbeatRequest{Instances: reps}.Check())
	require.LessOrEqual(t, len(reps[0].Message), agentproto.MaxReportMessage)
	require.True(t, utf8.ValidString(reps[0].Message))
	require.True(t, strings.HasSuffix(reps[0].Message, " …"))
}
