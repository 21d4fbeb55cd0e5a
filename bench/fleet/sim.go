package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"potluck/agentproto"
	"potluck/core/server"
)

// simHost is one simulated agent: what a real agent does on the agent API
// (one blocking query for its desired state at a time, a heartbeat with a
// report per instance every interval), without containers or a tunnel.
type simHost struct {
	name, key  string
	back       bool
	node       *coreNode
	registered atomic.Bool // heartbeats start once it is
	// heartbeating: its last heartbeat is still waiting for an answer (a
	// Back sends the next one only after it).
	heartbeating atomic.Bool

	mu        sync.Mutex
	index     uint64
	instances map[string]agentproto.InstanceState // as the core last described them
	counted   [2]int64                            // instances, running: what this host added to the totals
}

// simStats are the simulated fleet's counters.
type simStats struct {
	seen, running       atomic.Int64 // instances in the hosts' desired states, and of them running
	answers, queryErrs  atomic.Int64 // blocking query answers and failures
	heartbeats, hbErrs  atomic.Int64
	hbLate              atomic.Int64 // heartbeat rounds that overran the interval
	hbLatency, queryLat *latencies
	// hbQuiet: latency of the heartbeats that report nothing new (every
	// instance already running in the host's desired state): the leader
	// answers those without raft.
	hbQuiet *latencies
	// hbQuietLeader: of those, the ones sent to the leader itself (the
	// rest a follower forwards to it).
	hbQuietLeader *latencies
	lastErr       atomic.Value // string: the last heartbeat or query error, for the report
}

// fleetSim drives the simulated hosts against the cluster's bench agent
// listeners.
type fleetSim struct {
	hosts    []*simHost
	client   *http.Client
	interval time.Duration
	pollWait time.Duration
	stats    simStats
	inFlight chan struct{} // heartbeats waiting for an answer (maxHeartbeatsInFlight)
	leader   *coreNode     // the leader at the start (set before the hosts start)
}

func newFleetSim(hosts []*simHost, interval time.Duration) *fleetSim {
	return &fleetSim{
		hosts: hosts, interval: interval, pollWait: 30 * time.Second, inFlight: make(chan struct{}, maxHeartbeatsInFlight),
		client: &http.Client{
			Timeout:   75 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: len(hosts) + 16, MaxConnsPerHost: 0, IdleConnTimeout: 2 * time.Minute},
		},
		stats: simStats{hbLatency: newLatencies(), queryLat: newLatencies(), hbQuiet: newLatencies(), hbQuietLeader: newLatencies()},
	}
}

// follow holds one blocking query at a time for h until ctx ends (bounded
// in count too), and keeps the fleet's totals.
func (s *fleetSim) follow(ctx context.Context, h *simHost) {
	for range 1_000_000 {
		if ctx.Err() != nil {
			return
		}
		h.mu.Lock()
		idx := h.index
		h.mu.Unlock()
		url := fmt.Sprintf("http://%s%s?index=%d&wait=%s", h.node.agent, agentproto.PathState, idx, s.pollWait)
		var d agentproto.DesiredState
		start := time.Now()
		if err := s.call(ctx, h, http.MethodGet, url, nil, &d); err != nil {
			if ctx.Err() == nil {
				s.stats.queryErrs.Add(1)
				s.stats.lastErr.Store("query: " + err.Error())
				sleep(ctx, 500*time.Millisecond)
			}
			continue
		}
		if idx > 0 && d.Index == idx {
			s.stats.answers.Add(1) // timed out: nothing new
			continue
		}
		s.stats.answers.Add(1)
		if idx == 0 {
			s.stats.queryLat.add(time.Since(start))
		}
		h.mu.Lock()
		h.index = d.Index
		h.instances = make(map[string]agentproto.InstanceState, len(d.Instances))
		var running int64
		for _, in := range d.Instances {
			h.instances[in.ID] = in.State
			if in.State == agentproto.InstanceRunning {
				running++
			}
		}
		n := int64(len(d.Instances))
		s.stats.seen.Add(n - h.counted[0])
		s.stats.running.Add(running - h.counted[1])
		h.counted = [2]int64{n, running}
		h.mu.Unlock()
	}
}

// maxHeartbeatsInFlight bounds the heartbeats the simulated fleet has
// waiting for an answer at once.
const maxHeartbeatsInFlight = 1024

// heartbeats sends every host of hosts a heartbeat each interval: each
// instance the core placed there is reported running, as a Back whose
// containers started would. Each host's heartbeat goes on its own, as on a
// real host: one that waits for its group commit (seconds, behind a queue of
// creates) holds back that host's next heartbeat only, not the others'
// (sent one after the other, one slow answer let ~78 hosts pass the TTL and
// the reconciler moved the instances of 4,062 hosts at once).
func (s *fleetSim) heartbeats(ctx context.Context, hosts []*simHost) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for range 1_000_000 {
		round := time.Now()
		for _, h := range hosts {
			if ctx.Err() != nil {
				return
			}
			if !h.registered.Load() || !h.heartbeating.CompareAndSwap(false, true) {
				continue
			}
			select {
			case s.inFlight <- struct{}{}:
			case <-ctx.Done():
				h.heartbeating.Store(false)
				return
			}
			h.mu.Lock()
			req := agentproto.HeartbeatRequest{Instances: make([]agentproto.InstanceReport, 0, len(h.instances))}
			quiet := true
			for id, state := range h.instances {
				req.Instances = append(req.Instances, agentproto.InstanceReport{ID: id, State: agentproto.InstanceRunning})
				quiet = quiet && state == agentproto.InstanceRunning
			}
			h.mu.Unlock()
			sort.Slice(req.Instances, func(i, j int) bool { return req.Instances[i].ID < req.Instances[j].ID })
			wg.Go(func() {
				defer func() { <-s.inFlight; h.heartbeating.Store(false) }()
				start := time.Now()
				if err := s.call(ctx, h, http.MethodPost, "http://"+h.node.agent+agentproto.PathHeartbeat, req, nil); err != nil {
					if ctx.Err() == nil {
						s.stats.hbErrs.Add(1)
						s.stats.lastErr.Store("heartbeat: " + err.Error())
					}
					return
				}
				s.stats.heartbeats.Add(1)
				s.stats.hbLatency.add(time.Since(start))
				if quiet {
					s.stats.hbQuiet.add(time.Since(start))
					if h.node == s.leader {
						s.stats.hbQuietLeader.add(time.Since(start))
					}
				}
			})
		}
		left := s.interval - time.Since(round)
		if left <= 0 {
			s.stats.hbLate.Add(1)
			continue
		}
		if !sleep(ctx, left) {
			return
		}
	}
}

// call does one agent API request as h; out nil discards the answer.
func (s *fleetSim) call(ctx context.Context, h *simHost, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set(server.HeaderBenchKey, h.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: HTTP %d: %s", method, url, resp.StatusCode, msg)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<20))
		return nil
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out)
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// latencies collects durations for percentiles (bounded: the first
// maxSamples).
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

const maxSamples = 2_000_000

func newLatencies() *latencies { return &latencies{} }

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	if len(l.d) < maxSamples {
		l.d = append(l.d, d)
	}
	l.mu.Unlock()
}

// reset drops the samples so far (a new phase starts).
func (l *latencies) reset() {
	l.mu.Lock()
	l.d = nil
	l.mu.Unlock()
}

// pct returns the p-th percentile (0..100) and the count.
func (l *latencies) pct(p float64) (time.Duration, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), l.d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p / 100)
	return s[i], len(s)
}

func (l *latencies) merge(o *latencies) {
	o.mu.Lock()
	d := append([]time.Duration(nil), o.d...)
	o.mu.Unlock()
	for _, x := range d {
		l.add(x)
	}
}
