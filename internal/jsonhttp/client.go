package jsonhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

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
