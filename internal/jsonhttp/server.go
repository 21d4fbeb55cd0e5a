package jsonhttp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ErrorBody is the body of a failed answer.
type ErrorBody struct {
	Error string `json:"error"`
}

// WriteJSON answers v as JSON with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteIndented answers v as JSON indented by two spaces, for APIs that
// people read with curl.
func WriteIndented(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError answers {"error": msg} with status code.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, ErrorBody{Error: msg})
}

// ErrEmptyBody is the cause of Decode's error for a request without a body;
// a handler for which the body is optional tests for it with errors.Is.
var ErrEmptyBody = errors.New("empty body")

// Decode reads r's body as exactly one JSON value into v, strictly: at most
// maxBytes (past that the connection is closed, as http.MaxBytesReader
// does), and fields v does not have are an error rather than silently
// dropped. A failure is an *Error holding the status to answer (413 past
// maxBytes, 400 otherwise) and a message for the caller.
func Decode(w http.ResponseWriter, r *http.Request, v any, maxBytes int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return &Error{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("body larger than %d bytes", maxBytes), cause: err}
		case errors.Is(err, io.EOF):
			return &Error{Status: http.StatusBadRequest, Message: "empty body: send a JSON object", cause: ErrEmptyBody}
		default:
			return &Error{Status: http.StatusBadRequest, Message: "malformed JSON body: " + err.Error(), cause: err}
		}
	}
	if dec.More() {
		return &Error{Status: http.StatusBadRequest, Message: "malformed JSON body: more than one JSON value"}
	}
	return nil
}
