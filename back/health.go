package back

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"potluck/agentproto"
	"potluck/back/engine"
)

// health is what the Back knows of one started instance's health checks.
type health struct {
	check    agentproto.HealthCheck // with defaults
	addr     string                 // where the container is published
	healthy  bool
	okRow    int
	failRow  int
	next     time.Time
	checking bool
}

// newChecker is the health checks' HTTP client: a fresh connection per
// check (a check is of the app, not of a pooled connection), no redirects
// followed (a 3xx is an answer), the timeout from each check's context.
func newChecker() *http.Client {
	return &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// probe sends one health check: healthy when answered below 500 in time.
func (b *Back) probe(ctx context.Context, addr, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "potluck-back health check")
	resp, err := b.checker.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// startupCheck waits up to grace for the instance's first healthy answer,
// failing at once when its container exits. When the image's EXPOSE does
// not list the container port, the wait is cut to a few seconds: that is
// nearly always a wrong --port, and waiting the whole grace helps no one.
func (b *Back) startupCheck(ctx context.Context, in agentproto.Instance, containerID, image string, grace time.Duration) error {
	hc := in.Health.WithDefaults()
	mismatch := ""
	if image != "" {
		if ports, err := b.engine.ExposedTCPPorts(ctx, image); err == nil && len(ports) > 0 && !slices.Contains(ports, uint16(in.ContainerPort)) {
			mismatch = fmt.Sprintf("; the image exposes %s, not %d: is the container port (--port) right?", portList(ports), in.ContainerPort)
			grace = min(grace, wrongPortGrace)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	addr := b.target(in.Port)
	var last error
	lastExitCheck := time.Time{}
	for {
		err := b.probe(ctx, addr, hc.Path, hc.Timeout)
		if err == nil {
			return nil
		}
		last = err
		if containerID != "" && time.Since(lastExitCheck) >= time.Second {
			lastExitCheck = time.Now()
			if exited, code, err := b.engine.Exited(ctx, containerID); err == nil && exited {
				return fmt.Errorf("the container exited with code %d before answering on port %d%s", code, in.ContainerPort, b.lastOutput(in.ID))
			}
		}
		select {
		case <-ctx.Done():
			output := ""
			if containerID != "" { // else a check of a bare address: no container to ask
				output = b.lastOutput(in.ID)
			}
			return fmt.Errorf("app does not answer GET %s on port %d within %s: %v%s%s", hc.Path, in.ContainerPort, grace, last, mismatch, output)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// wrongPortGrace is how long an instance whose port its image does not
// expose gets to answer anyway.
const wrongPortGrace = 5 * time.Second

func portList(ports []uint16) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ", ")
}

// watch starts continuous health checks of a started, healthy instance.
func (b *Back) watch(in agentproto.Instance) {
	hc := in.Health.WithDefaults()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.health[in.ID] = &health{check: hc, addr: b.target(in.Port), healthy: true, next: time.Now().Add(hc.Interval)}
}

// unwatch stops checking an instance (removed, or about to restart).
func (b *Back) unwatch(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.health, id)
}

func (b *Back) watched(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.health[id]
	return ok
}

// monitor runs the due health checks until ctx ends, each in its own
// goroutine so one slow instance does not delay the others' checks. An
// instance Unhealthy checks in a row failing is reported failed (the core
// records it, Fronts stop routing to it); Healthy checks in a row passing
// report it running again.
func (b *Back) monitor(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		b.mu.Lock()
		for id, h := range b.health {
			if h.checking || now.Before(h.next) {
				continue
			}
			h.checking = true
			go b.runCheck(ctx, id, h)
		}
		b.mu.Unlock()
	}
}

func (b *Back) runCheck(ctx context.Context, id string, h *health) {
	err := b.probe(ctx, h.addr, h.check.Path, h.check.Timeout)
	if ctx.Err() != nil {
		return
	}
	b.mu.Lock()
	if b.health[id] != h { // unwatched meanwhile
		b.mu.Unlock()
		return
	}
	h.checking = false
	h.next = time.Now().Add(h.check.Interval)
	var state agentproto.InstanceState
	var msg string
	if err == nil {
		h.okRow, h.failRow = h.okRow+1, 0
		if !h.healthy && h.okRow >= h.check.Healthy {
			h.healthy, state = true, agentproto.InstanceRunning
		}
	} else {
		h.okRow, h.failRow = 0, h.failRow+1
		if h.healthy && h.failRow >= h.check.Unhealthy {
			h.healthy, state = false, agentproto.InstanceFailed
			msg = fmt.Sprintf("unhealthy: GET %s failed %d times in a row: %v", h.check.Path, h.failRow, err)
		}
	}
	b.mu.Unlock()
	if state != "" {
		b.report(id, state, msg)
	}
}

// lastOutput is "; last output: ..." with the container's last log lines
// (timestamps dropped), or "" when it printed nothing: why an app did not
// start is usually there, and the container may be gone when the owner
// looks (a failed release's instances are removed).
func (b *Back) lastOutput(instance string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rc, err := b.engine.Logs(ctx, b.agent.Identity().HostID, instance, engine.LogOptions{Tail: 3})
	if err != nil {
		return ""
	}
	defer rc.Close()
	data, _ := io.ReadAll(io.LimitReader(rc, 2048))
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if _, text, ok := strings.Cut(l, " "); ok { // drop the timestamp
			l = text
		}
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return "; last output: " + strings.Join(lines, " | ")
}
