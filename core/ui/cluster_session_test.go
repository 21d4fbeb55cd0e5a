package ui_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/apiclient/apitest"
)

// cookieClient sends the cookies it is given by hand, so the test decides
// which node sees which cookie (a jar would share them across ports).
type cookieClient struct {
	t       *testing.T
	c       *http.Client
	cookies map[string]string
}

// newCookieClient is a cookieClient that does not follow redirects, so a
// test sees each one.
func newCookieClient(t *testing.T) *cookieClient {
	return &cookieClient{t: t, cookies: map[string]string{}, c: &http.Client{Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (cc *cookieClient) do(method, base, path string, form url.Values) page {
	cc.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, base+path, body)
	require.NoError(cc.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range cc.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	resp, err := cc.c.Do(req)
	require.NoError(cc.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(cc.t, err)
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			delete(cc.cookies, c.Name)
		} else {
			cc.cookies[c.Name] = c.Value
		}
	}
	return page{code: resp.StatusCode, body: string(data), location: resp.Header.Get("Location"), header: resp.Header}
}

// TestSessionsValidOnEveryCoreNode: a login on one core node of a real
// three-node raft group is valid on every node at once (the session is in
// the replicated state, read from the leader), notices and CSRF tokens work
// across nodes, and a logout on another node ends the session on all of
// them at once. The state holds neither the session id nor the token.
func TestSessionsValidOnEveryCoreNode(t *testing.T) {
	cores := apitest.StartCluster(t, 3)
	a, b, c := cores[0], cores[1], cores[2]
	cc := newCookieClient(t)

	p := cc.do(http.MethodPost, a.URL, "/ui/login", url.Values{"token": {apitest.Token}})
	require.Equal(t, http.StatusSeeOther, p.code, p.body)
	id := cc.cookies["potluck_session"]
	require.NotEmpty(t, id)

	// At once on every node, with no wait for followers to apply.
	var csrf string
	for _, core := range cores {
		p := cc.do(http.MethodGet, core.URL, "/ui/", nil)
		require.Equal(t, http.StatusOK, p.code, "%s: %s", core.URL, p.body)
		require.Contains(t, p.body, "hosts ready")
		got := csrfOf(t, p.body)
		if csrf != "" {
			require.Equal(t, csrf, got, "every node derives the session's CSRF token")
		}
		csrf = got
	}

	// Neither the session id nor the token is in any node's state.
	for _, core := range cores {
		require.Eventually(t, func() bool { return len(core.Server.Node.FSM.State().UISessions) == 1 }, 10*time.Second, 10*time.Millisecond)
		st, err := json.Marshal(core.Server.Node.FSM.State())
		require.NoError(t, err)
		require.NotContains(t, string(st), id)
		require.NotContains(t, string(st), apitest.Token)
	}

	// A form posted on C shows its notice on A.
	p = cc.do(http.MethodPost, c.URL, "/ui/installations/nope/scale", url.Values{"csrf": {csrf}, "backs": {"2"}})
	require.Equal(t, http.StatusSeeOther, p.code, p.body)
	require.Contains(t, cc.do(http.MethodGet, a.URL, "/ui/installations", nil).body, `id="error">Scaling nope failed`)
	// A made-up notice cookie is not shown.
	cc.cookies["potluck_flash"] = "ZXZpbA.ZXZpbA"
	require.NotContains(t, cc.do(http.MethodGet, a.URL, "/ui/installations", nil).body, "evil")

	// Logout on B ends the session on A and C at once.
	p = cc.do(http.MethodPost, b.URL, "/ui/logout", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusSeeOther, p.code, p.body)
	require.Equal(t, "/ui/login", p.location)
	require.Empty(t, cc.cookies["potluck_session"], "the cookie is cleared")
	cc.cookies["potluck_session"] = id // a copy of the cookie kept elsewhere
	for _, core := range []*apitest.Core{a, c, b} {
		p := cc.do(http.MethodGet, core.URL, "/ui/", nil)
		require.Equal(t, http.StatusSeeOther, p.code, "%s still accepts the session", core.URL)
		require.Equal(t, "/ui/login", p.location)
		cc.cookies["potluck_session"] = id
		require.Equal(t, http.StatusUnauthorized, cc.do(http.MethodGet, core.URL, "/ui/hosts?fragment=1", nil).code)
		cc.cookies["potluck_session"] = id
		require.Equal(t, http.StatusUnauthorized, cc.do(http.MethodPost, core.URL, "/ui/installations/nope/delete", url.Values{"csrf": {csrf}}).code)
		cc.cookies["potluck_session"] = id
	}
}

// TestSessionWithoutALeader: with no leader the session cannot be
// confirmed, so the node's own copy lets its holder read every page (Main
// says there is no leader; each page says it shows the node's copy) but
// change nothing. Before, every list page answered 503 after waiting 10 s
// for a leader (5 s for the session, 5 s for the page's read).
func TestSessionWithoutALeader(t *testing.T) {
	cores := apitest.StartCluster(t, 3)
	a := cores[0]
	cc := newCookieClient(t)
	require.Equal(t, http.StatusSeeOther, cc.do(http.MethodPost, a.URL, "/ui/login", url.Values{"token": {apitest.Token}}).code)
	require.Eventually(t, func() bool { return len(a.Server.Node.FSM.State().UISessions) == 1 }, 10*time.Second, 10*time.Millisecond)
	csrf := csrfOf(t, cc.do(http.MethodGet, a.URL, "/ui/", nil).body)

	for _, c := range cores[1:] {
		require.NoError(t, c.Server.Close())
	}
	require.Eventually(t, func() bool { return !a.Server.Node.IsLeader() && a.Server.Node.Leader() == "" }, 20*time.Second, 50*time.Millisecond)

	p := cc.do(http.MethodGet, a.URL, "/ui/", nil)
	require.Equal(t, http.StatusOK, p.code, p.body)
	require.Contains(t, p.body, "leader <b>none</b>")
	for _, path := range []string{"/ui/installations", "/ui/hosts", "/ui/apps", "/ui/containers", "/ui/hosts?fragment=1"} {
		p := cc.do(http.MethodGet, a.URL, path, nil)
		require.Equal(t, http.StatusOK, p.code, "%s: %s", path, p.body)
		if !strings.Contains(path, "fragment") {
			require.Contains(t, p.body, `id="stale"`, "%s says it shows this node's copy", path)
		}
	}
	p = cc.do(http.MethodPost, a.URL, "/ui/installations/nope/delete", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusServiceUnavailable, p.code, p.body)
	require.Contains(t, p.body, "no leader")
	p = cc.do(http.MethodPost, a.URL, "/ui/logout", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusServiceUnavailable, p.code, "a logout that cannot be recorded is not pretended")
	require.NotEmpty(t, cc.cookies["potluck_session"])
}
