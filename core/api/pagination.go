package api

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
)

// Lists are paged: ?limit=N (default DefaultPageSize, at most MaxList) and
// ?cursor=C from the previous page's HeaderNextCursor. Items are in a stable
// order (by id or name), and a cursor is the last key of its page, so a page
// continues where the previous one ended even when items were added or
// removed in between.

// HeaderNextCursor carries the cursor of the next page; absent on the last.
const HeaderNextCursor = "X-Potluck-Next-Cursor"

// DefaultPageSize is the page size without ?limit.
const DefaultPageSize = 100

// page is one parsed ?limit&cursor.
type page struct {
	limit int
	after string // key of the last item of the previous page; "" = from the start
}

func (s *Server) parsePage(r *http.Request) (page, error) {
	q := r.URL.Query()
	p := page{limit: min(DefaultPageSize, s.cfg.MaxList)}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > s.cfg.MaxList {
			return page{}, fmt.Errorf("limit must be a number from 1 to %d", s.cfg.MaxList)
		}
		p.limit = n
	}
	if c := q.Get("cursor"); c != "" {
		key, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || len(key) == 0 {
			return page{}, fmt.Errorf("cursor %q is not one this API gave out (use %s of the previous page)", c, HeaderNextCursor)
		}
		p.after = string(key)
	}
	return p, nil
}

// writePage answers one page of items, which are sorted by key: the page as
// a JSON array, and when more remain the next page's cursor in
// HeaderNextCursor and a Link rel="next" header.
func writePage[T, V any](s *Server, w http.ResponseWriter, r *http.Request, items []T, key func(T) string, view func(T) V) {
	p, err := s.parsePage(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	start := sort.Search(len(items), func(i int) bool { return key(items[i]) > p.after })
	end := min(start+p.limit, len(items))
	out := make([]V, 0, end-start)
	for _, it := range items[start:end] {
		out = append(out, view(it))
	}
	if end < len(items) {
		next := base64.RawURLEncoding.EncodeToString([]byte(key(items[end-1])))
		w.Header().Set(HeaderNextCursor, next)
		q := r.URL.Query()
		q.Set("cursor", next)
		q.Set("limit", strconv.Itoa(p.limit))
		q.Del("index")
		q.Del("wait")
		w.Header().Set("Link", fmt.Sprintf("<%s>; rel=\"next\"", (&url.URL{Path: r.URL.Path, RawQuery: q.Encode()}).String()))
	}
	writeJSON(w, http.StatusOK, out)
}
