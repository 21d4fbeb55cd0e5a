// Package e2e runs the whole system on loopback: three core nodes, a Front
// and three Backs, with real raft, real WireGuard netstacks over UDP and real
// containers in the Docker Engine.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"potluck/apiclient"
	"potluck/back/engine"
	"potluck/internal/dockertest"
	"potluck/internal/localcluster"
	"potluck/lb"
)

const domain = "hello.e2e.test"

// installation, hosts and runningOn read the cluster's state through
// localcluster, failing the test when no core node answers.

func (s *system) installation(name string) apiclient.Installation {
	v, err := s.c.Installation(context.Background(), name)
	require.NoError(s.t, err)
	return v
}

func (s *system) hosts() map[string]apiclient.Host {
	hs, err := s.c.Hosts(context.Background())
	require.NoError(s.t, err)
	return hs
}

// waitReady waits until every named host reports ready.
func (s *system) waitReady(names ...string) {
	s.t.Helper()
	require.Eventually(s.t, func() bool {
		hs := s.hosts()
		for _, n := range names {
			if hs[n].Status != "ready" {
				return false
			}
		}
		return true
	}, 30*time.Second, 200*time.Millisecond, "hosts never became ready: %v", names)
}

// runningOn returns the sorted host names of the installation's running instances.
func (s *system) runningOn(name string) []string {
	on, err := s.c.RunningOn(context.Background(), name)
	require.NoError(s.t, err)
	return on
}

func TestWholeSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: a minute or two with Docker")
	}
	dockertest.Require(t)
	tarball := dockertest.SampleImage(t)
	eng, err := engine.Connect(context.Background(), "", nil)
	require.NoError(t, err)
	defer eng.Close()

	s := newSystem(t, 3, 4*time.Second)
	s.startFront()
	dirs := backDirs(t, 3)
	s.backs = []*localcluster.BackHost{s.startBack(0, dirs[0]), s.startBack(1, dirs[1]), s.startBack(2, dirs[2])}
	require.Eventually(t, func() bool {
		hs := s.hosts()
		for _, n := range []string{"front1", "back1", "back2", "back3"} {
			if hs[n].Status != "ready" {
				return false
			}
		}
		return true
	}, 30*time.Second, 200*time.Millisecond, "hosts never became ready (probed over the tunnel)")

	// Push the sample app and install it on 1 Front and 2 Backs.
	require.NoError(t, s.c.PushTarball(context.Background(), "hello", tarball, 8080))
	require.Equal(t, 201, s.api(http.MethodPost, "/v1/installations", map[string]any{
		"name": "hello", "app": "hello", "fronts": 1, "backs": 2, "domain": domain,
		"cpus": 0.25, "memory_mb": 64, "disk_mb": 64, "container_port": 8080,
	}, nil))
	require.Eventually(t, func() bool { return len(s.runningOn("hello")) == 2 }, 90*time.Second, 250*time.Millisecond, "instances never ran")

	t.Run("GET and POST reach both instances in turn", func(t *testing.T) {
		seen := map[string]int{}
		require.Eventually(t, func() bool {
			code, inst, _, err := s.get(domain)
			if err == nil && code == 200 {
				seen[inst]++
			}
			return len(seen) == 2
		}, 30*time.Second, 20*time.Millisecond)
		for range 10 {
			code, inst, _, err := s.get(domain)
			require.NoError(t, err)
			require.Equal(t, 200, code)
			seen[inst]++
		}
		for inst, n := range seen {
			require.GreaterOrEqual(t, n, 5, "round robin: %s served %d of the requests %v", inst, n, seen)
		}
		body, _ := json.Marshal(map[string]string{"name": "ada"})
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.front.Addr+"/", bytes.NewReader(body))
		req.Host = domain
		req.Header.Set("Content-Type", "application/json")
		resp, err := frontClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, 201, resp.StatusCode)
		var stored struct{ Data map[string]string }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&stored))
		require.Equal(t, "ada", stored.Data["name"])

		code, _, body2, err := s.get("unknown.e2e.test")
		require.NoError(t, err)
		require.Equal(t, 404, code, body2)

		// The Backs run the HTTP gateway and said so: the Front pipelines
		// to their instances.
		routes := s.front.Front.Proxy().Status().Routes
		i := slices.IndexFunc(routes, func(r lb.RouteStatus) bool { return r.Name == "hello" })
		require.GreaterOrEqual(t, i, 0, "the Front has no route for hello")
		require.Len(t, routes[i].Backends, 2)
		for _, b := range routes[i].Backends {
			require.Equal(t, 1, b.Pipelined, "pipelined connections to %s", b.Addr)
		}
	})

	t.Run("a stopped container costs zero failed GETs", func(t *testing.T) {
		inst := s.installation("hello").Instances[0]
		load := s.startLoad(domain, 2000)
		time.Sleep(300 * time.Millisecond)
		require.NoError(t, eng.Stop(context.Background(), engine.ContainerName(inst.ID), 0))
		time.Sleep(2 * time.Second)
		ok, fail, failures := load.finish()
		require.Zero(t, fail, "failed GETs while a container was down: %v", failures)
		require.Greater(t, ok, 20)
		// The Back notices and starts it again.
		require.Eventually(t, func() bool { return len(s.runningOn("hello")) == 2 }, 60*time.Second, 250*time.Millisecond)
	})

	// Which Backs hold the instances now; the third is the spare.
	holders := s.runningOn("hello")
	spare := ""
	for _, n := range []string{"back1", "back2", "back3"} {
		if !slices.Contains(holders, n) {
			spare = n
		}
	}
	require.NotEmpty(t, spare)
	victim := holders[0]
	victimIdx := int(victim[len(victim)-1] - '1')

	t.Run("a dead Back's instance is rescheduled and the Front follows", func(t *testing.T) {
		// The machine dies: agent gone, containers gone.
		s.backs[victimIdx].Stop()
		cs, err := eng.List(context.Background(), s.hosts()[victim].ID)
		require.NoError(t, err)
		for _, c := range cs {
			require.NoError(t, eng.Remove(context.Background(), c.ID, 0))
		}
		require.Eventually(t, func() bool {
			on := s.runningOn("hello")
			return slices.Contains(on, spare) && !slices.Contains(on, victim)
		}, 60*time.Second, 250*time.Millisecond, "not rescheduled onto %s", spare)
		require.Eventually(t, func() bool {
			seen := map[string]bool{}
			for range 6 {
				code, inst, _, err := s.get(domain)
				if err != nil || code != 200 {
					return false
				}
				seen[inst] = true
			}
			return len(seen) == 2
		}, 30*time.Second, 100*time.Millisecond, "the Front does not serve both current instances")
	})

	t.Run("the Front keeps serving while the core leader dies", func(t *testing.T) {
		var st struct {
			Node   string `json:"node"`
			Leader string `json:"leader"`
		}
		require.Equal(t, 200, s.api(http.MethodGet, "/v1/status", nil, &st))
		leader := -1
		for i := range s.c.NumCores() {
			if c := s.c.CoreConfig(i); st.Leader == c.NodeID || st.Leader == c.RaftBind {
				leader = i
			}
		}
		require.GreaterOrEqual(t, leader, 0, "leader %q not found", st.Leader)
		load := s.startLoad(domain, 3000)
		time.Sleep(300 * time.Millisecond)
		killed := time.Now()
		require.NoError(t, s.c.StopCore(leader))
		require.Eventually(t, func() bool {
			var st2 struct{ Leader string }
			return s.api(http.MethodGet, "/v1/status", nil, &st2) == 200 && st2.Leader != "" && st2.Leader != st.Leader
		}, 15*time.Second, 100*time.Millisecond, "no new leader")
		t.Logf("API answered with a new leader %.1fs after the leader died", time.Since(killed).Seconds())
		time.Sleep(time.Second)
		ok, fail, failures := load.finish()
		require.Zero(t, fail, "failed GETs while the leader died: %v", failures)
		require.Greater(t, ok, 20)
		require.NoError(t, s.c.StartCore(leader)) // back from its data dir
	})

	t.Run("a decommissioned Back's instance moves before it leaves", func(t *testing.T) {
		// The dead Back comes back (same data dir: same key and identity).
		s.backs[victimIdx] = s.startBack(victimIdx, dirs[victimIdx])
		require.Eventually(t, func() bool { return s.hosts()[victim].Status == "ready" }, 30*time.Second, 200*time.Millisecond)
		leaving := s.runningOn("hello")[0]
		id := s.hosts()[leaving].ID
		require.Equal(t, 200, s.api(http.MethodPost, "/v1/hosts/"+id+"/decommission", nil, nil))
		require.Eventually(t, func() bool {
			on := s.runningOn("hello")
			return len(on) == 2 && !slices.Contains(on, leaving)
		}, 60*time.Second, 250*time.Millisecond)
		require.Eventually(t, func() bool {
			cs, err := eng.List(context.Background(), id)
			return err == nil && len(cs) == 0
		}, 30*time.Second, 250*time.Millisecond, "the decommissioned Back still runs containers")
		require.Eventually(t, func() bool { return s.hosts()[leaving].Status == "decommissioned" }, 30*time.Second, 250*time.Millisecond)
	})

	t.Run("deleting the installation removes containers, ports and tunnels", func(t *testing.T) {
		// DELETE answers once the installation is gone; meanwhile the routes
		// go first (503 while the instances drain) and the containers keep
		// running: requests in flight finish.
		deleted := make(chan int, 1)
		go func() { deleted <- s.api(http.MethodDelete, "/v1/installations/hello", nil, nil) }()
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			code, inst, body, err := s.get(domain)
			require.NoError(c, err)
			require.NotEqual(c, 200, code, "the Front still routes to a deleted installation's instances: %s %q", inst, body)
		}, 10*time.Second, 100*time.Millisecond)
		running := 0
		for _, h := range s.hosts() {
			cs, err := eng.List(context.Background(), h.ID)
			require.NoError(t, err)
			running += len(cs)
		}
		require.Positive(t, running, "the containers stopped before the routes went")
		select {
		case code := <-deleted:
			require.Equal(t, 204, code)
		case <-time.After(60 * time.Second):
			t.Fatal("DELETE did not answer once the installation drained")
		}
		// Only this system's hosts: other tests share the Docker Engine.
		require.Eventually(t, func() bool {
			for _, h := range s.hosts() {
				cs, err := eng.List(context.Background(), h.ID)
				if err != nil || len(cs) > 0 {
					return false
				}
			}
			return true
		}, 45*time.Second, 250*time.Millisecond, "containers left behind")
		require.Eventually(t, func() bool {
			code, _, _, err := s.get(domain)
			return err == nil && code == 404
		}, 15*time.Second, 100*time.Millisecond, "the Front still routes the domain")
		// The Front needs no Back any more: only core nodes remain its peers.
		require.Eventually(t, func() bool {
			return len(s.front.Front.Agent().Node().Peers()) == s.c.NumCores()
		}, 15*time.Second, 100*time.Millisecond, "tunnels to Backs left on the Front: %v", s.front.Front.Agent().Node().Peers())
		for _, b := range s.backs {
			if b != nil {
				require.Eventually(t, func() bool {
					return len(b.Back.Agent().Node().Peers()) == s.c.NumCores()
				}, 15*time.Second, 100*time.Millisecond, "%s keeps tunnels: %v", b.Name, b.Back.Agent().Node().Peers())
			}
		}
		var containers []apiclient.Instance
		require.Equal(t, 200, s.api(http.MethodGet, "/v1/containers", nil, &containers))
		require.Empty(t, containers, "ports and instances are freed")
	})
	fmt.Fprintln(os.Stderr)
}
