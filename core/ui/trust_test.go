package ui_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/apiclient"
	"potluck/apiclient/apitest"
)

// TestUILoginScopedTokens: app-owner and read-only tokens log in, with the
// same limits as in the API; failed logins are rate limited per address.
func TestUILoginScopedTokens(t *testing.T) {
	core := apitest.Start(t)
	ctx := context.Background()
	owner, err := core.Client.CreateScopedToken(ctx, apiclient.TokenRequest{Scope: apiclient.ScopeAppOwner, Apps: []string{"web"}})
	require.NoError(t, err)
	reader, err := core.Client.CreateScopedToken(ctx, apiclient.TokenRequest{Scope: apiclient.ScopeReadOnly})
	require.NoError(t, err)

	b := newBrowser(t, core.URL)
	require.Equal(t, http.StatusSeeOther, b.post("/ui/login", url.Values{"token": {owner.Token}}).code)
	p := b.get("/ui/hosts")
	require.Equal(t, http.StatusForbidden, p.code, "an app owner does not see hosts")
	require.Contains(t, p.body, "app-owner token may not")
	require.Equal(t, http.StatusOK, b.get("/ui/apps").code)

	r := newBrowser(t, core.URL)
	require.Equal(t, http.StatusSeeOther, r.post("/ui/login", url.Values{"token": {reader.Token}}).code)
	require.Equal(t, http.StatusOK, r.get("/ui/hosts").code, "a reader reads everything")

	// Failed logins from one address: refused after the burst, with Retry-After.
	x := newBrowser(t, core.URL)
	var last page
	for range 11 {
		last = x.post("/ui/login", url.Values{"token": {"wrong-token-guess"}})
	}
	require.Equal(t, http.StatusTooManyRequests, last.code, last.body)
	require.NotEmpty(t, last.header.Get("Retry-After"))
	require.Contains(t, last.body, "Too many failed logins")
}
