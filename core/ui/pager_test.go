package ui_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/apiclient/apitest"
	"potluck/core/ui"
)

// TestListPagesPage: a list longer than a page shows ui.PageSize rows and a
// "Next page" link that continues where the page ended, until the last page
// (issue 11, finding 4).
func TestListPagesPage(t *testing.T) {
	core := apitest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const total = ui.PageSize + 20
	for i := range total {
		_, err := core.Client.CreateImageApp(ctx, fmt.Sprintf("app%04d", i), "registry.example/app:1", 8080)
		require.NoError(t, err)
	}
	b := newBrowser(t, core.URL)
	require.Equal(t, http.StatusSeeOther, b.post("/ui/login", url.Values{"token": {apitest.Token}}).code)

	rows := regexp.MustCompile(`<td><b><a href="/ui/apps/app\d{4}">(app\d{4})</a></b></td>`)
	next := regexp.MustCompile(`<a id="next-page" href="([^"]+)">`)
	var seen []string
	path := "/ui/apps"
	for pages := 1; ; pages++ {
		require.LessOrEqual(t, pages, 2, "a next-page link that never ends")
		p := b.get(path)
		require.Equal(t, http.StatusOK, p.code, p.body)
		for _, m := range rows.FindAllStringSubmatch(p.body, -1) {
			seen = append(seen, m[1])
		}
		m := next.FindStringSubmatch(p.body)
		if m == nil {
			require.Equal(t, 2, pages)
			require.Contains(t, p.body, "First page")
			break
		}
		require.Contains(t, p.body, "more remain")
		path = html.UnescapeString(m[1])
		require.True(t, strings.HasPrefix(path, "/ui/apps?cursor="), path)
	}
	require.Len(t, seen, total)
	for i, name := range seen {
		require.Equal(t, fmt.Sprintf("app%04d", i), name)
	}
}
