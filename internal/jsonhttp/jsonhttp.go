// Package jsonhttp is Potluck's JSON-over-HTTP convention, shared by every
// client (apiclient, the host agents, core nodes calling each other) and
// every server: a failed call answers a status of 400 or more with
// {"error": "..."}, and a client turns that into one error type, *Error.
package jsonhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxErrorBody bounds what is read of a failed answer.
const maxErrorBody = 64 << 10

// Error is an answer with a status of 400 or more.
type Error struct {
	Status  int    // HTTP status
	Message string // the answer's "error" field, or its body, or the status text
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// Rejected reports whether the request itself was refused (4xx other than
// 429): sending it again, or to another node, would not help.
func (e *Error) Rejected() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusTooManyRequests
}

// StatusOf returns the HTTP status of an *Error in err's chain, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// IsRejected reports whether err's chain holds an *Error that is Rejected.
func IsRejected(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Rejected()
}

// ErrorFrom builds the *Error of a failed answer from its status and body.
func ErrorFrom(status int, body []byte) *Error {
	var eb struct {
		Error string `json:"error"`
	}
	msg := ""
	if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
		msg = eb.Error
	} else {
		msg = strings.TrimSpace(string(body))
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &Error{Status: status, Message: msg}
}

// ReadError reads (a bounded part of) a failed answer's body into an *Error.
func ReadError(resp *http.Response) *Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return ErrorFrom(resp.StatusCode, b)
}

// Request is one JSON call.
type Request struct {
	Method string
	URL    string
	Token  string      // sent as a bearer token when set
	Header http.Header // extra headers (request ids)
	Body   any         // marshalled as JSON when not nil; []byte is sent as is
}

// Do sends req with c, fails with *Error on a status of 400 or more, and
// decodes a JSON answer of at most maxReply bytes into out (nil: discard).
func Do(ctx context.Context, c *http.Client, req Request, out any, maxReply int64) error {
	var body io.Reader
	switch b := req.Body.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return fmt.Errorf("encoding %s %s: %w", req.Method, req.URL, err)
		}
		body = bytes.NewReader(data)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, req.URL, body)
	if err != nil {
		return err
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if req.Token != "" {
		hr.Header.Set("Authorization", "Bearer "+req.Token)
	}
	for k, v := range req.Header {
		hr.Header[k] = v
	}
	resp, err := c.Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return ReadError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxReply))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxReply)).Decode(out); err != nil {
		return fmt.Errorf("reading the answer of %s %s: %w", req.Method, req.URL, err)
	}
	return nil
}

// WriteJSON answers v as JSON with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError answers {"error": msg} with status code.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, map[string]string{"error": msg})
}
