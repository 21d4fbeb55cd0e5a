package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
)

// writeWithRetry sends a write with a fixed request id to the nodes in turn
// until one acknowledges it (2xx) or gives a definite 4xx. 5xx and transport
// errors (node stopped mid-request) are retried with the same id, as a client
// must do with indeterminate outcomes. It uses only the fixed API addresses,
// so it may run while nodes are stopped and started.
func writeWithRetry(t *testing.T, urls []string, method, path string, body any, requestID string, start int) response {
	var last response
	for attempt := 0; attempt < 300; attempt++ {
		base := urls[(start+attempt)%len(urls)]
		last = call(t, method, base+path, testToken, body, map[string]string{"X-Request-Id": requestID})
		if last.code >= 200 && last.code < 500 {
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
	return last
}

func (c *testCluster) urls() []string {
	var out []string
	for _, cfg := range c.cfgs {
		out = append(out, "http://"+cfg.HTTPAddr)
	}
	return out
}

func (c *testCluster) writeWithRetry(method, path string, body any, requestID string, start int) response {
	c.t.Helper()
	return writeWithRetry(c.t, c.urls(), method, path, body, requestID, start)
}

func TestThreeNodeClusterLeaderKilledAndRestarted(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	join := c.joinToken(c.leader())
	for i := range 3 {
		c.registerHost(c.leader(), join, fmt.Sprintf("back%d", i), "back", 16, 16384)
	}
	c.registerHost(c.leader(), join, "front0", "front", 1, 512)

	// A client writes continuously while the leader is killed and later
	// restarted; writes in flight at the kill have an unknown outcome and
	// are retried with their request id.
	const total = 12
	urls := c.urls()
	acked := make(chan string, total)
	failed := make(chan string, 2*total)
	go func() {
		defer close(acked)
		for i := range total {
			app := fmt.Sprintf("app%d", i)
			r := writeWithRetry(t, urls, "POST", "/v1/apps", map[string]any{"name": app, "image": "example/" + app + ":1", "container_port": 8080}, "req-app-"+app, i)
			if r.code != http.StatusCreated {
				failed <- "app " + app + ": " + r.String()
				return
			}
			inst := fmt.Sprintf("inst%d", i)
			r = writeWithRetry(t, urls, "POST", "/v1/installations", map[string]any{
				"name": inst, "app": app, "fronts": 1, "backs": 2, "domain": inst + ".example.com", "cpus": 0.1, "memory_mb": 64,
			}, "req-inst-"+inst, i+1)
			if r.code != http.StatusCreated {
				failed <- "installation " + inst + ": " + r.String()
				return
			}
			acked <- inst
		}
	}()
	var got []string
	killed := -1
	for inst := range acked {
		got = append(got, inst)
		switch len(got) {
		case total / 3:
			killed = c.leader()
			c.stop(killed)
		case 2 * total / 3:
			c.start(killed)
		}
	}
	select {
	case msg := <-failed:
		t.Fatal(msg)
	default:
	}
	require.Len(t, got, total)
	c.waitSettled()
	c.waitConverged()

	// Every acknowledged write is there, exactly once, on every node.
	for _, n := range c.nodes {
		st := n.Node.FSM.State()
		require.Len(t, st.Apps, total)
		require.Len(t, st.Installations, total)
		require.Len(t, st.Instances, 2*total, "an installation was applied twice or lost instances")
		for _, name := range got {
			require.Contains(t, st.Installations, name)
			require.Len(t, st.InstancesOf(name), 2)
		}
	}
	// Sending every request again with its id changes nothing and still
	// answers 201.
	before := c.nodes[c.leader()].Node.FSM.State()
	for i := range total {
		app := fmt.Sprintf("app%d", i)
		r := c.writeWithRetry("POST", "/v1/apps", map[string]any{"name": app, "image": "example/" + app + ":1", "container_port": 8080}, "req-app-"+app, i)
		require.Equal(t, http.StatusCreated, r.code, r.String())
		inst := fmt.Sprintf("inst%d", i)
		r = c.writeWithRetry("POST", "/v1/installations", map[string]any{
			"name": inst, "app": app, "fronts": 1, "backs": 2, "domain": inst + ".example.com", "cpus": 0.1, "memory_mb": 64,
		}, "req-inst-"+inst, i)
		require.Equal(t, http.StatusCreated, r.code, r.String())
	}
	after := c.nodes[c.leader()].Node.FSM.State()
	require.Equal(t, visible(t, before), visible(t, after))

	// All nodes hold byte-identical state.
	c.waitConverged()
	var first []byte
	for _, n := range c.nodes {
		data, err := json.Marshal(n.Node.FSM.State())
		require.NoError(t, err)
		if first == nil {
			first = data
		}
		require.JSONEq(t, string(first), string(data))
	}
}

func TestFollowerForwardsWritesWithLoopGuard(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	f := c.follower()
	r := call(t, "POST", c.nodes[f].URL()+"/v1/apps", testToken, map[string]any{"name": "fwd", "image": "example/fwd:1", "container_port": 8080}, map[string]string{"X-Request-Id": "fwd-1"})
	require.Equal(t, http.StatusCreated, r.code, r.String())
	require.Equal(t, "fwd-1", r.header.Get("X-Request-Id"))
	c.waitConverged()
	require.Contains(t, c.nodes[f].Node.FSM.State().Apps, "fwd")

	// A request that was already forwarded once is not forwarded again.
	r = call(t, "POST", c.nodes[f].URL()+"/v1/apps", testToken, map[string]any{"name": "loop", "image": "example/loop:1", "container_port": 8080},
		map[string]string{"X-Potluck-Forwarded-By": "core9"})
	require.Equal(t, http.StatusServiceUnavailable, r.code, r.String())
	require.Contains(t, string(r.body), "not the leader")
	require.NotContains(t, c.nodes[c.leader()].Node.FSM.State().Apps, "loop")

	// A read on a follower right after a write acknowledged by the leader
	// sees it (reads are answered from the leader's state by default).
	for i := range 10 {
		name := fmt.Sprintf("ryw%d", i)
		r = c.call(c.leader(), "POST", "/v1/apps", map[string]any{"name": name, "image": "example/x:1", "container_port": 8080})
		require.Equal(t, http.StatusCreated, r.code, r.String())
		r = c.call(f, "GET", "/v1/apps/"+name, nil)
		require.Equal(t, http.StatusOK, r.code, r.String())
	}

	// With ?stale a follower answers from its own copy, blocking queries too.
	c.waitConverged()
	idx := c.nodes[f].Node.FSM.State().Index
	done := make(chan response, 1)
	go func() {
		done <- call(t, "GET", fmt.Sprintf("%s/v1/apps?stale&index=%d&wait=10s", c.nodes[f].URL(), idx), testToken, nil, nil)
	}()
	time.Sleep(100 * time.Millisecond)
	r = c.call(c.leader(), "POST", "/v1/apps", map[string]any{"name": "later", "image": "example/later:1", "container_port": 8080})
	require.Equal(t, http.StatusCreated, r.code, r.String())
	got := <-done
	require.Equal(t, http.StatusOK, got.code, got.String())
	require.Contains(t, string(got.body), `"later"`)
}

func TestNodeRestartedFromSnapshotAndLogHasSameState(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	join := c.joinToken(c.leader())
	c.registerHost(c.leader(), join, "back0", "back", 8, 8192)
	c.registerHost(c.leader(), join, "front0", "front", 1, 512)
	for i := range 3 {
		r := c.call(c.leader(), "POST", "/v1/apps", map[string]any{"name": fmt.Sprintf("a%d", i), "image": "x/y:1", "container_port": 80})
		require.Equal(t, http.StatusCreated, r.code, r.String())
	}
	f := c.follower()
	c.waitConverged()
	require.NoError(t, c.nodes[f].Node.Snapshot())
	// More writes after the snapshot: they live only in the log.
	r := c.call(c.leader(), "POST", "/v1/installations", map[string]any{"name": "web", "app": "a1", "fronts": 1, "backs": 1, "domain": "web.example.com"})
	require.Equal(t, http.StatusCreated, r.code, r.String())
	c.waitConverged()
	want := c.nodes[f].Node.FSM.State()

	// Restart the whole group: every node's state can only come from its own
	// disk (node f: snapshot plus the log after it).
	for i := range c.nodes {
		c.stop(i)
	}
	for i := range c.nodes {
		c.start(i)
	}
	require.Eventually(t, func() bool { return c.nodes[f].Node.FSM.State().Index >= want.Index }, 15*time.Second, 20*time.Millisecond)
	got := c.nodes[f].Node.FSM.State()
	require.Equal(t, visible(t, want), visible(t, got))
	require.Equal(t, want.Requests, got.Requests)
	c.waitSettled()
}

func TestSingleNodeRestartKeepsState(t *testing.T) {
	c := newTestCluster(t, 1, func(_ int, cfg *Config) { cfg.Peers = nil })
	r := c.call(0, "POST", "/v1/apps", map[string]any{"name": "keep", "image": "x/keep:1", "container_port": 8080})
	require.Equal(t, http.StatusCreated, r.code, r.String())
	c.stop(0)
	c.start(0)
	c.waitSettled()
	r = c.call(0, "GET", "/v1/apps/keep", nil)
	require.Equal(t, http.StatusOK, r.code, r.String())
	var st struct {
		Health string
		Nodes  []struct{ ID string }
	}
	c.call(0, "GET", "/v1/status", nil).json(t, &st)
	require.Equal(t, "ok", st.Health)
	require.Len(t, st.Nodes, 1)

	r = call(t, "GET", c.nodes[0].URL()+"/metrics", "", nil, nil)
	require.Equal(t, http.StatusUnauthorized, r.code, "the public listener's metrics need the operator token")
	r = call(t, "GET", c.nodes[0].URL()+"/metrics", testToken, nil, nil)
	require.Equal(t, http.StatusOK, r.code)
	for _, want := range []string{
		`potluck_core_raft_state{state="Leader"} 1`,
		`potluck_core_raft_applied_index `,
		`potluck_core_api_requests_total{route="GET /v1/apps/{name}",method="GET",code="200"} 1`,
		`potluck_core_api_request_duration_seconds_count{route="GET /v1/status"} 1`,
	} {
		require.Contains(t, string(r.body), want)
	}
}

func TestHostMissingHeartbeatsIsReplaced(t *testing.T) {
	c := newTestCluster(t, 1, func(_ int, cfg *Config) {
		cfg.Peers = nil
		cfg.HeartbeatTTL = 600 * time.Millisecond
	})
	join := c.joinToken(0)
	backs := map[string]string{}
	for i := range 3 {
		name := fmt.Sprintf("back%d", i)
		backs[c.registerHost(0, join, name, "back", 1, 1024)] = name
	}
	f0 := c.registerHost(0, join, "front0", "front", 1, 512)
	f1 := c.registerHost(0, join, "front1", "front", 1, 512)
	r := c.call(0, "POST", "/v1/apps", map[string]any{"name": "a", "image": "x/a:1", "container_port": 80})
	require.Equal(t, http.StatusCreated, r.code, r.String())
	r = c.call(0, "POST", "/v1/installations", map[string]any{"name": "web", "app": "a", "fronts": 1, "backs": 2, "domain": "web.example.com", "cpus": 1, "memory_mb": 512})
	require.Equal(t, http.StatusCreated, r.code, r.String())

	st := c.nodes[0].Node.FSM.State()
	inst := st.InstancesOf("web")
	require.Len(t, inst, 2)
	victim := inst[0].HostID
	victimFront := st.Installations["web"].FrontHosts[0]
	// Everybody but the victims heartbeats (through the internal endpoint, as
	// a follower would forward it).
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for range 200 {
			for id := range backs {
				if id != victim {
					call(t, "POST", c.nodes[0].URL()+"/v1/internal/heartbeat", testToken, map[string]any{"host_id": id}, nil)
				}
			}
			for _, id := range []string{f0, f1} {
				if id != victimFront {
					call(t, "POST", c.nodes[0].URL()+"/v1/internal/heartbeat", testToken, map[string]any{"host_id": id}, nil)
				}
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { close(stop); <-done }()

	require.Eventually(t, func() bool {
		st := c.nodes[0].Node.FSM.State()
		if st.Hosts[victim].Status != fsm.HostDown || st.Hosts[victimFront].Status != fsm.HostDown {
			return false
		}
		in := st.InstancesOf("web")
		if len(in) != 2 {
			return false
		}
		for _, i := range in {
			if i.HostID == victim {
				return false
			}
		}
		return st.Installations["web"].FrontHosts[0] != victimFront
	}, 10*time.Second, 50*time.Millisecond, "down host's instance and front were not replaced")
}

func TestDecommissionDrainsAndDeleteFreesPorts(t *testing.T) {
	c := newTestCluster(t, 1, func(_ int, cfg *Config) { cfg.Peers = nil })
	join := c.joinToken(0)
	b0 := c.registerHost(0, join, "back0", "back", 4, 4096)
	c.registerHost(0, join, "front0", "front", 1, 512)
	r := c.call(0, "POST", "/v1/apps", map[string]any{"name": "a", "image": "x/a:1", "container_port": 80})
	require.Equal(t, http.StatusCreated, r.code, r.String())
	for _, name := range []string{"one", "two"} {
		r = c.call(0, "POST", "/v1/installations", map[string]any{"name": name, "app": "a", "fronts": 1, "backs": 1, "domain": name + ".example.com"})
		require.Equal(t, http.StatusCreated, r.code, r.String())
	}
	st := c.nodes[0].Node.FSM.State()
	require.Equal(t, 5000, st.InstancesOf("one")[0].Port)
	require.Equal(t, 5001, st.InstancesOf("two")[0].Port)

	// Delete frees the port: the next installation gets 5000 again.
	r = c.call(0, "DELETE", "/v1/installations/one", nil)
	require.Equal(t, http.StatusNoContent, r.code, r.String())
	r = c.call(0, "POST", "/v1/installations", map[string]any{"name": "three", "app": "a", "fronts": 1, "backs": 1, "domain": "three.example.com"})
	require.Equal(t, http.StatusCreated, r.code, r.String())
	require.Equal(t, 5000, c.nodes[0].Node.FSM.State().InstancesOf("three")[0].Port)

	// Decommission drains: replacements are placed on the new Back while
	// back0 keeps its instances (and keeps serving) until they run.
	b1 := c.registerHost(0, join, "back1", "back", 4, 4096)
	r = c.call(0, "POST", "/v1/hosts/back0/decommission", nil)
	require.Equal(t, http.StatusOK, r.code, r.String())
	st = c.nodes[0].Node.FSM.State()
	require.Equal(t, fsm.HostDraining, st.Hosts[b0].Status)
	require.Len(t, st.InstancesOn(b0), 2, "the old instances stay until their replacements run")
	require.Len(t, st.InstancesOn(b1), 2)
	r = c.call(0, "POST", "/v1/hosts/back0/decommission", nil)
	require.Equal(t, http.StatusConflict, r.code, r.String())
	time.Sleep(300 * time.Millisecond) // several reconcile rounds: nothing runs yet, so nothing leaves
	require.Equal(t, fsm.HostDraining, c.nodes[0].Node.FSM.State().Hosts[b0].Status)

	// The replacements report running: back0 leaves with its instances.
	var reports []map[string]string
	for _, in := range c.nodes[0].Node.FSM.State().InstancesOn(b1) {
		reports = append(reports, map[string]string{"id": in.ID, "state": "running"})
	}
	r = c.call(0, "POST", "/v1/internal/heartbeat", map[string]any{"host_id": b1, "instances": reports})
	require.Less(t, r.code, 300, r.String())
	require.Eventually(t, func() bool {
		st := c.nodes[0].Node.FSM.State()
		return st.Hosts[b0].Status == fsm.HostDecommissioned && len(st.InstancesOn(b0)) == 0
	}, 10*time.Second, 50*time.Millisecond, "back0 did not leave once its replacements ran")
	require.Len(t, c.nodes[0].Node.FSM.State().InstancesOn(b1), 2)

	// The name can be reused by a new host; that host may register again
	// (agent restart) and gets its registration back.
	body := map[string]any{"name": "back0", "role": "back", "public_key": randomKey(t), "cpus": 1, "memory_mb": 512, "disk_mb": 100}
	r = call(t, "POST", c.nodes[0].URL()+"/v1/hosts", join, body, nil)
	require.Equal(t, http.StatusCreated, r.code, r.String())
	r = call(t, "POST", c.nodes[0].URL()+"/v1/hosts", join, body, nil)
	require.Equal(t, http.StatusOK, r.code, r.String())
}

func TestOneNodeFirstThenOthersJoin(t *testing.T) {
	var first string
	c := newTestCluster(t, 3, func(i int, cfg *Config) {
		cfg.Peers = nil
		if i == 0 {
			first = "http://" + cfg.HTTPAddr
			return
		}
		cfg.JoinURL = first
	})
	require.Eventually(t, func() bool {
		servers, err := c.nodes[0].Node.Servers()
		return err == nil && len(servers) == 3
	}, 15*time.Second, 50*time.Millisecond, "nodes did not join")
	c.waitSettled()

	// The group survives the loss of the first node.
	c.stop(0)
	r := c.writeWithRetry("POST", "/v1/apps", map[string]any{"name": "after", "image": "x/after:1", "container_port": 8080}, "after-1", 1)
	require.Equal(t, http.StatusCreated, r.code, r.String())

	// And the dead node can be removed from it.
	l := c.leader()
	r = c.call(l, "DELETE", "/v1/cluster/voters/core1", nil)
	require.Equal(t, http.StatusNoContent, r.code, r.String())
	servers, err := c.nodes[l].Node.Servers()
	require.NoError(t, err)
	require.Len(t, servers, 2)
	require.NotContains(t, c.nodes[l].Node.FSM.State().CoreNodes, "core1")
	r = c.call(l, "DELETE", "/v1/cluster/voters/core1", nil)
	require.Equal(t, http.StatusNotFound, r.code, r.String())
	r = c.call(l, "POST", "/v1/cluster/voters", map[string]any{"id": "bad id", "raft_address": "x"})
	require.Equal(t, http.StatusBadRequest, r.code, r.String())
}
