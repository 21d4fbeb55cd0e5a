package front

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"potluck/meshnet"
)

// Liveness timing: a Back is probed every livenessInterval unless it sent
// bytes since the last round, each probe waits livenessTimeout, and after
// livenessFailures silent rounds in a row the Back is declared gone. Together
// about 1.25 s from the loss to requests failing over, within the 2 s that
// issue 17 allows a vanished peer to hold a request.
const (
	livenessInterval = 250 * time.Millisecond
	livenessTimeout  = 500 * time.Millisecond
	livenessFailures = 2
	// livenessProbePort: nothing listens there; a refusal (RST from the
	// Back's netstack) proves the path as well as an accepted connection.
	livenessProbePort = 9
)

// meshProber is what the watcher needs of the mesh node.
type meshProber interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
	Status() ([]meshnet.PeerStatus, error)
}

// livenessWatch tells the proxy within about a second when a Back it routes
// to stops answering on the mesh (its process or machine died), so requests
// in flight to it fail fast and idempotent ones are retried on another
// instance instead of waiting for the read timeout (60 s). WireGuard itself
// notices a dead peer only after 15 s.
type livenessWatch struct {
	node meshProber
	log  *slog.Logger
	// gone is called every round while a Back is silent (the proxy keeps it
	// out for as long as that lasts); back once when it answers again.
	gone, back func(host netip.Addr)

	mu    sync.Mutex
	hosts map[netip.Addr]bool // Backs the routes use
}

// setHosts replaces the set of Backs to watch.
func (w *livenessWatch) setHosts(hosts []netip.Addr) {
	m := make(map[netip.Addr]bool, len(hosts))
	for _, h := range hosts {
		m[h] = true
	}
	w.mu.Lock()
	w.hosts = m
	w.mu.Unlock()
}

func (w *livenessWatch) watched() []netip.Addr {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]netip.Addr, 0, len(w.hosts))
	for h := range w.hosts {
		out = append(out, h)
	}
	return out
}

// backWatch is what the watch knows of one Back between rounds.
type backWatch struct {
	lastRx uint64 // bytes received from it, at the last round
	// answered: it answered since it is watched. Only such a Back can
	// vanish: one that never did (its session to this Front not up yet, as
	// at a start) has no requests of ours in flight, and the proxy's own
	// health handles it.
	answered bool
	silent   int  // rounds in a row it did not answer
	down     bool // reported gone
}

// run probes until ctx ends.
func (w *livenessWatch) run(ctx context.Context) {
	t := time.NewTicker(livenessInterval)
	defer t.Stop()
	backs := map[netip.Addr]*backWatch{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hosts := w.watched()
		// A Back no longer watched is forgotten; a new one starts afresh.
		current := make(map[netip.Addr]*backWatch, len(hosts))
		for _, h := range hosts {
			if current[h] = backs[h]; current[h] == nil {
				current[h] = &backWatch{}
			}
		}
		backs = current
		rx := w.rxByAddr()
		alive := make([]bool, len(hosts))
		var wg sync.WaitGroup
		for i, h := range hosts {
			if rx[h] > backs[h].lastRx {
				alive[i] = true // it talks: no probe needed
				continue
			}
			wg.Go(func() { alive[i] = w.probe(ctx, h) })
		}
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
		// When every Back is silent at once the fault is more likely here (a
		// starved process, the Front's own network) than in all of them;
		// failing them all over would turn it into an outage. Such a round
		// counts for nothing.
		anyAlive := false
		for _, a := range alive {
			anyAlive = anyAlive || a
		}
		for i, h := range hosts {
			b := backs[h]
			b.lastRx = rx[h]
			if alive[i] {
				b.answered, b.silent = true, 0
				if b.down {
					b.down = false
					w.log.Info("Back answers on the mesh again", "back", h.String())
					w.back(h)
				}
				continue
			}
			if !b.answered || (!anyAlive && len(hosts) > 1) {
				continue
			}
			if b.silent++; b.silent >= livenessFailures {
				if !b.down {
					b.down = true
					w.log.Warn("Back silent on the mesh; failing its requests over", "back", h.String(), "silent_rounds", b.silent)
				}
				w.gone(h)
			}
		}
	}
}

// probe reports whether the Back answered at all: a connection or a refusal.
func (w *livenessWatch) probe(ctx context.Context, h netip.Addr) bool {
	ctx, cancel := context.WithTimeout(ctx, livenessTimeout)
	defer cancel()
	c, err := w.node.DialContext(ctx, "tcp", netip.AddrPortFrom(h, livenessProbePort).String())
	if err == nil {
		c.Close()
		return true
	}
	return ctx.Err() == nil
}

func (w *livenessWatch) rxByAddr() map[netip.Addr]uint64 {
	out := map[netip.Addr]uint64{}
	st, err := w.node.Status()
	if err != nil {
		return out
	}
	for _, p := range st {
		out[p.Address] = p.RxBytes
	}
	return out
}
