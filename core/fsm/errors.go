package fsm

import (
	"errors"
	"fmt"
)

// Code classifies an Apply error so the API can pick the HTTP status.
type Code string

// Error codes.
const (
	CodeInvalid  Code = "invalid"   // 400
	CodeNotFound Code = "not_found" // 404
	CodeConflict Code = "conflict"  // 409
)

// Error is a rejected command. Rejected commands change nothing.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Message }

func errf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the Code of err, or "" when it is not an *Error.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
