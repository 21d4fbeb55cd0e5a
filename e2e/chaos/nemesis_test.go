package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// fault is one injected failure, with times since the history began.
type fault struct {
	Kind   string // kill, pause, partition
	Node   string
	Leader bool // the node led when the fault began
	At     time.Duration
	Healed time.Duration
	Err    string // the fault could not be injected or healed
	// Majority is the leader the other nodes named at the end of a
	// partition: proof that the partition cut the node off.
	Majority string
}

func (f fault) String() string {
	who := f.Node
	if f.Leader {
		who += " (leader)"
	}
	s := fmt.Sprintf("%7.2fs-%7.2fs  %-9s %s", f.At.Seconds(), f.Healed.Seconds(), f.Kind, who)
	if f.Kind == "partition" {
		s += ", majority's leader " + f.Majority
	}
	if f.Err != "" {
		s += "  error: " + f.Err
	}
	return s
}

// nemesis injects one fault at a time into the cluster, each healed before
// the next: kill -9 and restart, SIGSTOP/SIGCONT, and a partition that cuts
// a node from the others (when a partitioner is available). It picks the
// leader most of the time, since that is where faults hurt.
type nemesis struct {
	c     *cluster
	part  *partitioner // nil: no partitions
	h     *history
	log   func(string)
	rng   *rand.Rand
	kinds []string

	mu     sync.Mutex
	faults []fault
}

func newNemesis(c *cluster, part *partitioner, h *history, seed uint64, log func(string)) *nemesis {
	kinds := []string{"kill", "pause"}
	if part != nil {
		kinds = append(kinds, "partition")
	}
	return &nemesis{c: c, part: part, h: h, log: log, rng: rand.New(rand.NewPCG(seed, seed+1)), kinds: kinds}
}

// run injects faults until ctx ends; every fault is healed before it returns.
func (n *nemesis) run(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		// Quiet time first: the cluster recovers and clients make progress.
		if !sleepCtx(ctx, n.dur(1000, 2500)) {
			return
		}
		kind := n.kinds[i%len(n.kinds)]
		if n.rng.IntN(4) == 0 {
			kind = n.kinds[n.rng.IntN(len(n.kinds))]
		}
		n.inject(ctx, kind)
	}
}

func (n *nemesis) dur(minMS, maxMS int) time.Duration {
	return time.Duration(minMS+n.rng.IntN(maxMS-minMS+1)) * time.Millisecond
}

// target is the leader (three times in four) or a random node.
func (n *nemesis) target(ctx context.Context) (*node, bool) {
	leader := n.c.leader(ctx)
	if leader != "" && n.rng.IntN(4) != 0 {
		return n.c.node(leader), true
	}
	nd := n.c.nodes[n.rng.IntN(len(n.c.nodes))]
	return nd, nd.id == leader
}

func (n *nemesis) inject(ctx context.Context, kind string) {
	nd, isLeader := n.target(ctx)
	f := fault{Kind: kind, Node: nd.id, Leader: isLeader, At: time.Duration(n.h.now())}
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	// Faults last a little: long enough for a new election (fast raft:
	// 0.5-1 s), short enough that clients waiting on a paused node may
	// still get its answer afterwards.
	hold := context.WithoutCancel(ctx) // a fault runs to its end even when the test stops
	switch kind {
	case "kill":
		nd.kill()
		sleepCtx(hold, n.dur(500, 2500))
		note(nd.start(n.c.bin))
	case "pause":
		note(nd.signal(syscall.SIGSTOP))
		sleepCtx(hold, n.dur(500, 2500))
		note(nd.signal(syscall.SIGCONT))
	case "partition":
		note(n.part.isolate(nd))
		sleepCtx(hold, n.dur(1500, 4000))
		f.Majority = n.majorityLeader(hold, nd)
		if f.Majority == nd.id {
			errs = append(errs, "the others still follow the isolated node: did the partition cut anything?")
		}
		note(n.part.heal())
	}
	f.Healed = time.Duration(n.h.now())
	f.Err = strings.Join(errs, "; ")
	n.mu.Lock()
	n.faults = append(n.faults, f)
	n.mu.Unlock()
	n.log("fault " + f.String())
}

// majorityLeader is the leader the nodes other than cut name ("" if they
// disagree or have none).
func (n *nemesis) majorityLeader(ctx context.Context, cut *node) string {
	leader := ""
	for _, nd := range n.c.nodes {
		if nd == cut {
			continue
		}
		st, err := nd.status(ctx)
		if err != nil || st.Leader == "" || (leader != "" && st.Leader != leader) {
			return ""
		}
		leader = st.Leader
	}
	return leader
}

// healAll undoes whatever may still be in effect (after a failure too).
func (n *nemesis) healAll() error {
	var errs []string
	if n.part != nil {
		if err := n.part.heal(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for _, nd := range n.c.nodes {
		if err := nd.heal(n.c.bin); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("healing: %s", strings.Join(errs, "; "))
	}
	return nil
}

func (n *nemesis) list() []fault {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.faults)
}

func (n *nemesis) report() (string, int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	byKind := map[string]int{}
	var lines []string
	for _, f := range n.faults {
		byKind[f.Kind]++
		lines = append(lines, "  "+f.String())
	}
	var kinds []string
	for _, k := range n.kinds {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, byKind[k]))
	}
	return fmt.Sprintf("faults: %d (%s)\n%s", len(n.faults), strings.Join(kinds, ", "), strings.Join(lines, "\n")), len(n.faults)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
