package api

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
)

func TestBlockingQueries(t *testing.T) {
	f := newFixture(t)
	f.register("b1", "back", 1)
	index := f.node.State().Index
	at := func(rec *httptest.ResponseRecorder) uint64 {
		n, err := strconv.ParseUint(rec.Header().Get(HeaderIndex), 10, 64)
		require.NoError(t, err)
		return n
	}

	t.Run("a client that is behind is answered at once", func(t *testing.T) {
		rec := f.call("GET", "/v1/hosts?index="+strconv.FormatUint(index-1, 10), "", http.StatusOK, nil)
		require.Equal(t, index, at(rec))
	})

	t.Run("wait ends without a change", func(t *testing.T) {
		rec := f.call("GET", "/v1/hosts?index="+strconv.FormatUint(index, 10)+"&wait=20ms", "", http.StatusOK, nil)
		require.Equal(t, index, at(rec))
	})

	// Every list and show holds a query until the state passes its index.
	waiting := f.node.waits()
	for i, path := range []string{"/v1/tokens", "/v1/hosts", "/v1/hosts/b1", "/v1/apps", "/v1/installations", "/v1/containers"} {
		t.Run("a change answers "+path, func(t *testing.T) {
			seen := f.node.State().Index
			done := make(chan *httptest.ResponseRecorder, 1)
			go func() {
				done <- f.do(request{method: "GET", path: path + "?index=" + strconv.FormatUint(seen, 10) + "&wait=1m", token: operatorToken})
			}()
			<-waiting
			res := f.node.must(t, &fsm.Command{Type: fsm.CmdCreateApp, App: &fsm.App{Name: "app" + strconv.Itoa(i), Image: "x:1"}})
			rec := <-done
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			require.Equal(t, res.Index, at(rec))
		})
	}
}
