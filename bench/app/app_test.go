package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSampleApp(t *testing.T) {
	srv := httptest.NewServer(newApp("inst-1", 2))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "inst-1", resp.Header.Get("X-Instance"))

	for _, tc := range []struct {
		name, ctype, body string
		status            int
		want              map[string]string
	}{
		{"json", "application/json", `{"name":"ada"}`, 201, map[string]string{"name": "ada"}},
		{"form", "application/x-www-form-urlencoded", url.Values{"name": {"bob"}}.Encode(), 201, map[string]string{"name": "bob"}},
		{"bad json", "application/json", `[1,2]`, 400, nil},
		{"wrong type", "text/plain", `hi`, 400, nil},
		{"too big", "application/json", `{"a":"` + strings.Repeat("x", maxBody) + `"}`, 400, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL+"/", tc.ctype, strings.NewReader(tc.body))
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, tc.status, resp.StatusCode)
			var got map[string]any
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
			if tc.want != nil {
				require.Equal(t, "inst-1", got["instance"])
				require.EqualValues(t, map[string]any{"name": tc.want["name"]}, got["data"])
			} else {
				require.NotEmpty(t, got["error"])
			}
		})
	}
	resp, err = http.Get(srv.URL + "/items")
	require.NoError(t, err)
	var list struct{ Items []item }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
	resp.Body.Close()
	require.Len(t, list.Items, 2, "the store is bounded")

	resp, err = http.Get(srv.URL + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
}
