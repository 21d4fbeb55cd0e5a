package ui_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"potluck/apiclient"
	"potluck/apiclient/apitest"
	"potluck/core/fsm"
)

// detailCore is a one-node core with an app of two versions installed on
// two Backs, one of them a host with features and labels (written through
// raft: no agent reports them yet), and an instance reported running by a
// heartbeat.
func detailCore(t *testing.T) (*apitest.Core, *apiclient.Installation, string) {
	t.Helper()
	core := apitest.Start(t)
	core.RegisterHost(t, "front-1", "front", 1, 512)
	core.RegisterHost(t, "back-1", "back", 2, 2048)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var key [32]byte
	_, _ = rand.Read(key[:])
	labelled := &fsm.Host{ID: "h-labelled", Name: "back-ssd", Role: fsm.RoleBack, PublicKey: base64.StdEncoding.EncodeToString(key[:]),
		TokenID: fsm.OperatorTokenID, Status: fsm.HostReady, Capacity: fsm.Resources{MilliCPU: 4000, MemoryMB: 4096, DiskMB: 20000},
		Measured: &fsm.Resources{MilliCPU: 3000, MemoryMB: 8192, DiskMB: 50000},
		Arch:     "arm64", Storage: "ssd", Region: "eu-west", Lender: "alice", Labels: map[string]string{"rack": "r7"}}
	res, err := core.Server.Node.Apply(ctx, &fsm.Command{Type: fsm.CmdRegisterHost, Time: time.Now(), Host: labelled})
	require.NoError(t, err)
	require.NoError(t, res.Err)

	for _, tag := range []string{"hello:1", "hello:2"} {
		tar := apitest.DockerSaveTar(t, tag, 10_000)
		_, err := core.Client.UploadApp(ctx, "hello", 8080, bytes.NewReader(tar), int64(len(tar)), nil)
		require.NoError(t, err)
	}
	inst, err := core.Client.CreateInstallation(ctx, apiclient.CreateInstallationRequest{
		Name: "hello-site", App: "hello", Fronts: 1, Backs: 2, Domain: "hello.example.com", MemoryMB: 64})
	require.NoError(t, err)
	var onLabelled string
	for _, in := range inst.Instances {
		if in.HostID == labelled.ID {
			onLabelled = in.ID
			require.NoError(t, core.ReportInstances(ctx, in.HostID, "", map[string]string{in.ID: "running"}))
		}
	}
	require.NotEmpty(t, onLabelled, "an instance on the labelled host")
	return core, inst, onLabelled
}

// TestDetailPagesOverHTTP: an app's page lists its versions and where each
// is live; a host's page its instances, capacity, features, labels and
// last heartbeat; unknown ones answer the UI's 404 page.
func TestDetailPagesOverHTTP(t *testing.T) {
	core, _, instance := detailCore(t)
	b := newBrowser(t, core.URL)
	require.Equal(t, http.StatusSeeOther, b.post("/ui/login", url.Values{"token": {apitest.Token}}).code)

	app := b.get("/ui/apps/hello")
	require.Equal(t, http.StatusOK, app.code, app.body)
	for _, want := range []string{"App hello", `id="versions"`, "v2", "latest", "hello:2", "v1", "hello:1", `href="/ui/installations/hello-site"`, "hello.example.com"} {
		require.Contains(t, app.body, want)
	}

	host := b.get("/ui/hosts/back-ssd")
	require.Equal(t, http.StatusOK, host.code, host.body)
	for _, want := range []string{"Host back-ssd", "arch=arm64", "storage=ssd", "region=eu-west", "lender=alice", "rack=r7",
		"Declared", "Measured", "Reserved", "Free", "8192 MiB", instance, "hello-site", "badge running", `id="last-heartbeat">`} {
		require.Contains(t, host.body, want)
	}
	require.NotContains(t, host.body, "not since the leader was elected", "the host heartbeated")
	require.Contains(t, b.get("/ui/hosts/h-labelled").body, "Host back-ssd", "by id too")
	require.Contains(t, b.get("/ui/hosts/back-1").body, "not since the leader was elected")
	require.Contains(t, b.get("/ui/hosts").body, `href="/ui/hosts/h-labelled"`)
	require.Contains(t, b.get("/ui/containers").body, `href="/ui/hosts/h-labelled"`)

	// A live refresh of the host page is just its table.
	frag := b.get("/ui/hosts/back-ssd?fragment=1")
	require.Equal(t, http.StatusOK, frag.code)
	require.Contains(t, frag.body, `id="host-instances"`)
	require.NotContains(t, frag.body, "<html")

	for path, want := range map[string]string{"/ui/apps/nope": `There is no app &#34;nope&#34;`, "/ui/hosts/nope": `There is no host &#34;nope&#34;`} {
		p := b.get(path)
		require.Equal(t, http.StatusNotFound, p.code, path)
		require.Contains(t, p.body, want)
		require.Contains(t, p.body, "<title>Not found")
	}
}

// TestDetailPagesOnAPhone: in Chromium at 390 px the app and host pages fit
// the screen, the lists link to them, and the host page shows an instance
// change without a reload.
func TestDetailPagesOnAPhone(t *testing.T) {
	browserPath := chromiumPath(t)
	core, inst, _ := detailCore(t)
	ctx := chromium(t, browserPath)
	text := textOf(ctx, t)
	phoneLogin(ctx, t, core.URL)
	for _, path := range []string{"/ui/apps/hello", "/ui/hosts/back-ssd", "/ui/hosts/back-1", "/ui/apps/nope"} {
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(core.URL+path), chromedp.WaitVisible(chromedp.CSS("main"))), path)
		width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		require.NoError(t, err)
		require.LessOrEqual(t, width, 390, "%s is %d px wide on a 390 px screen", path, width)
	}

	// From the apps list to the app page, and from Containers to a host.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(core.URL+"/ui/apps"),
		chromedp.Click(chromedp.CSS(`a[href="/ui/apps/hello"]`)),
		chromedp.WaitVisible(chromedp.CSS("#versions")),
	))
	require.Contains(t, text("#versions"), "latest")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(core.URL+"/ui/containers"),
		chromedp.Click(chromedp.CSS(`a[href="/ui/hosts/h-labelled"]`)),
		chromedp.WaitVisible(chromedp.CSS("#host-instances")),
	))
	require.Contains(t, text("#features"), "rack=r7")

	// An instance on back-1 turns running while its page is open.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(core.URL+"/ui/hosts/back-1"),
		chromedp.WaitVisible(chromedp.CSS("#host-instances .badge.pending")),
	))
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, in := range inst.Instances {
		if in.HostName == "back-1" {
			require.NoError(t, core.ReportInstances(rctx, in.HostID, "", map[string]string{in.ID: "running"}))
		}
	}
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#host-instances .badge.running"))))
	require.NotContains(t, text("#last-heartbeat"), "not since", "the heartbeat shows too")
}
