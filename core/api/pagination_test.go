package api

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
)

// TestListsPageThroughEverything: 1152 join tokens (the issue saw 1000 of
// them) are all listed, page by page, each once and in order, and the last
// page says nothing remains (issue 11, finding 4).
func TestListsPageThroughEverything(t *testing.T) {
	f := newFixture(t)
	const total = 1152
	for i := range total {
		f.node.must(t, &fsm.Command{Type: fsm.CmdCreateToken, Token: &fsm.JoinToken{ID: fmt.Sprintf("t%05d", i), Hash: HashToken(fmt.Sprint(i))}})
	}
	tests := []struct {
		name  string
		limit string // "" = default page size
		pages int
	}{
		{"default page size", "", (total + DefaultPageSize - 1) / DefaultPageSize},
		{"largest page", "1000", 2},
		{"small pages", "500", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var all []TokenView
			cursor, pages := "", 0
			for {
				q := url.Values{}
				if tc.limit != "" {
					q.Set("limit", tc.limit)
				}
				if cursor != "" {
					q.Set("cursor", cursor)
				}
				var page []TokenView
				rec := f.call("GET", "/v1/tokens?"+q.Encode(), "", http.StatusOK, &page)
				pages++
				all = append(all, page...)
				cursor = rec.Header().Get(HeaderNextCursor)
				if cursor == "" {
					require.Empty(t, rec.Header().Get("Link"))
					break
				}
				require.Contains(t, rec.Header().Get("Link"), `rel="next"`)
				require.Less(t, pages, 100, "paging does not end")
			}
			require.Equal(t, tc.pages, pages)
			require.Len(t, all, total)
			for i, tv := range all {
				require.Equal(t, fmt.Sprintf("t%05d", i), tv.ID)
			}
		})
	}
}

// TestPageContinuesAfterChanges: a cursor names the last item seen, so items
// removed or added before it do not shift the next page.
func TestPageContinuesAfterChanges(t *testing.T) {
	f := newFixture(t)
	for _, id := range []string{"a", "b", "c", "d"} {
		f.node.must(t, &fsm.Command{Type: fsm.CmdCreateToken, Token: &fsm.JoinToken{ID: id, Hash: HashToken(id)}})
	}
	var page []TokenView
	rec := f.call("GET", "/v1/tokens?limit=2", "", http.StatusOK, &page)
	require.Equal(t, []string{"a", "b"}, ids(page))
	f.node.must(t, &fsm.Command{Type: fsm.CmdCreateToken, Token: &fsm.JoinToken{ID: "aa", Hash: HashToken("aa")}})
	f.call("GET", "/v1/tokens?limit=2&cursor="+rec.Header().Get(HeaderNextCursor), "", http.StatusOK, &page)
	require.Equal(t, []string{"c", "d"}, ids(page))
}

func TestPageBadInput(t *testing.T) {
	f := newFixture(t)
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "cursor=%25%25"} {
		rec := f.do(request{method: "GET", path: "/v1/hosts?" + q, token: operatorToken})
		require.Equal(t, http.StatusBadRequest, rec.Code, q)
	}
}

func ids(ts []TokenView) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}
