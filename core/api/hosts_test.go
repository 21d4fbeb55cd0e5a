package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPatchHostLabels: PATCH /v1/hosts/{id} merges the operator's lender and
// labels into the host (null removes a label), and refuses what placement
// could not use, changing nothing.
func TestPatchHostLabels(t *testing.T) {
	f := newFixture(t)
	f.register("b1", "back", 1)
	steps := []struct {
		name       string
		body       string
		status     int
		wantLender string
		wantLabels map[string]string
		wantErr    string
	}{
		{"set lender and labels", `{"lender":"alice","labels":{"gpu":"a100","zone":"z1"}}`, http.StatusOK, "alice", map[string]string{"gpu": "a100", "zone": "z1"}, ""},
		{"absent fields are kept", `{"labels":{"rack":"r7"}}`, http.StatusOK, "alice", map[string]string{"gpu": "a100", "zone": "z1", "rack": "r7"}, ""},
		{"null removes a label", `{"labels":{"zone":null}}`, http.StatusOK, "alice", map[string]string{"gpu": "a100", "rack": "r7"}, ""},
		{"empty lender clears it", `{"lender":""}`, http.StatusOK, "", map[string]string{"gpu": "a100", "rack": "r7"}, ""},
		{"a feature name is not a label", `{"labels":{"arch":"arm64"}}`, http.StatusBadRequest, "", map[string]string{"gpu": "a100", "rack": "r7"}, "arch, storage, region and lender are host features"},
		{"bad key", `{"labels":{"Bad Key":"x"}}`, http.StatusBadRequest, "", map[string]string{"gpu": "a100", "rack": "r7"}, `label key "Bad Key"`},
		{"separator in a value", `{"labels":{"gpu":"a,b"}}`, http.StatusBadRequest, "", map[string]string{"gpu": "a100", "rack": "r7"}, `label gpu value "a,b"`},
		{"bad lender", `{"lender":"alice smith"}`, http.StatusBadRequest, "", map[string]string{"gpu": "a100", "rack": "r7"}, `lender "alice smith"`},
		{"region is the agent's", `{"region":"eu"}`, http.StatusBadRequest, "", map[string]string{"gpu": "a100", "rack": "r7"}, "region is declared by the host's agent"},
		{"unknown field", `{"zone":"z1"}`, http.StatusBadRequest, "", map[string]string{"gpu": "a100", "rack": "r7"}, "zone"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			rec := f.do(request{method: http.MethodPatch, path: "/v1/hosts/b1", token: operatorToken, body: st.body})
			require.Equal(t, st.status, rec.Code, rec.Body.String())
			if st.wantErr != "" {
				require.Contains(t, decodeAs[map[string]string](t, rec)["error"], st.wantErr)
			}
			var h HostView
			f.call("GET", "/v1/hosts/b1", "", http.StatusOK, &h)
			require.Equal(t, st.wantLender, h.Lender)
			require.Equal(t, st.wantLabels, h.Labels)
		})
	}
	rec := f.do(request{method: http.MethodPatch, path: "/v1/hosts/nope", token: operatorToken, body: `{"lender":"bob"}`})
	require.Equal(t, http.StatusNotFound, rec.Code)
	many := make([]string, 0, 40)
	for i := range 40 {
		many = append(many, `"k`+strings.Repeat("x", i%5)+string(rune('a'+i%26))+`":"v"`)
	}
	rec = f.do(request{method: http.MethodPatch, path: "/v1/hosts/b1", token: operatorToken, body: `{"labels":{` + strings.Join(many, ",") + `}}`})
	require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), "at most 32")
}
