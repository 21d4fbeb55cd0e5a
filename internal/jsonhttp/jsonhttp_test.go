package jsonhttp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestErrorFrom(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		message  string
		rejected bool
	}{
		{"json error", 409, `{"error":"name taken"}`, "name taken", true},
		{"plain text", 502, "bad gateway\n", "bad gateway", false},
		{"empty body", 404, "", "Not Found", true},
		{"json without error field", 400, `{"x":1}`, `{"x":1}`, true},
		{"too many requests is not final", 429, `{"error":"slow down"}`, "slow down", false},
		{"unavailable", 503, `{"error":"no leader"}`, "no leader", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := ErrorFrom(tc.status, []byte(tc.body))
			require.Equal(t, tc.message, e.Message)
			require.Equal(t, tc.rejected, e.Rejected())
			wrapped := fmt.Errorf("calling: %w", e)
			require.Equal(t, tc.status, StatusOf(wrapped))
			require.Equal(t, tc.rejected, IsRejected(wrapped))
			require.Equal(t, tc.message, MessageOf(wrapped))
		})
	}
	require.Equal(t, 0, StatusOf(fmt.Errorf("plain")))
	require.Equal(t, "plain", MessageOf(fmt.Errorf("plain")))
}

func TestDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			WriteError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		var in map[string]int
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		WriteJSON(w, http.StatusOK, map[string]int{"double": in["n"] * 2})
	}))
	defer srv.Close()
	ctx := context.Background()

	var out map[string]int
	err := Do(ctx, srv.Client(), Request{Method: http.MethodPost, URL: srv.URL, Token: "secret", Body: map[string]int{"n": 21}}, &out, 1<<10)
	require.NoError(t, err)
	require.Equal(t, 42, out["double"])

	err = Do(ctx, srv.Client(), Request{Method: http.MethodPost, URL: srv.URL, Body: []byte(`{"n":1}`)}, &out, 1<<10)
	require.Equal(t, http.StatusUnauthorized, StatusOf(err))
	require.ErrorContains(t, err, "missing or wrong bearer token (HTTP 401)")
}
