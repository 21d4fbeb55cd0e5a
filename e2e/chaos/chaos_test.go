package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
)

// settings of one run: CHAOS_DURATION (default 25s) is how long clients run
// operations while the nemesis injects faults; CHAOS_SEED makes the choices
// of clients and nemesis repeatable (the cluster's timing never is);
// CHAOS_FAULTS limits the nemesis to some kinds (kill,pause,partition).
type settings struct {
	duration time.Duration
	seed     uint64
	clients  int
	names    []string
	faults   []string // nil: every kind
}

func loadSettings(t *testing.T) settings {
	s := settings{duration: 25 * time.Second, seed: uint64(time.Now().UnixNano()), clients: 10,
		names: []string{"chaos-a", "chaos-b", "chaos-c", "chaos-d", "chaos-e"}}
	if v := os.Getenv("CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "CHAOS_DURATION must be a duration such as 3m")
		require.Positive(t, d, "CHAOS_DURATION must be positive")
		s.duration = d
	}
	if v := os.Getenv("CHAOS_FAULTS"); v != "" {
		s.faults = strings.Split(v, ",")
		for _, f := range s.faults {
			require.Contains(t, []string{"kill", "pause", "partition"}, f, "CHAOS_FAULTS is a comma-separated list of kill, pause, partition")
		}
	}
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		_, err := fmt.Sscan(v, &s.seed)
		require.NoError(t, err, "CHAOS_SEED must be an unsigned integer")
	}
	return s
}

// TestLinearizable is the Jepsen-style check: concurrent clients create,
// read (default, linearizable mode) and delete apps on a 3-node cluster of
// potluck-core processes while the nemesis kills, pauses and partitions
// nodes; then every fault is healed, final reads on every node confirm
// convergence, and porcupine checks the whole history.
func TestLinearizable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster of processes and runs faults for CHAOS_DURATION")
	}
	set := loadSettings(t)
	t.Logf("chaos: seed %d (CHAOS_SEED), %v of operations (CHAOS_DURATION), %d clients on %d names",
		set.seed, set.duration, set.clients, len(set.names))

	// One uid per node lets iptables tell their traffic apart (partitioner).
	var uids []int
	_, iptErr := exec.LookPath("iptables")
	if os.Geteuid() == 0 && iptErr == nil {
		first := 40000 + 3*(os.Getpid()%8000)
		uids = []int{first, first + 1, first + 2}
	}
	c := startCluster(t, "potluck-chaos-", uids)
	var part *partitioner
	err := fmt.Errorf("partitions need root and iptables (euid %d, iptables: %v)", os.Geteuid(), iptErr)
	if uids != nil {
		part, err = newPartitioner(c.nodes)
	}
	if err != nil {
		t.Logf("chaos: partition fault disabled: %v", err)
	} else {
		// Also on any failure: the partition rules go.
		t.Cleanup(func() {
			if err := part.close(); err != nil {
				t.Errorf("removing the iptables chain %s: %v", part.chain, err)
			}
		})
	}
	ctx := context.Background()

	h := newHistory()
	logf := func(s string) { t.Log(s) }
	nem := newNemesis(c, part, h, set.seed, logf)
	if set.faults != nil {
		nem.kinds = slices.DeleteFunc(nem.kinds, func(k string) bool { return !slices.Contains(set.faults, k) })
		require.NotEmpty(t, nem.kinds, "CHAOS_FAULTS names no available fault (kill, pause, partition)")
	}

	runCtx, cancel := context.WithTimeout(ctx, set.duration)
	defer cancel()
	var wg sync.WaitGroup
	seq := &seqGen{}
	for i := range set.clients {
		w := &workload{h: h, client: newAPIClient(c.nodes, time.Second, 5*time.Second), names: set.names, seq: seq}
		wg.Go(func() { w.run(runCtx, set.seed+uint64(i)+1, 1_000_000) })
	}
	wg.Go(func() { nem.run(runCtx) })
	wg.Wait()

	require.NoError(t, nem.healAll())
	if err := c.waitHealthy(ctx, 30*time.Second); err != nil {
		t.Fatalf("the cluster did not recover after the faults were healed: %v\n%s", err, c.logTails(30))
	}
	finalReads(t, h, c, set.names)

	ops := h.operations()
	faults, nFaults := nem.report()
	t.Log(h.summary())
	t.Log(faults)
	checkTimeout := min(max(2*set.duration, time.Minute), 10*time.Minute)
	started := time.Now()
	res, info := porcupine.CheckOperationsVerbose(appModel, ops, checkTimeout)
	took := time.Since(started).Round(time.Millisecond)
	verdict := map[porcupine.CheckResult]string{porcupine.Ok: "linearizable", porcupine.Illegal: "NOT LINEARIZABLE",
		porcupine.Unknown: "unknown (the checker timed out)"}[res]
	line := fmt.Sprintf("chaos: verdict %s: %d operations in the history, %d faults, %v of operations, checked in %v",
		verdict, len(ops), nFaults, set.duration, took)
	if res != porcupine.Ok {
		c.keep = true
		path := filepath.Join(c.dir, "linearizability.html")
		info.AddAnnotations(faultAnnotations(nem))
		if err := porcupine.VisualizePath(appModel, info, path); err != nil {
			t.Logf("writing the visualization: %v", err)
		} else {
			line += "; visualization: " + path
		}
	}
	switch res {
	case porcupine.Ok:
		t.Log(line)
	case porcupine.Illegal:
		t.Errorf("%s\n%s\nhistory began at %s (node logs are in UTC wall time)\n%s",
			line, explain(ops, info, nem.list()), h.start.UTC().Format("15:04:05.000"), c.logTails(15))
	default:
		// Undecided is not linearizable: a run too large to check proves nothing.
		t.Errorf("%s\nthe checker could not decide within %v; shorten CHAOS_DURATION or split the keys further", line, checkTimeout)
	}
	// Without faults that took, the run checked the API in calm weather.
	if nFaults == 0 {
		t.Errorf("no fault was injected in %v of operations", set.duration)
	}
	for _, f := range nem.list() {
		if f.Err != "" {
			t.Errorf("a fault was not injected or healed as meant: %s", f)
		}
	}
}

// finalReads reads every name on every node after the faults are healed:
// linearizable reads go into the history (all must agree with it), and each
// node's own copy (?stale) must converge to the same answer.
func finalReads(t *testing.T, h *history, c *cluster, names []string) {
	ctx := context.Background()
	want := map[string]appOutput{}
	for _, nd := range c.nodes {
		cl := newAPIClient([]*node{nd}, 3*time.Second, 15*time.Second)
		rng := rand.New(rand.NewPCG(1, 2))
		for _, name := range names {
			in := appInput{Kind: opGet, Name: name}
			call := h.now()
			out, meta := cl.do(ctx, rng, in, "")
			require.False(t, out.Unknown, "final read of %s on %s got no answer: %v", name, nd.id, meta.Attempts)
			h.add(porcupine.Operation{ClientId: h.clientID(), Input: in, Call: call, Output: out, Return: h.now(), Metadata: meta})
			want[name] = out
		}
	}
	for _, nd := range c.nodes {
		cl := newAPIClient([]*node{nd}, 3*time.Second, 3*time.Second)
		cl.stale = true
		rng := rand.New(rand.NewPCG(3, 4))
		for _, name := range names {
			var got appOutput
			require.Eventually(t, func() bool {
				got, _ = cl.do(ctx, rng, appInput{Kind: opGet, Name: name}, "")
				return got == want[name]
			}, 15*time.Second, 100*time.Millisecond, "%s's own copy of %s never converged: %+v, want %+v", nd.id, name, got, want[name])
		}
	}
	var summary []string
	for _, name := range names {
		v := want[name].Image
		if want[name].Status == http.StatusNotFound {
			v = "(none)"
		}
		summary = append(summary, name+"="+v)
	}
	t.Logf("final state, the same on every node: %s", strings.Join(summary, " "))
}

func faultAnnotations(n *nemesis) []porcupine.Annotation {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []porcupine.Annotation
	for _, f := range n.faults {
		out = append(out, porcupine.Annotation{Tag: "nemesis", Start: int64(f.At), End: int64(f.Healed),
			Description: f.Kind + " " + f.Node, Details: f.String(), BackgroundColor: "#f4c7c3"})
	}
	return out
}
