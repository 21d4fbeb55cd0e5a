package reconcile

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"potluck/core/fsm"
)

// Rollout timing defaults.
const (
	// DefaultRolloutTimeout bounds how long a release's instances may take
	// to become healthy (image download and start-up included).
	DefaultRolloutTimeout = 5 * time.Minute
	// DefaultDrainTime is how long a replaced instance keeps running after
	// the Fronts stopped routing to it, so requests in flight finish.
	DefaultDrainTime = 10 * time.Second
)

// rolloutStep is the next decision about one installation's rollout.
type rolloutStep struct {
	cmd *fsm.Command
	log string
}

// planRollouts decides, for every installation: promote a deploying release
// whose instances all run, fail one whose instance failed or that ran out of
// time, remove drained instances, and delete a deleting installation once
// all its instances drained.
func planRollouts(st *fsm.State, now time.Time, timeout, drain time.Duration) []rolloutStep {
	var steps []rolloutStep
	var drained []string
	of := rolloutInstances(st)
	for _, inst := range st.SortedInstallations() {
		instances := of[inst.Name]
		var done []string
		for _, in := range instances {
			if in.State == fsm.InstanceDraining && now.Sub(in.UpdatedAt) >= drain {
				done = append(done, in.ID)
			}
		}
		if inst.Deleting {
			if len(done) == len(instances) { // the delete removes them
				steps = append(steps, rolloutStep{&fsm.Command{Type: fsm.CmdDeleteInstallation, Name: inst.Name}, "deleted installation drained; removed"})
			}
			continue
		}
		drained = append(drained, done...)
		d := inst.Deploying()
		if d == nil {
			continue
		}
		running, states := 0, []string{}
		var failed *fsm.Instance
		for _, in := range instances {
			if in.Release != d.Version {
				continue
			}
			states = append(states, fmt.Sprintf("%s %s", in.ID, in.State))
			switch in.State {
			case fsm.InstanceRunning:
				running++
			case fsm.InstanceFailed, fsm.InstanceLost:
				if failed == nil {
					failed = in
				}
			}
		}
		ref := &fsm.Release{Version: d.Version}
		switch {
		case failed != nil:
			ref.Message = fmt.Sprintf("instance %s on %s %s: %s", failed.ID, hostName(st, failed.HostID), failed.State, failed.Message)
			steps = append(steps, rolloutStep{&fsm.Command{Type: fsm.CmdFailRelease, Name: inst.Name, Release: ref}, "release failed; the live release keeps serving"})
		case running >= inst.Backs:
			steps = append(steps, rolloutStep{&fsm.Command{Type: fsm.CmdPromoteRelease, Name: inst.Name, Release: ref}, "release is live; replaced instances drain"})
		case now.Sub(d.CreatedAt) > timeout:
			ref.Message = fmt.Sprintf("not healthy within %s (%s)", timeout, strings.Join(states, ", "))
			steps = append(steps, rolloutStep{&fsm.Command{Type: fsm.CmdFailRelease, Name: inst.Name, Release: ref}, "release timed out; the live release keeps serving"})
		}
	}
	if len(drained) > 0 {
		steps = append(steps, rolloutStep{&fsm.Command{Type: fsm.CmdPlan, Plan: &fsm.Plan{Remove: drained}}, "drained instances removed"})
	}
	return steps
}

// rolloutInstances groups, by installation and in id order, the instances
// planRollouts looks at: every instance of an installation being deleted or
// rolled out, and the draining ones of the others. One pass, grouping and
// sorting only those: this runs every tick, and grouping and sorting all
// 100,000 instances of a fleet was a tenth of the leader's CPU in the
// steady state.
func rolloutInstances(st *fsm.State) map[string][]*fsm.Instance {
	busy := map[string]bool{}
	for name, inst := range st.Installations {
		if inst.Deleting || inst.Deploying() != nil {
			busy[name] = true
		}
	}
	of := map[string][]*fsm.Instance{}
	for _, in := range st.Instances {
		if in.State == fsm.InstanceDraining || busy[in.Installation] {
			of[in.Installation] = append(of[in.Installation], in)
		}
	}
	for _, list := range of {
		sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	}
	return of
}

func hostName(st *fsm.State, id string) string {
	if h := st.Hosts[id]; h != nil {
		return h.Name
	}
	return id
}

// maxRolloutSteps bounds the commands one round commits; the next round
// goes on where it stopped.
const maxRolloutSteps = 64

// rollouts commits the rollout decisions, one command each, every one
// re-decided on the leader's current state.
func (r *Reconciler) rollouts(ctx context.Context) error {
	for range maxRolloutSteps {
		var done *rolloutStep
		res, err := r.cfg.Node.Decide(ctx, "", func(st *fsm.State, now time.Time) (*fsm.Command, error) {
			steps := planRollouts(st, now, r.cfg.RolloutTimeout, r.cfg.DrainTime)
			if len(steps) == 0 {
				return nil, nil
			}
			done = &steps[0]
			return steps[0].cmd, nil
		})
		if err != nil {
			return fmt.Errorf("rollout: %w", err)
		}
		if res.Err != nil {
			return fmt.Errorf("rollout rejected: %w", res.Err)
		}
		if done == nil {
			return nil
		}
		switch c := done.cmd; {
		case c.Release != nil:
			r.cfg.Logger.Info(done.log, "installation", c.Name, "release", c.Release.Version, "message", c.Release.Message)
		case c.Plan != nil:
			r.cfg.Logger.Info(done.log, "instances", c.Plan.Remove)
		default:
			r.cfg.Logger.Info(done.log, "installation", c.Name)
		}
	}
	return nil
}
