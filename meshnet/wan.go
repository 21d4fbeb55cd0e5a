package meshnet

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// WANConfig describes a simulated wide-area link, applied to the packets a
// node sends. Wrap both ends for a symmetric path: a 20 ms round trip is
// 10 ms of Delay on each side.
type WANConfig struct {
	// Delay is the one-way delay added to every packet.
	Delay time.Duration
	// Jitter adds a uniformly random extra delay in [0, Jitter]. Packets
	// still leave in order, as on a real path without reordering.
	Jitter time.Duration
	// Loss is the probability in [0, 1] that a packet is dropped.
	Loss float64
	// Seed makes loss and jitter repeatable.
	Seed uint64
	// QueueLen caps the packets in flight (default 16384); beyond it packets
	// are dropped, as a router's full queue would.
	QueueLen int
}

// WANBind wraps a conn.Bind and adds delay, jitter and loss to what it
// sends. One goroutine releases packets in FIFO order: a timer per packet
// would reorder them and collapse TCP throughput through the tunnel.
type WANBind struct {
	conn.Bind
	cfg WANConfig

	mu      sync.Mutex // guards rng, last, queue and stopped
	rng     *rand.Rand
	last    time.Time // release time of the newest queued packet
	queue   chan wanPacket
	stopped chan struct{}
	done    chan struct{}

	sent, dropped atomic.Uint64
}

type wanPacket struct {
	due  time.Time
	bufs [][]byte
	ep   conn.Endpoint
}

// NewWANBind wraps inner (nil: real UDP sockets).
func NewWANBind(inner conn.Bind, cfg WANConfig) (*WANBind, error) {
	switch {
	case cfg.Delay < 0 || cfg.Jitter < 0:
		return nil, errors.New("meshnet: wan: Delay and Jitter must not be negative")
	case cfg.Loss < 0 || cfg.Loss > 1:
		return nil, fmt.Errorf("meshnet: wan: Loss %v outside [0, 1]", cfg.Loss)
	case cfg.QueueLen < 0:
		return nil, errors.New("meshnet: wan: QueueLen must not be negative")
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = 16384
	}
	if inner == nil {
		inner = newUDPBind()
	}
	return &WANBind{Bind: inner, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}, nil
}

// Open opens the inner bind and starts the release goroutine.
func (w *WANBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := w.Bind.Open(port)
	if err != nil {
		return nil, 0, err
	}
	w.mu.Lock()
	w.queue = make(chan wanPacket, w.cfg.QueueLen)
	w.stopped = make(chan struct{})
	w.done = make(chan struct{})
	go w.release(w.queue, w.stopped, w.done)
	w.mu.Unlock()
	return fns, actual, nil
}

// Close stops the release goroutine (dropping what is still queued) and
// closes the inner bind. WireGuard closes and reopens its bind when the
// listen port changes, so Open may follow.
func (w *WANBind) Close() error {
	w.mu.Lock()
	stopped, done := w.stopped, w.done
	w.queue, w.stopped, w.done = nil, nil, nil
	w.mu.Unlock()
	if stopped != nil {
		close(stopped)
		<-done
	}
	return w.Bind.Close()
}

// Send queues the packets for release after the simulated delay.
func (w *WANBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	w.mu.Lock()
	if w.queue == nil {
		w.mu.Unlock()
		return net.ErrClosed
	}
	kept := make([][]byte, 0, len(bufs))
	for _, b := range bufs {
		if w.cfg.Loss > 0 && w.rng.Float64() < w.cfg.Loss {
			w.dropped.Add(1)
			continue
		}
		// WireGuard reuses its buffers once Send returns.
		kept = append(kept, append([]byte(nil), b...))
	}
	if len(kept) == 0 {
		w.mu.Unlock()
		return nil
	}
	due := time.Now().Add(w.cfg.Delay)
	if w.cfg.Jitter > 0 {
		due = due.Add(time.Duration(w.rng.Int64N(int64(w.cfg.Jitter) + 1)))
	}
	if due.Before(w.last) {
		due = w.last // keep packets in order
	}
	w.last = due
	select {
	case w.queue <- wanPacket{due: due, bufs: kept, ep: ep}:
	default:
		w.dropped.Add(uint64(len(kept)))
	}
	w.mu.Unlock()
	return nil
}

func (w *WANBind) release(queue <-chan wanPacket, stopped <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var p wanPacket
		select {
		case <-stopped:
			return
		case p = <-queue:
		}
		if wait := time.Until(p.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-stopped:
				return
			case <-timer.C:
			}
		}
		// A send error (e.g. no route) is what the network would do: loss.
		if err := w.Bind.Send(p.bufs, p.ep); err == nil {
			w.sent.Add(uint64(len(p.bufs)))
		} else {
			w.dropped.Add(uint64(len(p.bufs)))
		}
	}
}

// Stats reports packets delivered to the inner bind and packets dropped.
func (w *WANBind) Stats() (sent, dropped uint64) { return w.sent.Load(), w.dropped.Load() }
