package apiclient_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/apiclient"
	"potluck/internal/jsonhttp"
)

// TestNamesReachTheCoreUnchanged: a name with characters a URL escapes
// reaches the core as typed, once escaped; it used to be escaped twice, so
// the core answered `no app "Bad%20Name"`.
func TestNamesReachTheCoreUnchanged(t *testing.T) {
	seen := make(chan string, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/apps/{name}", func(w http.ResponseWriter, r *http.Request) {
		seen <- r.PathValue("name")
		jsonhttp.WriteError(w, http.StatusNotFound, "no app")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, base := range []string{srv.URL, srv.URL + "/"} {
		c, err := apiclient.New(base, "token")
		require.NoError(t, err)
		for _, name := range []string{"Bad Name", "a%20b", "x/y", "é", "plain"} {
			t.Run(name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_, err := c.App(ctx, name)
				require.Equal(t, http.StatusNotFound, apiclient.StatusOf(err), "%v", err)
				require.Equal(t, name, <-seen)
			})
		}
	}
}

// TestStaleReadsAskForTheNodesCopy: WithStaleReads adds ?stale to every
// read, keeping the read's own query, and to no write.
func TestStaleReadsAskForTheNodesCopy(t *testing.T) {
	seen := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Method + " " + r.URL.RawQuery
		jsonhttp.WriteError(w, http.StatusNotFound, "nothing here")
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tt := range []struct {
		name string
		opts []apiclient.Option
		want []string
	}{
		{"default", nil, []string{"GET limit=5", "DELETE "}},
		{"stale reads", []apiclient.Option{apiclient.WithStaleReads()}, []string{"GET limit=5&stale=", "DELETE "}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := apiclient.New(srv.URL, "token", append(tt.opts, apiclient.WithRetries(0, 0))...)
			require.NoError(t, err)
			_, _, err = c.Apps(ctx, &apiclient.Query{Limit: 5})
			require.Error(t, err)
			require.Equal(t, tt.want[0], <-seen)
			require.Error(t, c.DeleteApp(ctx, "web"))
			require.Equal(t, tt.want[1], <-seen)
		})
	}
}
