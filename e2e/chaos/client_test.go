package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// history records operations with call and return times on one monotonic
// clock (nanoseconds since the test began).
type history struct {
	start time.Time

	mu      sync.Mutex
	ops     []porcupine.Operation
	nextCID int
	counts  map[opKind]*opCounts
}

// opCounts: ok got a definite answer; failed are reads that never got one
// (dropped from the history: a read changes nothing); unknown are writes
// without a definite answer (kept as possibly applied).
type opCounts struct{ OK, Failed, Unknown int }

func newHistory() *history {
	return &history{start: time.Now(), counts: map[opKind]*opCounts{opGet: {}, opCreate: {}, opDelete: {}}}
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

// clientID is a fresh porcupine client id. A client whose operation ended
// unknown takes a new id (as a Jepsen process does), since that operation
// stays open until the end of the history.
func (h *history) clientID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextCID++
	return h.nextCID - 1
}

func (h *history) add(op porcupine.Operation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	in, out := op.Input.(appInput), op.Output.(appOutput)
	switch {
	case out.Unknown && in.Kind == opGet:
		h.counts[in.Kind].Failed++
		return
	case out.Unknown:
		h.counts[in.Kind].Unknown++
	default:
		h.counts[in.Kind].OK++
	}
	h.ops = append(h.ops, op)
}

// operations returns the history for the checker: unknown operations return
// after everything else, i.e. they may take effect at any time after their
// call, or never.
func (h *history) operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	var last int64
	for _, op := range h.ops {
		last = max(last, op.Return, op.Call)
	}
	out := make([]porcupine.Operation, len(h.ops))
	for i, op := range h.ops {
		if op.Output.(appOutput).Unknown {
			op.Return = last + 1
		}
		out[i] = op
	}
	return out
}

func (h *history) summary() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var total opCounts
	s := ""
	for _, k := range []opKind{opGet, opCreate, opDelete} {
		c := h.counts[k]
		total.OK += c.OK
		total.Failed += c.Failed
		total.Unknown += c.Unknown
		s += fmt.Sprintf("\n  %-6s ok %5d  failed %4d  unknown %4d", k, c.OK, c.Failed, c.Unknown)
	}
	return fmt.Sprintf("operations: %d (ok %d, failed %d, unknown %d)%s",
		total.OK+total.Failed+total.Unknown, total.OK, total.Failed, total.Unknown, s)
}

// apiClient sends one operation to the nodes, retrying on another node
// after a timeout, a reset or a 5xx until its deadline; writes keep their
// X-Request-Id throughout, so the API applies them at most once.
type apiClient struct {
	nodes      []*node
	http       *http.Client
	attempt    time.Duration // one request
	opDeadline time.Duration // all attempts of one operation
	stale      bool          // reads with ?stale (not linearizable: not checked)
}

func newAPIClient(nodes []*node, attempt, opDeadline time.Duration) *apiClient {
	return &apiClient{
		nodes:      nodes,
		http:       &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}},
		attempt:    attempt,
		opDeadline: opDeadline,
	}
}

// do runs one operation against the nodes, starting with a random one.
func (c *apiClient) do(ctx context.Context, rng *rand.Rand, in appInput, requestID string) (appOutput, opMeta) {
	var meta opMeta
	deadline := time.Now().Add(c.opDeadline)
	first := rng.IntN(len(c.nodes))
	for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		n := c.nodes[(first+i)%len(c.nodes)]
		out, definite, note := c.attemptOn(ctx, n, in, requestID)
		meta.Attempts = append(meta.Attempts, n.id+":"+note)
		if definite {
			return out, meta
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(50+rng.IntN(100)) * time.Millisecond):
		}
	}
	return appOutput{Unknown: true}, meta
}

// attemptOn sends the operation to one node. definite reports an answer
// that decides the operation; otherwise it may be retried.
func (c *apiClient) attemptOn(ctx context.Context, n *node, in appInput, requestID string) (appOutput, bool, string) {
	ctx, cancel := context.WithTimeout(ctx, c.attempt)
	defer cancel()
	url := "http://" + n.httpAddr + "/v1/apps"
	var body io.Reader
	method := http.MethodGet
	switch in.Kind {
	case opGet:
		url += "/" + in.Name
		if c.stale {
			url += "?stale"
		}
	case opCreate:
		method = http.MethodPost
		b, _ := json.Marshal(map[string]any{"name": in.Name, "image": in.Image, "container_port": 8080})
		body = bytes.NewReader(b)
	case opDelete:
		method = http.MethodDelete
		url += "/" + in.Name
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return appOutput{}, false, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+operatorToken)
	if in.Kind != opGet {
		req.Header.Set("X-Request-Id", requestID)
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return appOutput{}, false, "error"
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return appOutput{}, false, fmt.Sprintf("%d+error", resp.StatusCode)
	}
	note := fmt.Sprint(resp.StatusCode)
	definite := map[opKind][]int{
		opGet:    {http.StatusOK, http.StatusNotFound},
		opCreate: {http.StatusCreated, http.StatusOK},
		opDelete: {http.StatusNoContent, http.StatusNotFound},
	}[in.Kind]
	for _, code := range definite {
		if resp.StatusCode != code {
			continue
		}
		out := appOutput{Status: code}
		if in.Kind == opGet && code == http.StatusOK {
			var app struct{ Image string }
			if err := json.Unmarshal(b, &app); err != nil {
				return appOutput{}, false, note + "+bad json"
			}
			out.Image = app.Image
		}
		return out, true, note
	}
	// 5xx (no leader, forwarding failed, leadership changed) may or may not
	// have applied a write: retry with the same request id. Any other status
	// is not expected from this workload; retrying is still safe.
	return appOutput{}, false, note
}

// workload is one client: random operations on a few names until ctx ends
// or maxOps is reached.
type workload struct {
	h      *history
	client *apiClient
	names  []string
	seq    *seqGen
}

// seqGen numbers images and request ids uniquely across clients.
type seqGen struct {
	mu sync.Mutex
	n  int
}

func (s *seqGen) next() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return s.n
}

func (w *workload) run(ctx context.Context, seed uint64, maxOps int) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	cid := w.h.clientID()
	for range maxOps {
		if ctx.Err() != nil {
			return
		}
		in := appInput{Name: w.names[rng.IntN(len(w.names))]}
		switch r := rng.IntN(10); {
		case r < 5:
			in.Kind = opGet
		case r < 8:
			in.Kind = opCreate
		default:
			in.Kind = opDelete
		}
		seq := w.seq.next()
		if in.Kind == opCreate {
			in.Image = fmt.Sprintf("chaos.example/%s:v%d", in.Name, seq)
		}
		call := w.h.now()
		out, meta := w.client.do(ctx, rng, in, fmt.Sprintf("chaos-%d", seq))
		ret := w.h.now()
		if out.Unknown && ctx.Err() != nil && in.Kind == opGet {
			return
		}
		w.h.add(porcupine.Operation{ClientId: cid, Input: in, Call: call, Output: out, Return: ret, Metadata: meta})
		if out.Unknown {
			cid = w.h.clientID()
		}
		time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
	}
}
