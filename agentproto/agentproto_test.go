package agentproto

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestInstanceReportCheck(t *testing.T) {
	long := strings.Repeat("m", MaxReportMessage)
	tests := []struct {
		name   string
		report InstanceReport
		err    string
	}{
		{"pending", InstanceReport{ID: "i1", State: InstancePending, Message: long}, ""},
		{"running", InstanceReport{ID: "i1", State: InstanceRunning}, ""},
		{"failed", InstanceReport{ID: "i1", State: InstanceFailed, Message: "exit 1"}, ""},
		{"lost is the core's to decide", InstanceReport{ID: "i1", State: InstanceLost}, "state must be pending, running or failed"},
		{"unknown state", InstanceReport{ID: "i1", State: "sleeping"}, "state must be pending, running or failed"},
		{"long message", InstanceReport{ID: "i1", State: InstanceRunning, Message: long + "m"}, "message longer than 1024 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.report.Check()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestHeartbeatCheck(t *testing.T) {
	require.NoError(t, HeartbeatRequest{}.Check())
	many := HeartbeatRequest{Instances: make([]InstanceReport, MaxReportsPerHeartbeat+1)}
	require.ErrorContains(t, many.Check(), "at most 1024 instance reports")
	bad := HeartbeatRequest{Instances: []InstanceReport{{ID: "a", State: InstanceRunning}, {ID: "b", State: "x"}}}
	require.ErrorContains(t, bad.Check(), "instance b")
}
