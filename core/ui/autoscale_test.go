package ui_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/apiclient"
	"potluck/apiclient/apitest"
)

// TestInstallationPageShowsAutoscaling: the installation page shows the
// metrics section and the autoscaling settings, whose form changes them.
func TestInstallationPageShowsAutoscaling(t *testing.T) {
	core := apitest.Start(t)
	core.RegisterHost(t, "f1", "front", 1, 512)
	core.RegisterHost(t, "b1", "back", 2, 1024)
	ctx := context.Background()
	_, err := core.Client.CreateImageApp(ctx, "web", "registry.example/web:1", 8080)
	require.NoError(t, err)
	_, err = core.Client.CreateInstallation(ctx, apiclient.CreateInstallationRequest{Name: "shop", App: "web", Fronts: 1, Backs: 1, Domain: "shop.example.com"})
	require.NoError(t, err)
	b := newBrowser(t, core.URL)
	require.Equal(t, http.StatusSeeOther, b.post("/ui/login", url.Values{"token": {apitest.Token}}).code)

	p := b.get("/ui/installations/shop")
	require.Equal(t, http.StatusOK, p.code)
	require.Contains(t, p.body, "No metrics yet: the leader keeps one point per 60 s")
	require.Contains(t, p.body, "Autoscaling is <b>off</b>: policy combined, 1..1 instances (now 1)")
	csrf := csrfOf(t, p.body)

	p = b.post("/ui/installations/shop/autoscale", url.Values{"csrf": {csrf}, "enabled": {"on"}, "min": {"1"}, "max": {"4"}, "cpu_target": {"60"}, "interval": {"5m"}, "policy": {"reactive"}})
	require.Equal(t, http.StatusSeeOther, p.code)
	page := b.get("/ui/installations/shop").body
	require.Contains(t, page, "Autoscaling of shop is on.")
	require.Contains(t, page, "Autoscaling is <b>on</b>: policy reactive, 1..4 instances (now 1),\n  CPU target 60 %, at least 5m0s between operations.")

	p = b.post("/ui/installations/shop/autoscale", url.Values{"csrf": {csrf}, "enabled": {"on"}, "min": {"9"}})
	require.Equal(t, http.StatusSeeOther, p.code)
	page = b.get("/ui/installations/shop").body
	require.True(t, strings.Contains(page, "not changed: ") && strings.Contains(page, "autoscale bounds 9..4"), page)

	// Both bounds unreadable: the first field is named, every time (Go's
	// map order once picked either).
	for range 8 {
		p = b.post("/ui/installations/shop/autoscale", url.Values{"csrf": {csrf}, "min": {"x"}, "max": {"y"}})
		require.Equal(t, http.StatusSeeOther, p.code)
		require.Contains(t, b.get("/ui/installations/shop").body, "Autoscaling: min is a whole number.")
	}
}
