// Package jsonhttp is Potluck's JSON-over-HTTP convention, shared by every
// client (apiclient, the host agents, core nodes calling each other) and
// every server (core/api, core/agentapi): a failed call answers a status of
// 400 or more with {"error": "..."}, and a client turns that into one error
// type, *Error. Servers read request bodies strictly (Decode) and parse
// blocking queries (?index=N&wait=D) the same way (ParseBlockingQuery).
package jsonhttp

import (
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

	cause error // why a server refused a request (ErrEmptyBody), for errors.Is
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// Unwrap returns the cause a server attached, if any.
func (e *Error) Unwrap() error { return e.cause }

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

// MessageOf returns the Message of an *Error in err's chain, or err's text:
// what a server answers in "error" when it passes err on to its caller.
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
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
