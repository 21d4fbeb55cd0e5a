package jsonhttp

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDecode(t *testing.T) {
	type body struct {
		Name string `json:"name"`
	}
	tests := []struct {
		name    string
		body    string
		status  int // 0: accepted
		message string
		empty   bool
	}{
		{name: "one object", body: `{"name":"a"}`},
		{name: "trailing whitespace", body: "{\"name\":\"a\"}\n\n"},
		{name: "unknown field", body: `{"name":"a","size":1}`, status: 400, message: `malformed JSON body: json: unknown field "size"`},
		{name: "empty", body: "", status: 400, message: "empty body: send a JSON object", empty: true},
		{name: "two values", body: `{"name":"a"} {"name":"b"}`, status: 400, message: "malformed JSON body: more than one JSON value"},
		{name: "not JSON", body: `name=a`, status: 400, message: "malformed JSON body: invalid character"},
		{name: "wrong type", body: `{"name":1}`, status: 400, message: "malformed JSON body: json: cannot unmarshal number"},
		{name: "too large", body: `{"name":"` + strings.Repeat("a", 64) + `"}`, status: 413, message: "body larger than 32 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			var v body
			err := Decode(httptest.NewRecorder(), r, &v, 32)
			if tc.status == 0 {
				require.NoError(t, err)
				require.Equal(t, "a", v.Name)
				return
			}
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tc.status, e.Status)
			require.Contains(t, e.Message, tc.message)
			require.Equal(t, tc.empty, errors.Is(err, ErrEmptyBody))
		})
	}
}

func TestWriteIndented(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteIndented(rec, http.StatusTeapot, ErrorBody{Error: "short and stout"})
	require.Equal(t, http.StatusTeapot, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	require.Equal(t, "{\n  \"error\": \"short and stout\"\n}\n", rec.Body.String())

	rec = httptest.NewRecorder()
	WriteError(rec, http.StatusNotFound, "gone")
	require.Equal(t, "{\"error\":\"gone\"}\n", rec.Body.String())
}
