package ui_test

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/apiclient"
	"potluck/apiclient/apitest"
)

// browser is a plain HTTP client with a cookie jar that does not follow
// redirects, so each answer can be checked.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	code     int
	body     string
	location string
	header   http.Header
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return page{code: resp.StatusCode, body: string(data), location: resp.Header.Get("Location"), header: resp.Header}
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.base+path, nil)
	require.NoError(b.t, err)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values, headers ...string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(req)
}

var csrfPattern = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfPattern.FindStringSubmatch(body)
	require.NotNil(t, m, "no CSRF token on the page")
	return m[1]
}

func (b *browser) upload(path string, fields [][2]string, fileName string, data []byte) page {
	b.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		require.NoError(b.t, mw.WriteField(f[0], f[1]))
	}
	if fileName != "" {
		fw, err := mw.CreateFormFile("file", fileName)
		require.NoError(b.t, err)
		_, err = fw.Write(data)
		require.NoError(b.t, err)
	}
	require.NoError(b.t, mw.Close())
	req, err := http.NewRequest(http.MethodPost, b.base+path, &buf)
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.do(req)
}

func TestUIOverHTTP(t *testing.T) {
	core := apitest.Start(t)
	core.RegisterHost(t, "f1", "front", 1, 512)
	core.RegisterHost(t, "b1", "back", 2, 1024)
	core.RegisterHost(t, "b2", "back", 2, 1024)
	b := newBrowser(t, core.URL)

	// Not logged in: pages redirect to the login page, fragments say 401.
	p := b.get("/ui/hosts")
	require.Equal(t, http.StatusSeeOther, p.code)
	require.Equal(t, "/ui/login", p.location)
	require.Equal(t, http.StatusUnauthorized, b.get("/ui/hosts?fragment=1").code)
	p = b.get("/ui/login")
	require.Equal(t, http.StatusOK, p.code)
	require.Contains(t, p.header.Get("Content-Security-Policy"), "default-src 'self'")

	logins := []struct {
		name  string
		token string
		code  int
		want  string
	}{
		{"empty token", "", http.StatusBadRequest, "Enter the operator token"},
		{"wrong token", "not-the-token", http.StatusUnauthorized, "Wrong token"},
		{"join token is not enough", mustJoinToken(t, core), http.StatusUnauthorized, "Wrong token"},
	}
	for _, l := range logins {
		t.Run(l.name, func(t *testing.T) {
			p := b.post("/ui/login", url.Values{"token": {l.token}})
			require.Equal(t, l.code, p.code)
			require.Contains(t, p.body, l.want)
			require.NotContains(t, p.body, "goroutine")
		})
	}
	// A cross-site login or form post is refused before anything else.
	require.Equal(t, http.StatusForbidden, b.post("/ui/login", url.Values{"token": {apitest.Token}}, "Origin", "http://evil.example").code)
	require.Equal(t, http.StatusForbidden, b.post("/ui/login", url.Values{"token": {apitest.Token}}, "Sec-Fetch-Site", "cross-site").code)

	p = b.post("/ui/login", url.Values{"token": {apitest.Token}})
	require.Equal(t, http.StatusSeeOther, p.code)
	setCookie := p.header.Get("Set-Cookie")
	require.Contains(t, setCookie, "HttpOnly")
	require.Contains(t, setCookie, "SameSite=Strict")
	require.NotContains(t, setCookie, apitest.Token, "the cookie must not carry the token")

	main := b.get("/ui/")
	require.Equal(t, http.StatusOK, main.code)
	for _, want := range []string{"Main", "Apps:", "Hosts:", "Installations:", "Containers:", "core1", "hosts ready", "<th>Version</th>", runtime.Version()} {
		require.Contains(t, main.body, want)
	}
	csrf := csrfOf(t, main.body)

	// Upload: the file streams through the form; CSRF must come first.
	tarball := apitest.DockerSaveTar(t, "hello:1", 100_000)
	uploads := []struct {
		name   string
		fields [][2]string
		file   []byte
		code   int
		want   string
	}{
		{"no csrf", [][2]string{{"name", "x"}}, tarball, http.StatusForbidden, "CSRF"},
		{"wrong csrf", [][2]string{{"csrf", "nope"}, {"name", "x"}}, tarball, http.StatusForbidden, "CSRF"},
		{"bad name", [][2]string{{"csrf", csrf}, {"name", "Bad Name"}}, tarball, http.StatusBadRequest, "Name: 1-63"},
		{"bad port", [][2]string{{"csrf", csrf}, {"name", "x"}, {"port", "99999"}}, tarball, http.StatusBadRequest, "Container port"},
		{"not a tarball", [][2]string{{"csrf", csrf}, {"name", "junk"}}, []byte("junk"), http.StatusBadRequest, "Upload failed"},
		{"no file", [][2]string{{"csrf", csrf}, {"name", "x"}}, nil, http.StatusBadRequest, "Choose a tarball"},
		{"ok", [][2]string{{"csrf", csrf}, {"name", "hello"}, {"port", "8080"}}, tarball, http.StatusSeeOther, ""},
		{"again: a second version", [][2]string{{"csrf", csrf}, {"name", "hello"}, {"port", "8080"}}, tarball, http.StatusSeeOther, ""},
	}
	for _, u := range uploads {
		t.Run("upload "+u.name, func(t *testing.T) {
			fileName := ""
			if u.file != nil {
				fileName = "hello.tar"
			}
			p := b.upload("/ui/apps", u.fields, fileName, u.file)
			require.Equal(t, u.code, p.code, p.body)
			require.Contains(t, p.body, u.want)
		})
	}
	apps := b.get("/ui/apps")
	require.Contains(t, apps.body, "hello:1")
	require.Contains(t, apps.body, "sha256:")

	// Create an installation through the form.
	forms := []struct {
		name string
		form url.Values
		code int
		want string
	}{
		{"no csrf", url.Values{"app": {"hello"}}, http.StatusForbidden, "CSRF"},
		{"missing domain", url.Values{"csrf": {csrf}, "app": {"hello"}, "fronts": {"1"}, "backs": {"1"}}, http.StatusBadRequest, "Enter the domain"},
		{"bad env", url.Values{"csrf": {csrf}, "app": {"hello"}, "domain": {"h.example.com"}, "fronts": {"1"}, "backs": {"1"}, "env": {"NOPE"}}, http.StatusBadRequest, "KEY=VALUE"},
		{"unknown app", url.Values{"csrf": {csrf}, "app": {"nope"}, "domain": {"h.example.com"}, "fronts": {"1"}, "backs": {"1"}}, http.StatusBadRequest, "nope"},
		{"no capacity", url.Values{"csrf": {csrf}, "app": {"hello"}, "domain": {"h.example.com"}, "fronts": {"1"}, "backs": {"3"}}, http.StatusConflict, "not enough capacity"},
		{"ok", url.Values{"csrf": {csrf}, "app": {"hello"}, "domain": {"hello.example.com"}, "fronts": {"1"}, "backs": {"2"}, "cpus": {"0.5"}, "memory": {"256"}, "env": {"GREETING=hi\r\nMODE=ui"}}, http.StatusSeeOther, ""},
	}
	for _, f := range forms {
		t.Run("create "+f.name, func(t *testing.T) {
			p := b.post("/ui/installations", f.form)
			require.Equal(t, f.code, p.code, p.body)
			require.Contains(t, p.body, f.want)
		})
	}
	list := b.get("/ui/installations")
	require.Equal(t, http.StatusOK, list.code)
	for _, want := range []string{"hello.example.com", "GREETING=hi MODE=ui", "pending", "b1", "b2", "f1"} {
		require.Contains(t, list.body, want)
	}
	index := list.header.Get("X-Potluck-Index")
	require.NotEmpty(t, index)

	// HTTPS: the installation's page says how it is served.
	require.NotContains(t, b.get("/ui/installations/hello").body, "HTTPS:")
	_, err := core.Client.SetInstallationTLS(t.Context(), "hello", apiclient.TLSRequest{Mode: "acme", RedirectHTTP: true})
	require.NoError(t, err)
	require.Contains(t, b.get("/ui/installations/hello").body, "HTTPS: automatic certificate (ACME) · HTTP redirects to HTTPS ·\n  certificate not reported by a Front yet")
	index = b.get("/ui/installations").header.Get("X-Potluck-Index")

	// Live state: a fragment with the current index waits for a change.
	done := make(chan page, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, core.URL+"/ui/containers?fragment=1&index="+index+"&wait=20s", nil)
		resp, err := b.c.Do(req)
		if err != nil {
			done <- page{}
			return
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		done <- page{code: resp.StatusCode, body: string(data)}
	}()
	select {
	case <-done:
		t.Fatal("fragment answered before the state changed")
	case <-time.After(300 * time.Millisecond):
	}
	p = b.post("/ui/installations/hello/scale", url.Values{"csrf": {csrf}, "backs": {"1"}})
	require.Equal(t, http.StatusSeeOther, p.code)
	require.Equal(t, "/ui/installations", p.location, "no message in the URL")
	select {
	case f := <-done:
		require.Equal(t, http.StatusOK, f.code)
		require.Contains(t, f.body, `<table id="containers">`)
		require.NotContains(t, f.body, "<html")
		require.Equal(t, 1, strings.Count(f.body, "badge pending"))
	case <-time.After(20 * time.Second):
		t.Fatal("fragment did not wake up")
	}

	// The notice is shown once, by the next page (it is kept in the session).
	require.Contains(t, b.get("/ui/installations").body, `id="flash">Installation hello scaled.`)
	require.NotContains(t, b.get("/ui/installations").body, `id="flash"`)
	// Messages cannot be injected through the URL.
	require.NotContains(t, b.get("/ui/?msg=evil&err=evil").body, "evil")

	// The page's script uploads by XHR and is told where to go next.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	require.NoError(t, mw.WriteField("csrf", csrf))
	require.NoError(t, mw.WriteField("name", "hello-xhr"))
	fw, err := mw.CreateFormFile("file", "hello.tar")
	require.NoError(t, err)
	_, err = fw.Write(tarball)
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	req, err := http.NewRequest(http.MethodPost, core.URL+"/ui/apps", &buf)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("X-Potluck-Upload", "xhr")
	p = b.do(req)
	require.Equal(t, http.StatusOK, p.code)
	require.Equal(t, "/ui/apps", p.body)
	require.Contains(t, b.get("/ui/apps").body, "App hello-xhr uploaded")

	// Other forms must be url-encoded with the CSRF token: a multipart post
	// (even one with the token) is refused.
	p = b.upload("/ui/installations/hello/delete", [][2]string{{"csrf", csrf}}, "", nil)
	require.Equal(t, http.StatusForbidden, p.code)

	// Errors come back on the page, not as a stack trace.
	p = b.post("/ui/apps/hello/delete", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusConflict, p.code)
	require.Contains(t, p.body, "Deleting app hello failed")
	p = b.post("/ui/hosts/nope/decommission", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusNotFound, p.code)
	p = b.post("/ui/installations/nope/scale", url.Values{"csrf": {csrf}, "backs": {"2"}})
	require.Equal(t, http.StatusSeeOther, p.code)
	require.Contains(t, b.get("/ui/installations").body, `id="error">Scaling nope failed`)

	require.Equal(t, http.StatusSeeOther, b.post("/ui/installations/hello/delete", url.Values{"csrf": {csrf}}).code)
	require.Equal(t, http.StatusSeeOther, b.post("/ui/hosts/b2/decommission", url.Values{"csrf": {csrf}}).code)
	require.Contains(t, b.get("/ui/hosts").body, "badge decommissioned")
	require.Equal(t, http.StatusSeeOther, b.post("/ui/apps/hello/delete", url.Values{"csrf": {csrf}}).code)

	// Log out: the session is gone on the server too.
	require.Equal(t, http.StatusSeeOther, b.post("/ui/logout", url.Values{"csrf": {csrf}}).code)
	require.Equal(t, http.StatusSeeOther, b.get("/ui/").code)
}

func mustJoinToken(t *testing.T, core *apitest.Core) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := core.Client.CreateToken(ctx, "ui test", 0)
	require.NoError(t, err)
	return tok.Token
}

// TestUIOnFollower: the UI of a follower works too; its writes (including
// the streamed upload) are forwarded to the leader by the API it calls.
func TestUIOnFollower(t *testing.T) {
	cores := apitest.StartCluster(t, 3)
	f := apitest.Follower(t, cores)
	f.RegisterHost(t, "f1", "front", 1, 512)
	f.RegisterHost(t, "b1", "back", 2, 1024)
	b := newBrowser(t, f.URL)
	require.Equal(t, http.StatusSeeOther, b.post("/ui/login", url.Values{"token": {apitest.Token}}).code)
	csrf := csrfOf(t, b.get("/ui/").body)

	p := b.upload("/ui/apps", [][2]string{{"csrf", csrf}, {"name", "hello"}, {"port", "8080"}}, "hello.tar", apitest.DockerSaveTar(t, "hello:1", 300_000))
	require.Equal(t, http.StatusSeeOther, p.code, p.body)
	p = b.post("/ui/installations", url.Values{"csrf": {csrf}, "app": {"hello"}, "domain": {"hello.example.com"}, "fronts": {"1"}, "backs": {"1"}})
	require.Equal(t, http.StatusSeeOther, p.code, p.body)
	list := b.get("/ui/installations")
	require.Contains(t, list.body, "hello.example.com")
	require.Contains(t, list.body, "b1")
	require.Contains(t, b.get("/ui/").body, "core3")
}
