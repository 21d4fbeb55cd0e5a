package dnsserve

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"sync"
	"time"
)

// CheckConfig tunes the active checks of the Fronts' public addresses.
type CheckConfig struct {
	// Interval between checks of one Front (default DefaultCheckInterval).
	Interval time.Duration
	// Timeout of one check (default DefaultCheckTimeout).
	Timeout time.Duration
	// Fall failed checks in a row take a Front out of the answers, Rise
	// passed checks in a row bring it back (defaults 2 and 2).
	Fall, Rise int
	// Parallel bounds the checks in flight (default 32).
	Parallel int
}

// Check defaults: a Front that stops answering leaves the answers within
// Fall × Interval + Timeout = 5 s (the first failing check starts within an
// interval of the death, the Fall-th Fall−1 intervals later, and each takes
// at most Timeout).
const (
	DefaultCheckInterval = 2 * time.Second
	DefaultCheckTimeout  = time.Second
	DefaultFall          = 2
	DefaultRise          = 2
)

func (c *CheckConfig) defaults() {
	if c.Interval <= 0 {
		c.Interval = DefaultCheckInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultCheckTimeout
	}
	if c.Fall <= 0 {
		c.Fall = DefaultFall
	}
	if c.Rise <= 0 {
		c.Rise = DefaultRise
	}
	if c.Parallel <= 0 {
		c.Parallel = 32
	}
}

// checkUserAgent and checkHost mark the checks in Fronts' logs; any HTTP
// answer (a 404 for this unknown host included) proves the Front serves.
const (
	checkUserAgent = "potluck-dns-check"
	checkHost      = "potluck-dns-check.invalid"
)

// checker keeps each Front's health from the DNS server's own checks of its
// public HTTP address. A Front is checked up until Fall checks in a row
// fail, then down until Rise pass in a row. A Front never checked yet
// (just added, or without a public URL) counts as up: the core's view
// alone decides for it.
type checker struct {
	cfg    CheckConfig
	client *http.Client

	mu     sync.Mutex
	fronts map[string]*frontHealth // by Front id
}

type frontHealth struct {
	url        string
	down       bool
	pass, fail int // consecutive results
	lastErr    error
}

func newChecker(cfg CheckConfig) *checker {
	cfg.defaults()
	tr := &http.Transport{
		Proxy: nil,
		// The check proves the Front answers HTTP(S) at its public address;
		// whether its certificate is valid is the TLS code's business, and a
		// Front must not leave DNS because one certificate is being renewed.
		TLSClientConfig:        &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // liveness only, no data trusted
		DisableKeepAlives:      true,
		ResponseHeaderTimeout:  cfg.Timeout,
		MaxResponseHeaderBytes: 16 << 10,
	}
	return &checker{cfg: cfg, fronts: map[string]*frontHealth{},
		client: &http.Client{Transport: tr, Timeout: cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// up reports whether the checks leave Front id in the answers.
func (c *checker) up(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.fronts[id]
	return h == nil || !h.down
}

// round checks every Front of v once, in parallel, and forgets Fronts that
// left the View.
func (c *checker) round(ctx context.Context, v *View) {
	c.mu.Lock()
	for id, h := range c.fronts {
		if f := v.Fronts[id]; f == nil || f.CheckURL != h.url {
			delete(c.fronts, id) // gone, or moved: its history says nothing now
		}
	}
	c.mu.Unlock()
	sem := make(chan struct{}, c.cfg.Parallel)
	var wg sync.WaitGroup
	for _, f := range v.Fronts {
		if f.CheckURL == "" {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c.record(f, c.probe(ctx, f.CheckURL))
		})
	}
	wg.Wait()
}

// probe fetches the Front's public URL; any HTTP answer passes.
func (c *checker) probe(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
	if err != nil {
		return err
	}
	req.Host = checkHost
	req.Header.Set("User-Agent", checkUserAgent)
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	return resp.Body.Close()
}

// record applies one check result.
func (c *checker) record(f *Front, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.fronts[f.ID]
	if h == nil {
		// The first result decides at once: a DNS server that starts while
		// a Front is dead should not hand it out for Fall rounds.
		c.fronts[f.ID] = &frontHealth{url: f.CheckURL, down: err != nil, lastErr: err}
		return
	}
	h.lastErr = err
	if err != nil {
		h.fail, h.pass = h.fail+1, 0
		if !h.down && h.fail >= c.cfg.Fall {
			h.down = true
		}
		return
	}
	h.pass, h.fail = h.pass+1, 0
	if h.down && h.pass >= c.cfg.Rise {
		h.down = false
	}
}

// lastErr is the latest check error of Front id (nil: passed or none).
func (c *checker) lastErr(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h := c.fronts[id]; h != nil {
		return h.lastErr
	}
	return nil
}
