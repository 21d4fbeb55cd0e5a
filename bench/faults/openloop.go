package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

// Sample is one request of the open-loop load. Times are offsets from the
// start of the load.
type Sample struct {
	// Sched is when the request was due: its latency counts from here, so
	// time spent waiting for a free slot (queueing) shows.
	Sched time.Duration
	// Sent is when it was handed to the HTTP client.
	Sent time.Duration
	// End is when the answer was read in full or the request failed.
	End time.Duration
	OK  bool
	// Kind says why it failed: "HTTP 502", "timeout", "refused", "reset",
	// "eof" or "error"; "" when OK.
	Kind string
	// Instance is the app's X-Instance header (which instance answered).
	Instance string
}

// Latency is the time from the request's scheduled start to its end.
func (s Sample) Latency() time.Duration { return s.End - s.Sched }

// LoadConfig says what the open-loop load sends.
type LoadConfig struct {
	// URL is the Front's address, e.g. http://127.0.0.1:8080/.
	URL string
	// Host is the Host header (the installation's domain).
	Host string
	// Rate is requests per second, sent on schedule whatever the answers.
	Rate float64
	// Timeout bounds one request from when it is sent.
	Timeout time.Duration
	// MaxInFlight bounds concurrent requests (and so connections); a
	// request due while all are busy waits, and its latency shows it.
	MaxInFlight int
	// MaxRequests bounds the run; the load stops scheduling after it.
	MaxRequests int
}

func (c LoadConfig) validate() error {
	switch {
	case c.Rate <= 0 || c.Rate > 10_000:
		return fmt.Errorf("load: rate %.1f req/s outside (0, 10000]", c.Rate)
	case c.Timeout <= 0:
		return fmt.Errorf("load: timeout %v must be positive", c.Timeout)
	case c.MaxInFlight < 1 || c.MaxInFlight > 10_000:
		return fmt.Errorf("load: max in flight %d outside [1, 10000]", c.MaxInFlight)
	case c.MaxRequests < 1:
		return fmt.Errorf("load: max requests %d must be positive", c.MaxRequests)
	}
	return nil
}

// Load sends GETs at a fixed rate over keep-alive connections until it is
// stopped or MaxRequests were scheduled, and records every request.
type Load struct {
	cfg    LoadConfig
	client *http.Client
	start  time.Time

	stop      chan struct{}
	stopOnce  sync.Once
	scheduler chan struct{} // closed when the scheduler returns
	inflight  sync.WaitGroup

	mu      sync.Mutex
	samples []Sample
}

// StartLoad starts sending at once.
func StartLoad(cfg LoadConfig) (*Load, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:               nil, // loopback only, never through a proxy from the environment
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
		MaxIdleConns:        cfg.MaxInFlight,
		MaxIdleConnsPerHost: cfg.MaxInFlight,
		IdleConnTimeout:     90 * time.Second,
	}
	l := &Load{
		cfg:       cfg,
		client:    &http.Client{Transport: tr, Timeout: cfg.Timeout},
		start:     time.Now(),
		stop:      make(chan struct{}),
		scheduler: make(chan struct{}),
		samples:   make([]Sample, 0, min(cfg.MaxRequests, 1<<20)),
	}
	go l.schedule()
	return l, nil
}

// Offset converts a wall-clock time to an offset from the start of the load.
func (l *Load) Offset(t time.Time) time.Duration { return t.Sub(l.start) }

// Now is the offset from the start of the load.
func (l *Load) Now() time.Duration { return time.Since(l.start) }

func (l *Load) schedule() {
	defer close(l.scheduler)
	slots := make(chan struct{}, l.cfg.MaxInFlight)
	interval := float64(time.Second) / l.cfg.Rate
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := range l.cfg.MaxRequests {
		due := time.Duration(float64(i) * interval)
		if wait := due - l.Now(); wait > 0 {
			timer.Reset(wait)
			select {
			case <-l.stop:
				return
			case <-timer.C:
			}
		}
		select {
		case <-l.stop:
			return
		case slots <- struct{}{}:
		}
		l.inflight.Go(func() {
			defer func() { <-slots }()
			l.record(l.send(due))
		})
	}
}

func (l *Load) record(s Sample) {
	l.mu.Lock()
	l.samples = append(l.samples, s)
	l.mu.Unlock()
}

// send makes one request due at sched.
func (l *Load) send(sched time.Duration) Sample {
	s := Sample{Sched: sched, Sent: l.Now()}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, l.cfg.URL, nil)
	if err != nil {
		s.End, s.Kind = l.Now(), "error"
		return s
	}
	req.Host = l.cfg.Host
	resp, err := l.client.Do(req)
	if err != nil {
		s.End, s.Kind = l.Now(), failureKind(err)
		return s
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	s.End = l.Now()
	switch {
	case err != nil:
		s.Kind = failureKind(err)
	case resp.StatusCode != http.StatusOK:
		s.Kind = fmt.Sprintf("HTTP %d", resp.StatusCode)
	default:
		s.OK = true
		s.Instance = resp.Header.Get("X-Instance")
	}
	return s
}

// failureKind names a transport error the way the report groups them.
func failureKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "error"
}

// Samples returns a copy of what has finished so far.
func (l *Load) Samples() []Sample {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Sample(nil), l.samples...)
}

// Healthy reports whether, over the last window, every request succeeded,
// at least half the expected number finished and at least instances
// distinct instances answered: the cluster is whole again.
func (l *Load) Healthy(window time.Duration, instances int) bool {
	now := l.Now()
	if now < window {
		return false
	}
	seen := map[string]bool{}
	n := 0
	l.mu.Lock()
	for i := len(l.samples) - 1; i >= 0; i-- {
		s := l.samples[i]
		if s.End < now-window {
			// Samples are appended in completion order, give or take the
			// moment between reading the clock and taking the lock.
			if s.End < now-window-time.Second {
				break
			}
			continue
		}
		if !s.OK {
			l.mu.Unlock()
			return false
		}
		n++
		seen[s.Instance] = true
	}
	l.mu.Unlock()
	return float64(n) >= l.cfg.Rate*window.Seconds()/2 && len(seen) >= instances
}

// Stop ends scheduling, waits for the requests in flight (each bounded by
// Timeout) and returns every sample.
func (l *Load) Stop() []Sample {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.scheduler
	l.inflight.Wait()
	l.client.CloseIdleConnections()
	return l.Samples()
}
