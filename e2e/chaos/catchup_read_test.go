package chaos

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNewLeaderAnswersNoReadBeforeCatchingUp pins the second
// linearizability bug that TestLinearizable found (with kills): a node that
// restarted and was still replaying its log into the FSM answered default
// reads from its half-replayed state (in the chaos run, an app's image of
// 40 s earlier). consistentRead answered from the local state, skipping
// CatchUp's barrier and any leadership check, in two cases:
//   - a read waited on a follower for a leader (leaderURL) and this node
//     itself became the leader meanwhile: forward returned false and the
//     handler answered at once;
//   - a forwarded read (X-Potluck-Forwarded-By) was always answered locally,
//     so a follower that forwarded to a freshly elected leader which had not
//     caught up yet, or to a node that no longer led, got its stale state.
//
// Now a forwarded read reaching a node that does not lead gets 503, and the
// leader answers only after a read fence (core/cluster/readfence.go).
//
// Each round: restart a follower, and while it replays (1600 writes in the
// log, the probe app deleted at the end), kill the leader and send reads to
// the restarted node. Every read must answer 404: the delete was
// acknowledged before the restart. A round exercises the bug when a
// restarted node (this one, or the leader killed in the round before, which
// restarted too) wins the election, about every other round: the core that
// had the bug answered 200 then.
func TestNewLeaderAnswersNoReadBeforeCatchingUp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster of processes")
	}
	c := startCluster(t, "potluck-catchup-", nil)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	all := newAPIClient(c.nodes, 2*time.Second, 15*time.Second)

	const probe = "catchup-probe"
	out, meta := all.do(ctx, rng, appInput{Kind: opCreate, Name: probe, Image: "chaos.example/probe:1"}, "probe-create")
	require.Equal(t, http.StatusCreated, out.Status, "create %s: %v", probe, meta.Attempts)
	// Fill the log so that replaying it takes a while.
	fillStart := time.Now()
	const writers, perWriter = 32, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			cl := newAPIClient(c.nodes, 2*time.Second, 15*time.Second)
			for i := range perWriter {
				name := fmt.Sprintf("fill-%d-%d", w, i%4)
				kind := opCreate
				if i%2 == 1 {
					kind = opDelete
				}
				cl.do(ctx, r, appInput{Kind: kind, Name: name, Image: "chaos.example/fill:1"}, fmt.Sprintf("fill-%d-%d", w, i))
			}
		})
	}
	wg.Wait()
	t.Logf("%d writes in %v", writers*perWriter, time.Since(fillStart).Round(time.Millisecond))
	out, meta = all.do(ctx, rng, appInput{Kind: opDelete, Name: probe}, "probe-delete")
	require.Equal(t, http.StatusNoContent, out.Status, "delete %s: %v", probe, meta.Attempts)

	const rounds, reads = 6, 10
	readers := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	var stale []string
	for round := range rounds {
		require.NoError(t, c.waitHealthy(ctx, 30*time.Second))
		leader := c.node(c.leader(ctx))
		require.NotNil(t, leader, "no leader")
		var restarted *node
		for _, n := range c.nodes {
			if n != leader {
				restarted = n
				break
			}
		}
		restarted.kill()
		require.NoError(t, restarted.start(c.bin))
		// Take the leader away as soon as the restarted node answers: it is
		// then replaying the log it has (its own ?stale copy may still
		// show the app), and an election follows.
		upClient := newAPIClient([]*node{restarted}, time.Second, 15*time.Second)
		upClient.stale = true
		started := time.Now()
		up, _ := upClient.do(ctx, rng, appInput{Kind: opGet, Name: probe}, "")
		require.False(t, up.Unknown, "%s does not answer after its restart", restarted.id)
		upAfter := time.Since(started)
		leader.kill()
		killed := time.Now()
		var mu sync.Mutex
		answers := map[string]int{}
		var rwg sync.WaitGroup
		for range reads {
			rwg.Go(func() {
				// Retry 502s (forwarding to the dead leader) so that reads
				// wait on the node while it has no leader.
				key := "no answer"
				for time.Since(killed) < 5*time.Second {
					req, _ := http.NewRequest(http.MethodGet, "http://"+restarted.httpAddr+"/v1/apps/"+probe, nil)
					req.Header.Set("Authorization", "Bearer "+operatorToken)
					resp, err := readers.Do(req)
					if err != nil {
						continue
					}
					resp.Body.Close()
					key = fmt.Sprint(resp.StatusCode)
					if resp.StatusCode != http.StatusBadGateway {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				mu.Lock()
				answers[key]++
				mu.Unlock()
			})
		}
		rwg.Wait()
		applied, last := raftIndexes(restarted)
		t.Logf("round %d: %s restarted, answered after %v (its own copy: %d)", round, restarted.id, upAfter.Round(time.Millisecond), up.Status)
		newLeader := c.leader(ctx)
		t.Logf("round %d: killed the leader %s; new leader %q; %s applied %d of %d; %d reads of the deleted %s on %s: %v",
			round, leader.id, newLeader, restarted.id, applied, last, reads, probe, restarted.id, answers)
		if n := answers["200"]; n > 0 {
			stale = append(stale, fmt.Sprintf("round %d: %s (new leader %q) answered %d of %d reads with the app deleted before its restart (200)",
				round, restarted.id, newLeader, n, reads))
		}
		require.NoError(t, leader.start(c.bin))
	}
	if len(stale) > 0 {
		t.Errorf("reads answered from a state that is not caught up (consistentRead must pass the read fence also when this node becomes the leader while it forwards, and refuse a forwarded read when it does not lead):\n%s\n%s",
			strings.Join(stale, "\n"), c.logTails(8))
	}
}

// raftIndexes reads a node's applied and last raft index from /metrics
// (no token: a restarted node may not know the operator token yet).
func raftIndexes(n *node) (applied, last uint64) {
	resp, err := statusClient.Get("http://" + n.httpAddr + "/metrics")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, _ := strconv.ParseFloat(val, 64)
		switch name {
		case "potluck_core_raft_applied_index":
			applied = uint64(v)
		case "potluck_core_raft_last_index":
			last = uint64(v)
		}
	}
	return applied, last
}
