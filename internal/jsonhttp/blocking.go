package jsonhttp

import (
	"errors"
	"net/url"
	"strconv"
	"time"
)

// Blocking queries (?index=N&wait=D) wait DefaultWait unless D says
// otherwise, and never longer than MaxWait. A client (or a node forwarding
// one) must wait a little longer than MaxWait for the answer.
const (
	DefaultWait = 5 * time.Minute
	MaxWait     = 10 * time.Minute
)

// ParseBlockingQuery reads ?index=N&wait=D for the public and agent APIs:
// blocking is false without index; wait is D capped at MaxWait, or
// DefaultWait. The error is worded for the API's caller.
func ParseBlockingQuery(q url.Values) (index uint64, wait time.Duration, blocking bool, err error) {
	idx := q.Get("index")
	if idx == "" {
		return 0, 0, false, nil
	}
	if index, err = strconv.ParseUint(idx, 10, 64); err != nil {
		return 0, 0, false, errors.New("index must be a non-negative integer")
	}
	wait = DefaultWait
	if ws := q.Get("wait"); ws != "" {
		d, err := time.ParseDuration(ws)
		if err != nil || d <= 0 {
			return 0, 0, false, errors.New("wait must be a positive duration such as 30s")
		}
		wait = min(d, MaxWait)
	}
	return index, wait, true, nil
}
