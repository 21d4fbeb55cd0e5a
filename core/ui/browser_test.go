package ui_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"potluck/apiclient"
	"potluck/apiclient/apitest"
	"potluck/bench/appimage"
	"potluck/internal/dockertest"
	"potluck/internal/testenv"
)

const chromiumBin = "/usr/bin/chromium"

// chromiumPath returns the Chromium binary, or skips the test when there is
// none (fails on CI, where it must be there).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumBin); err == nil {
		return chromiumBin
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Missing(t, "chromium is not installed (scripts/install-deps.sh installs it)")
	}
	return p
}

// phoneLogin logs in to the UI at coreURL with the operator token, in
// ctx's tab at a phone's width.
func phoneLogin(ctx context.Context, t *testing.T, coreURL string) {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(coreURL+"/ui/login"),
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.SendKeys(chromedp.CSS("#token"), apitest.Token),
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS(".cards")),
	))
}

// textOf reads the text of the first element a selector matches in ctx's
// tab. A live refresh may replace the element between finding and reading
// it ("No node with given id found", seen on a loaded machine): it is then
// found again.
func textOf(ctx context.Context, t *testing.T) func(sel string) string {
	return func(sel string) string {
		t.Helper()
		var err error
		for range 3 {
			var v string
			if v, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel))); err == nil {
				return v
			}
			time.Sleep(200 * time.Millisecond)
		}
		require.NoError(t, err)
		return ""
	}
}

// chromium starts a fresh headless Chromium (its own profile, no network
// beyond what the page asks for) and returns a chromedp context for a tab,
// bounded at 90 seconds.
func chromium(t *testing.T, path string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	return bctx
}

// TestUIInChromium drives the UI like a person: log in with the token,
// upload the sample app through the form, create an installation, see it
// listed with its instances, and save a screenshot.
func TestUIInChromium(t *testing.T) {
	browserPath := chromiumPath(t)
	core := apitest.Start(t)
	core.RegisterHost(t, "front-1", "front", 1, 512)
	core.RegisterHost(t, "back-1", "back", 2, 2048)
	core.RegisterHost(t, "back-2", "back", 2, 2048)

	dir := t.TempDir()
	// The sample app's image when Docker can build it (CI has Docker), else
	// a small archive of the same shape (the core only checks the archive).
	tarball, image := "", "hello:1"
	t.Run("sample image", func(t *testing.T) {
		tarball, image = dockertest.SampleImage(t), appimage.DefaultTag
	})
	if tarball == "" {
		tarball, image = filepath.Join(dir, "hello.tar"), "hello:1"
		require.NoError(t, os.WriteFile(tarball, apitest.DockerSaveTar(t, image, 500_000), 0o644))
	}
	ctx := chromium(t, browserPath) // after the image build, which has its own deadline
	junk := filepath.Join(dir, "junk.tar")
	require.NoError(t, os.WriteFile(junk, []byte("not a tarball"), 0o644))

	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	text := textOf(ctx, t)

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(core.URL+"/ui/"),
		chromedp.WaitVisible(css("#login-form")),
	))
	title, err := chromedp.Run(ctx, chromedp.Title())
	require.NoError(t, err)
	require.Contains(t, title, "Log in")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(css("#token"), apitest.Token),
		chromedp.Click(css("#login")),
		chromedp.WaitVisible(css(".cards")),
	))
	require.Contains(t, text("main"), "hosts ready")

	// Apps: Add — the upload form (sent by XHR with a progress bar). A bad
	// file first: the error shows on the form, which works again.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(css(`a[href="/ui/apps/new"]`)),
		chromedp.WaitVisible(css("#app-form")),
		chromedp.SendKeys(css("#name"), "junk"),
		chromedp.SetUploadFiles(css("#file"), []string{junk}),
		chromedp.Click(css("#upload")),
		chromedp.WaitVisible(css("#error")),
	))
	require.Contains(t, text("#error"), "not a docker save tarball")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Clear(css("#name")),
		chromedp.SendKeys(css("#name"), "hello"),
		chromedp.SendKeys(css("#port"), "8080"),
		chromedp.SetUploadFiles(css("#file"), []string{tarball}),
		chromedp.Click(css("#upload")),
		chromedp.WaitVisible(css("#flash")),
	))
	appsText := text("main")
	require.Contains(t, appsText, "App hello uploaded")
	require.Contains(t, appsText, image)

	// Installations: Add.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(css(`a[href="/ui/installations/new"]`)),
		chromedp.WaitVisible(css("#installation-form")),
		chromedp.SetValue(css("#app"), "hello"),
		chromedp.SendKeys(css("#domain"), "hello.example.com"),
		chromedp.SetValue(css("#backs"), "2"),
		chromedp.SendKeys(css("#env"), "GREETING=hi"),
		chromedp.Click(css("#create")),
		chromedp.WaitVisible(css("#inst-hello")),
	))
	instText := text("main")
	require.Contains(t, instText, "Installation hello created")
	require.Contains(t, instText, "hello.example.com")
	require.Contains(t, instText, "GREETING=hi")
	require.Equal(t, 2, strings.Count(instText, "pending"), instText)

	// Live state: an instance reported running shows up on the open page
	// without a reload (the page holds a blocking query).
	ictx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inst, _, err := core.Client.Installation(ictx, "hello", nil)
	require.NoError(t, err)
	require.NoError(t, core.ReportInstances(ictx, inst.Instances[0].HostID, "", map[string]string{inst.Instances[0].ID: "running"}))
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(css("#inst-hello .badge.running"))))
	require.Contains(t, text("main"), "1/2 running")
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(css(`a[href="/ui/containers"]`)),
		chromedp.WaitVisible(css("#containers")),
	))
	containersText := text("#containers")
	require.Contains(t, containersText, "running")
	require.Contains(t, containersText, "back-")

	shot := filepath.Join(t.TempDir(), "ui.png")
	if dst := os.Getenv("POTLUCK_UI_SCREENSHOT"); dst != "" {
		shot = dst // for refreshing docs/ui.png
	}
	require.NoError(t, os.WriteFile(shot, png, 0o644))
	require.Greater(t, len(png), 10_000)
	require.Equal(t, "\x89PNG", string(png[:4]))
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
}

// TestUIOnAPhone: at 390 px wide no page is wider than the screen; the
// installation page shows instances, releases with a rollback, events and
// logs; the name field's pattern works under Chromium's v-flag; an unknown
// page is a real 404 page; Main counts pending and failed instances.
func TestUIOnAPhone(t *testing.T) {
	browserPath := chromiumPath(t)
	core := apitest.Start(t)
	core.RegisterHost(t, "front-1", "front", 1, 512)
	back := core.RegisterHost(t, "back-1", "back", 2, 2048)
	core.RegisterHost(t, "back-2", "back", 2, 2048)
	ctx0, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tar := apitest.DockerSaveTar(t, "hello:1", 10_000)
	_, err := core.Client.UploadApp(ctx0, "hello", 8080, bytes.NewReader(tar), int64(len(tar)), nil)
	require.NoError(t, err)
	inst, err := core.Client.CreateInstallation(ctx0, apiclient.CreateInstallationRequest{
		Name: "hello", App: "hello", Fronts: 1, Backs: 2, Domain: "a-rather-long-domain-name.hello.example.com", MemoryMB: 64,
		Env: map[string]string{"GREETING": "a fairly long environment value that would widen a table"},
	})
	require.NoError(t, err)
	for _, in := range inst.Instances {
		if in.HostID == back.ID {
			require.NoError(t, core.ReportInstances(ctx0, in.HostID, "exited with code 1", map[string]string{in.ID: "failed"}))
		}
	}
	_, err = core.Client.Deploy(ctx0, "hello", apiclient.DeployRequest{Env: map[string]string{"GREETING": "two"}})
	require.NoError(t, err)

	ctx := chromium(t, browserPath)
	phoneLogin(ctx, t, core.URL)
	text := textOf(ctx, t)
	require.Contains(t, text("#pending-count"), "3", "1 of release 1 and 2 of release 2")
	require.Contains(t, text("#failed-count"), "1")
	require.Contains(t, text("main"), "Instances failed or lost in: hello")

	for _, path := range []string{"/ui/", "/ui/apps", "/ui/hosts", "/ui/installations", "/ui/installations/hello", "/ui/containers", "/ui/apps/new", "/ui/installations/new"} {
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(core.URL+path), chromedp.WaitVisible(chromedp.CSS("main"))), path)
		width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		require.NoError(t, err)
		require.LessOrEqual(t, width, 390, "%s is %d px wide on a 390 px screen", path, width)
	}

	// The installation page (still open from the loop above).
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(core.URL+"/ui/installations/hello"), chromedp.WaitVisible(chromedp.CSS("#releases"))))
	page := text("main")
	for _, want := range []string{"Instances", "Releases", "v2", "deploying", "v1", "live", "GREETING=two", "Recent events", "release 2 deploying", "Logs", "[potluck] logs unavailable from back-1"} {
		require.Contains(t, page, want)
	}

	// The name pattern is valid under the v-flag: a bad name is caught by
	// the browser before it is sent.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(core.URL+"/ui/apps/new"),
		chromedp.WaitVisible(chromedp.CSS("#name")),
		chromedp.SendKeys(chromedp.CSS("#name"), "Bad_Name"),
	))
	mismatch, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('#name').validity.patternMismatch`))
	require.NoError(t, err)
	require.True(t, mismatch, "pattern ignored: Chromium found it invalid under the v flag")
	valid, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(e => { e.value = 'good-name-2'; return e.checkValidity() })(document.querySelector('#name'))`))
	require.NoError(t, err)
	require.True(t, valid)

	// A real 404 page, in the UI's layout.
	resp, err := http.Get(core.URL + "/ui/nothing-here")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "not logged in: the login page")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(core.URL+"/ui/nothing-here"), chromedp.WaitVisible(chromedp.CSS("main"))))
	title, err := chromedp.Run(ctx, chromedp.Title())
	require.NoError(t, err)
	require.Contains(t, title, "Not found")
	require.Contains(t, text("main"), "There is no such page.")
}
