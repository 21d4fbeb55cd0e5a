package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"potluck/internal/jsonhttp"
)

// Call sends one request to the agent API over the tunnel and returns the
// answer's status and body (at most limit bytes). It tries each core node
// once while they fail or answer 5xx; any other answer is the core's word
// and is returned as is, so callers see 404 and 409 for what they are.
func (a *Agent) Call(ctx context.Context, method, path string, body []byte, limit int64) (int, []byte, error) {
	var errs []error
	for range a.cores.count() {
		code, data, err := a.call(ctx, method, a.cores.agentURL()+path, body, limit)
		if err == nil && code < 500 {
			return code, data, nil
		}
		if err == nil {
			err = &jsonhttp.Error{Status: code, Message: string(bytes.TrimSpace(data))}
		}
		errs = append(errs, err)
		a.cores.next()
	}
	return 0, nil, fmt.Errorf("%s %s: %w", method, path, errors.Join(errs...))
}

// postTimeout bounds one report (heartbeat, metrics) to one core node.
const postTimeout = 5 * time.Second

// post sends a report as JSON, trying each core node once.
func (a *Agent) post(ctx context.Context, path string, body any) error {
	var errs []error
	for range a.cores.count() {
		pctx, cancel := context.WithTimeout(ctx, postTimeout)
		req := jsonhttp.Request{Method: http.MethodPost, URL: a.cores.agentURL() + path, Body: body}
		err := jsonhttp.Do(pctx, a.client, req, nil, maxReply)
		cancel()
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		a.cores.next()
	}
	return errors.Join(errs...)
}

func (a *Agent) call(ctx context.Context, method, url string, body []byte, limit int64) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return 0, nil, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return 0, nil, err
	}
	if int64(len(data)) > limit {
		return 0, nil, fmt.Errorf("%s: answer larger than %d bytes", url, limit)
	}
	return resp.StatusCode, data, nil
}
