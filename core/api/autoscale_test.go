package api

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/scaler"
	"potluck/core/series"
)

func TestAutoscaleSettingsAndMetrics(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Autoscaler = scaler.New(scaler.Config{Node: c.Node, Series: series.New(time.Minute, 0, c.Now), Now: c.Now})
	})
	f.cluster()
	f.call(http.MethodPost, "/v1/installations", installationBody(""), http.StatusCreated, nil)

	var v AutoscaleView
	f.call(http.MethodGet, "/v1/installations/shop/autoscale", "", http.StatusOK, &v)
	require.False(t, v.Policy.Enabled, "off until set")
	require.Equal(t, 1, v.Policy.Min)
	require.Equal(t, DefaultCPUTarget, v.Policy.CPUTarget)
	require.Equal(t, "25m0s", v.IntervalText)

	f.call(http.MethodPut, "/v1/installations/shop/autoscale", `{"enabled":true,"max":3,"cpu_target":0.6,"interval":"5m"}`, http.StatusOK, &v)
	require.True(t, v.Policy.Enabled)
	require.Equal(t, 1, v.Policy.Min, "fields left out keep their value")
	require.Equal(t, 3, v.Policy.Max)
	require.Equal(t, 5*time.Minute, v.Policy.Interval)
	f.call(http.MethodPut, "/v1/installations/shop/autoscale", `{"enabled":false}`, http.StatusOK, &v)
	require.False(t, v.Policy.Enabled)
	require.Equal(t, 3, v.Policy.Max, "turning it off keeps the settings")

	bad := []struct{ body, msg string }{
		{`{"interval":"soon"}`, `interval "soon": want a duration`},
		{`{"min":5}`, "autoscale bounds 5..3"},
		{`{"cpu_target":2}`, "CPU target 2.00"},
		{`{"policy":"magic"}`, `policy "magic"`},
		{`{"max":"three"}`, "max"},
		{`{"maximum":3}`, "maximum"},
	}
	for _, b := range bad {
		rec := f.call(http.MethodPut, "/v1/installations/shop/autoscale", b.body, http.StatusBadRequest, nil)
		require.Contains(t, errorOf(t, rec), b.msg, b.body)
	}
	f.call(http.MethodPut, "/v1/installations/nope/autoscale", `{"enabled":true}`, http.StatusNotFound, nil)
	f.call(http.MethodGet, "/v1/installations/nope/metrics", "", http.StatusNotFound, nil)

	// A Front's report, as a follower forwards it, becomes a point once
	// its minute is over; another Front's report about it is dropped.
	front := f.node.State().Installations["shop"].FrontHosts[0]
	f.call(http.MethodPost, "/v1/internal/metrics", fmt.Sprintf(`{"host_id":%q,"report":{"interval_ms":1000,"routes":[{"installation":"shop","requests":42,"errors":2,"latency_bounds_ms":[10,100],"latency_counts":[40,2,0],"latency_sum_ms":84}]}}`, front), http.StatusNoContent, nil)
	var back string
	for _, h := range f.node.State().SortedHosts() {
		if h.Role == "back" {
			back = h.ID
		}
	}
	f.call(http.MethodPost, "/v1/internal/metrics", fmt.Sprintf(`{"host_id":%q,"report":{"routes":[{"installation":"shop","requests":1000}]}}`, back), http.StatusNoContent, nil)
	f.call(http.MethodPost, "/v1/internal/metrics", fmt.Sprintf(`{"host_id":%q,"report":{"routes":[{"installation":"shop","requests":1,"errors":5}]}}`, front), http.StatusBadRequest, nil)
	f.clock.Advance(time.Minute)
	var m MetricsView
	f.call(http.MethodGet, "/v1/installations/shop/metrics", "", http.StatusOK, &m)
	require.Equal(t, 60.0, m.StepSeconds)
	require.Len(t, m.Points, 1)
	require.Equal(t, 42.0, m.Points[0].Requests, "only the Front that serves it counts")
	require.Equal(t, 2.0, m.Points[0].Errors)
	require.Equal(t, 2.0, m.Points[0].MeanMS)
}

func TestAutoscaleWithoutAnAutoscalerIs501(t *testing.T) {
	f := newFixture(t)
	f.cluster()
	f.call(http.MethodPost, "/v1/installations", installationBody(""), http.StatusCreated, nil)
	f.call(http.MethodGet, "/v1/installations/shop/metrics", "", http.StatusNotImplemented, nil)
	f.call(http.MethodPost, "/v1/internal/metrics", `{"host_id":"x","report":{}}`, http.StatusNotImplemented, nil)
}

func TestAutoscaleScopes(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Autoscaler = scaler.New(scaler.Config{Node: c.Node, Series: series.New(time.Minute, 0, c.Now), Now: c.Now})
	})
	f.cluster()
	f.call(http.MethodPost, "/v1/installations", installationBody(""), http.StatusCreated, nil)
	owner := f.scopedToken(`{"scope":"app-owner","installations":["shop"]}`)
	other := f.scopedToken(`{"scope":"app-owner","installations":["news"]}`)
	reader := f.scopedToken(`{"scope":"read-only"}`)
	tests := []struct {
		name   string
		req    request
		status int
	}{
		{"owner sets its autoscaling", request{method: "PUT", path: "/v1/installations/shop/autoscale", token: owner, body: `{"enabled":true,"max":2}`}, 200},
		{"owner reads its metrics", request{method: "GET", path: "/v1/installations/shop/metrics", token: owner}, 200},
		{"another owner cannot set it", request{method: "PUT", path: "/v1/installations/shop/autoscale", token: other, body: `{"enabled":false}`}, 403},
		{"another owner cannot read its metrics", request{method: "GET", path: "/v1/installations/shop/metrics", token: other}, 403},
		{"a reader reads it", request{method: "GET", path: "/v1/installations/shop/autoscale", token: reader}, 200},
		{"a reader cannot set it", request{method: "PUT", path: "/v1/installations/shop/autoscale", token: reader, body: `{"enabled":false}`}, 403},
		{"an owner cannot report metrics", request{method: "POST", path: "/v1/internal/metrics", token: owner, body: `{"host_id":"x","report":{}}`}, 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do(tc.req)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
		})
	}
}

// An installation deleted between the settings' commit and the answer's
// read gets a 404 that says so, not an empty 204.
func TestAutoscaleOfAnInstallationDeletedMeanwhile(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Autoscaler = scaler.New(scaler.Config{Node: c.Node, Series: series.New(time.Minute, 0, c.Now), Now: c.Now})
	})
	f.cluster()
	f.call(http.MethodPost, "/v1/installations", installationBody(""), http.StatusCreated, nil)
	f.node.afterDecide = func() {
		f.node.afterDecide = nil
		f.node.must(t, &fsm.Command{Type: fsm.CmdDeleteInstallation, Name: "shop"})
	}
	var e struct{ Error string }
	f.call(http.MethodPut, "/v1/installations/shop/autoscale", `{"enabled":true,"max":3}`, http.StatusNotFound, &e)
	require.Contains(t, e.Error, `installation "shop" was deleted meanwhile`)
}
