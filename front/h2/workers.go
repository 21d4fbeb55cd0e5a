package h2

import (
	"sync"
	"time"
)

// workerIdle is how long a worker waits for a stream before it ends.
const workerIdle = 10 * time.Second

// workerStack is about the stack a stream takes through lb and fasthttp's
// client. A worker runs its loop inside a frame this large, so its stack
// is grown once when it starts, and the garbage collector, which shrinks
// the stacks of goroutines using less than a quarter of theirs, leaves it
// grown between streams (with a goroutine per stream, growing the stack
// deep inside fasthttp cost Go's server 5-11 % of the Front's CPU).
const workerStack = 12 << 10

// workerPool runs streams on reusable goroutines, at most max of them;
// streams beyond wait in a queue. Idle workers are kept last-in
// first-out (the busiest stay warm) and end after workerIdle.
type workerPool struct {
	mu      sync.Mutex
	idle    []*worker // oldest first
	n, max  int
	queue   []*stream
	stopped bool
	done    chan struct{} // closed by stop: ends the cleaner
}

type worker struct {
	ch       chan *stream
	lastUsed time.Time
}

func newWorkerPool(max int) *workerPool {
	p := &workerPool{max: max, done: make(chan struct{})}
	go p.clean()
	return p
}

// run hands st to a worker.
func (p *workerPool) run(st *stream) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.ch <- st
		return
	}
	if p.n < p.max && !p.stopped {
		p.n++
		p.mu.Unlock()
		go p.loop(false, &worker{ch: make(chan *stream, 1)}, st)
		return
	}
	if p.stopped {
		p.mu.Unlock()
		go st.run() // after stop: a straggler of a connection being cut
		return
	}
	p.queue = append(p.queue, st)
	p.mu.Unlock()
}

// loop serves streams until the worker is idle for workerIdle or the
// pool stops. Its frame reserves workerStack (deep is always false: the
// array is never touched).
//
//go:noinline
func (p *workerPool) loop(deep bool, w *worker, st *stream) {
	if deep {
		var pad [workerStack]byte
		keepStack(pad[:])
	}
	for {
		st.run()
		p.mu.Lock()
		if len(p.queue) > 0 {
			st = p.queue[0]
			p.queue[0] = nil
			p.queue = p.queue[1:]
			if len(p.queue) == 0 {
				p.queue = nil
			}
			p.mu.Unlock()
			continue
		}
		if p.stopped {
			p.n--
			p.mu.Unlock()
			return
		}
		w.lastUsed = time.Now()
		p.idle = append(p.idle, w)
		p.mu.Unlock()
		if st = <-w.ch; st == nil {
			return
		}
	}
}

//go:noinline
func keepStack(b []byte) { _ = b[len(b)-1] }

// clean ends the workers idle longer than workerIdle.
func (p *workerPool) clean() {
	t := time.NewTicker(workerIdle / 2)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case now := <-t.C:
			p.mu.Lock()
			k := 0
			for k < len(p.idle) && now.Sub(p.idle[k].lastUsed) > workerIdle {
				p.idle[k].ch <- nil
				p.idle[k] = nil
				k++
			}
			p.idle = append(p.idle[:0], p.idle[k:]...)
			p.n -= k
			p.mu.Unlock()
		}
	}
}

// stop ends the idle workers and the cleaner; busy ones end after their
// stream.
func (p *workerPool) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.stopped = true
	for _, w := range p.idle {
		w.ch <- nil
	}
	p.n -= len(p.idle)
	p.idle = nil
	close(p.done)
}
