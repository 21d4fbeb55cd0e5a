package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBurn(t *testing.T) {
	srv := httptest.NewServer(newApp("inst-1", 2))
	defer srv.Close()
	for _, tc := range []struct {
		query  string
		status int
		want   string
	}{
		{"ms=2", 200, "burnt 2ms on inst-1"},
		{"ms=5000", 200, "burnt 100ms on inst-1"},
		{"ms=-1", 400, "ms must be"},
		{"ms=lots", 400, "ms must be"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			resp, err := http.Get(srv.URL + "/burn?" + tc.query)
			require.NoError(t, err)
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			require.Equal(t, tc.status, resp.StatusCode)
			require.Contains(t, string(b), tc.want)
		})
	}
}
