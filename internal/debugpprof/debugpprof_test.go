package debugpprof

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRegisterServesProfilesButNotTheCommandLine(t *testing.T) {
	mux := http.NewServeMux()
	Register(mux)
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/debug/pprof/", http.StatusOK},
		{"/debug/pprof/heap", http.StatusOK},
		{"/debug/pprof/trace?seconds=0.01", http.StatusOK},
		{"/debug/pprof/profile?seconds=1", http.StatusOK},
		{"/debug/pprof/symbol", http.StatusOK},
	} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		require.Equal(t, tc.code, rec.Code, tc.path)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/cmdline", nil))
	require.NotContains(t, rec.Body.String(), "debugpprof.test", "the command line is not served")
}
