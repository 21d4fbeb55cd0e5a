package agentapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/agentproto"
	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
	"potluck/internal/jsonhttp"
)

func TestMetricsBody(t *testing.T) {
	f := oneBack(t)
	var got []agentproto.MetricsReport
	refuse := false
	h := New(Config{
		State:    f,
		Identify: func(*http.Request) (string, bool) { return "key-back", true },
		Metrics: func(_ context.Context, hostID string, m agentproto.MetricsReport) error {
			require.Equal(t, "back", hostID)
			if refuse {
				return errors.New("no leader")
			}
			got = append(got, m)
			return nil
		},
	})
	tests := []struct {
		name    string
		body    string
		refuse  bool
		status  int
		message string
	}{
		{"one instance", `{"interval_ms":1000,"instances":[{"id":"i1","installation":"a","cpu":0.5,"memory":0.1,"memory_bytes":1}]}`, false, http.StatusNoContent, ""},
		{"unknown field", `{"load":1}`, false, http.StatusBadRequest, `metrics: malformed JSON body: json: unknown field "load"`},
		{"empty body", ``, false, http.StatusBadRequest, "metrics: "},
		{"bad report", `{"instances":[{"id":"i1","installation":"a","cpu":-1}]}`, false, http.StatusBadRequest, "cpu and memory must be shares"},
		{"too large", `{"routes":[{"installation":"` + strings.Repeat("a", maxMetricsBytes) + `"}]}`, false, http.StatusRequestEntityTooLarge, "metrics: body larger than"},
		{"no leader", `{}`, true, http.StatusServiceUnavailable, "metrics not recorded: no leader"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, refuse = nil, tc.refuse
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, agentproto.PathMetrics, strings.NewReader(tc.body)))
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			if tc.message != "" {
				var e jsonhttp.ErrorBody
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
				require.Contains(t, e.Error, tc.message)
				require.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			require.Equal(t, 0.5, got[0].Instances[0].CPU)
		})
	}

	// A decommissioned host is told to stand down, as on every agent route.
	require.NoError(t, fsmtest.Apply(t, f, &fsm.Command{Type: fsm.CmdPlan, Plan: &fsm.Plan{Hosts: []fsm.HostStatusChange{{HostID: "back", Status: fsm.HostDecommissioned}}}}).Err)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, agentproto.PathMetrics, strings.NewReader(`{}`)))
	require.Equal(t, http.StatusGone, rec.Code)
}
