package agentapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/agentproto"
	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
	"potluck/internal/jsonhttp"
)

func TestBlockingStateWakesOnlyForThisHost(t *testing.T) {
	f := fsm.New()
	apply := func(c *fsm.Command) uint64 {
		t.Helper()
		res := fsmtest.Apply(t, f, c)
		require.NoError(t, res.Err)
		return res.Index
	}
	apply(&fsm.Command{Type: fsm.CmdCreateToken, Token: &fsm.JoinToken{ID: "t", Hash: "h"}})
	for i, name := range []string{"back", "front"} {
		role := fsm.RoleBack
		if name == "front" {
			role = fsm.RoleFront
		}
		apply(&fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{
			ID: name, Name: name, Role: role, PublicKey: "key-" + name, TunnelAddr: netip.AddrFrom4([4]byte{100, 64, 1, byte(1 + i)}),
			TokenID: "t", Status: fsm.HostReady, Capacity: fsm.Resources{MilliCPU: 1000, MemoryMB: 1000, DiskMB: 1000},
		}})
	}
	h := New(Config{State: f})
	seen := f.State() // what the agent saw last
	start := seen.Index

	got := make(chan uint64, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		got <- h.waitForChange(ctx, h.watch.indexOf(seen), start, "back").Index
	}()
	// Unrelated to the Back: an app nobody runs.
	apply(&fsm.Command{Type: fsm.CmdCreateApp, App: &fsm.App{Name: "a", Image: "x:1", ContainerPort: 80}})
	// Related: an instance placed on the Back.
	related := apply(&fsm.Command{Type: fsm.CmdCreateInstallation,
		Installation: &fsm.Installation{Name: "i", App: "a", Fronts: 1, Backs: 1, Domain: "i.example", ContainerPort: 80, FrontHosts: []string{"front"}},
		Instances:    []*fsm.Instance{{ID: "i1", Installation: "i", HostID: "back", Port: 5000}}})
	require.Equal(t, related, <-got, "woke up for a change that does not concern this host")

	// An agent that is behind gets the state at once.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.Equal(t, related, h.waitForChange(ctx, h.watch.indexOf(f.State()), start, "back").Index)
}

// oneBack is a state holding one ready Back, "back", with key "key-back".
func oneBack(t *testing.T) *fsm.FSM {
	t.Helper()
	f := fsm.New()
	require.NoError(t, fsmtest.Apply(t, f, &fsm.Command{Type: fsm.CmdCreateToken, Token: &fsm.JoinToken{ID: "t", Hash: "h"}}).Err)
	require.NoError(t, fsmtest.Apply(t, f, &fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{
		ID: "back", Name: "back", Role: fsm.RoleBack, PublicKey: "key-back", TunnelAddr: netip.AddrFrom4([4]byte{100, 64, 1, 1}),
		TokenID: "t", Status: fsm.HostReady, Capacity: fsm.Resources{MilliCPU: 1000, MemoryMB: 1000, DiskMB: 1000},
	}}).Err)
	return f
}

func TestHeartbeatBody(t *testing.T) {
	f := oneBack(t)
	var got [][]agentproto.InstanceReport
	h := New(Config{
		State:    f,
		Identify: func(*http.Request) (string, bool) { return "key-back", true },
		Heartbeat: func(_ context.Context, hostID string, reports []agentproto.InstanceReport) error {
			require.Equal(t, "back", hostID)
			got = append(got, reports)
			return nil
		},
	})
	tests := []struct {
		name    string
		body    string
		status  int
		message string
		reports int
	}{
		{"empty body reports nothing", "", http.StatusNoContent, "", 0},
		{"one report", `{"instances":[{"id":"i1","state":"running"}]}`, http.StatusNoContent, "", 1},
		{"unknown field", `{"instances":[],"load":1}`, http.StatusBadRequest, `heartbeat: malformed JSON body: json: unknown field "load"`, -1},
		{"not JSON", `instances`, http.StatusBadRequest, "heartbeat: malformed JSON body", -1},
		{"state an agent may not report", `{"instances":[{"id":"i1","state":"lost"}]}`, http.StatusBadRequest, "state must be pending, running or failed", -1},
		{"too large", `{"instances":[{"id":"` + strings.Repeat("i", maxHeartbeatBytes) + `"}]}`, http.StatusRequestEntityTooLarge, "heartbeat: body larger than", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, agentproto.PathHeartbeat, strings.NewReader(tc.body)))
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			if tc.message != "" {
				var e jsonhttp.ErrorBody
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
				require.Contains(t, e.Error, tc.message)
			}
			if tc.reports >= 0 {
				require.Len(t, got, 1)
				require.Len(t, got[0], tc.reports)
			} else {
				require.Empty(t, got)
			}
		})
	}
}

// TestDesiredCarriesUnpackedSize: a Back learns what an uploaded image
// unpacks to before it downloads it, so it can refuse one that would not fit.
func TestDesiredCarriesUnpackedSize(t *testing.T) {
	st := fsm.NewState()
	back := &fsm.Host{ID: "b", Name: "b", Role: fsm.RoleBack, Status: fsm.HostReady}
	st.Hosts["b"] = back
	st.Apps["up"] = &fsm.App{Name: "up", Image: "potluck-blob/up", Digest: "sha256:" + strings.Repeat("a", 64), UncompressedSize: 300 << 20}
	st.Apps["ref"] = &fsm.App{Name: "ref", Image: "nginx:1"}
	for _, app := range []string{"up", "ref"} {
		st.Installations[app] = &fsm.Installation{Name: app, App: app, Backs: 1}
		st.Instances["i-"+app] = &fsm.Instance{ID: "i-" + app, Installation: app, HostID: "b", Port: 5000}
	}
	d := Desired(st, back)
	got := map[string]int64{}
	for _, in := range d.Instances {
		got[in.App] = in.ImageUncompressedBytes
	}
	require.Equal(t, map[string]int64{"up": 300 << 20, "ref": 0}, got)
}

// TestHeartbeatRefusals: a heartbeat the leader refuses is answered with its
// verdict (this node's, or relayed by a follower); anything else is worth a
// retry (503).
func TestHeartbeatRefusals(t *testing.T) {
	f := oneBack(t)
	var verdict error
	h := New(Config{
		State:     f,
		Identify:  func(*http.Request) (string, bool) { return "key-back", true },
		Heartbeat: func(context.Context, string, []agentproto.InstanceReport) error { return verdict },
	})
	tests := []struct {
		name   string
		err    error
		status int
	}{
		{"invalid report", &fsm.Error{Code: fsm.CodeInvalid, Message: "bad state"}, http.StatusBadRequest},
		{"unknown host", &fsm.Error{Code: fsm.CodeNotFound, Message: `no host "back"`}, http.StatusNotFound},
		{"decommissioned", &fsm.Error{Code: fsm.CodeConflict, Message: "host is decommissioned"}, http.StatusConflict},
		{"relayed by a follower", fmt.Errorf("forwarding: %w", &jsonhttp.Error{Status: http.StatusConflict, Message: "host is decommissioned"}), http.StatusConflict},
		{"the leader unreachable", &jsonhttp.Error{Status: http.StatusBadGateway, Message: "forwarding failed"}, http.StatusServiceUnavailable},
		{"no leader", errors.New("not the leader"), http.StatusServiceUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			verdict = tc.err
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, agentproto.PathHeartbeat, strings.NewReader(`{"instances":[]}`)))
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
		})
	}
}

// TestBlockingStateEndsWithTheNode: a core node that stops answers the
// blocking queries it holds with 503, so each agent asks another node at
// once instead of learning "nothing new" and asking this one again.
func TestBlockingStateEndsWithTheNode(t *testing.T) {
	h := New(Config{State: oneBack(t), Identify: func(*http.Request) (string, bool) { return "key-back", true }})
	stopping, stop := context.WithCancel(context.Background())
	index := h.cfg.State.State().Index
	answered := make(chan int, 1)
	go func() {
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(stopping, http.MethodGet, fmt.Sprintf("%s?index=%d&wait=5m", agentproto.PathState, index), nil)
		h.ServeHTTP(rec, req)
		answered <- rec.Code
	}()
	select {
	case code := <-answered:
		t.Fatalf("answered %d before anything changed", code)
	case <-time.After(100 * time.Millisecond):
	}
	stop()
	require.Equal(t, http.StatusServiceUnavailable, <-answered)
}
