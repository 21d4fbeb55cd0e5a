package health

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// step is one event on the fake clock and the expected result.
type step struct {
	at     time.Duration
	op     string // "acquire", "fail", "ok"
	wantOK bool   // acquire: may be chosen
	probe  bool   // acquire: this request is the probe
	change Change // fail, ok: the transition reported
}

// acq, fail and ok build steps.
func acq(at time.Duration, ok, probe bool) step {
	return step{at: at, op: "acquire", wantOK: ok, probe: probe}
}
func fail(at time.Duration, c Change) step { return step{at: at, op: "fail", change: c} }
func ok(at time.Duration, c Change) step   { return step{at: at, op: "ok", change: c} }

func TestStateFollowsNginx(t *testing.T) {
	s := time.Second
	cases := []struct {
		name   string
		params Params
		steps  []step
	}{
		{"healthy backend is always chosen", Params{1, 20 * s}, []step{
			acq(0, true, false), ok(1*s, NoChange), acq(2*s, true, false),
		}},
		{"one failure takes it out for fail_timeout", Params{1, 20 * s}, []step{
			fail(10*s, WentDown),
			acq(10*s, false, false),
			acq(20*s, false, false),
			acq(30*s, false, false), // now-checked == fail_timeout still skips
		}},
		{"failures of requests already in flight change nothing", Params{1, 20 * s}, []step{
			fail(10*s, WentDown),
			fail(11*s, NoChange),
			fail(12*s, NoChange),
			acq(31*s, false, false), // but each restarts the window, as in NGINX
			acq(33*s, true, true),
		}},
		{"after fail_timeout exactly one probe, success restores", Params{1, 20 * s}, []step{
			fail(10*s, WentDown),
			acq(31*s, true, true),
			acq(31*s, false, false), // others keep skipping while the probe runs
			acq(40*s, false, false),
			ok(41*s, Recovered),
			acq(41*s, true, false),
			acq(42*s, true, false),
		}},
		{"failed probe takes it out again", Params{1, 20 * s}, []step{
			fail(0, WentDown),
			acq(21*s, true, true),
			fail(22*s, ProbeFailed),
			acq(41*s, false, false),
			acq(42*s, false, false),
			acq(43*s, true, true),
		}},
		{"probe that never finishes lets one more probe after another window", Params{1, 20 * s}, []step{
			fail(0, WentDown),
			acq(21*s, true, true),
			acq(41*s, false, false),
			acq(42*s, true, true),
		}},
		{"success inside the window does not reset fails", Params{2, 20 * s}, []step{
			fail(0, NoChange),
			acq(1*s, true, false),
			ok(2*s, NoChange),
			fail(3*s, WentDown), // second failure reaches max_fails=2
			acq(4*s, false, false),
		}},
		{"success after a window resets fails", Params{2, 20 * s}, []step{
			fail(0, NoChange),
			acq(25*s, true, false), // checked moves to 25 s
			ok(25*s, NoChange),     // accessed < checked: fails = 0
			fail(26*s, NoChange),   // back to 1 of 2
			acq(27*s, true, false),
		}},
		{"max_fails 0 never takes it out", Params{0, 20 * s}, []step{
			fail(0, NoChange), fail(0, NoChange), acq(1*s, true, false),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := NewState(tc.params)
			for i, st := range tc.steps {
				switch st.op {
				case "acquire":
					ok, probe := p.Acquire(st.at)
					require.Equal(t, st.wantOK, ok, "step %d acquire at %s", i, st.at)
					require.Equal(t, st.probe, probe, "step %d probe at %s", i, st.at)
				case "fail":
					require.Equal(t, st.change, p.Fail(st.at).Change, "step %d fail at %s", i, st.at)
				case "ok":
					require.Equal(t, st.change, p.Succeed().Change, "step %d success at %s", i, st.at)
				}
			}
		})
	}
}

// TestEventsCountFailures: a recovery reports how many failures kept the
// backend out, so that one log line can say it.
func TestEventsCountFailures(t *testing.T) {
	s := time.Second
	p := NewState(Params{MaxFails: 1, FailTimeout: 20 * s})
	require.Equal(t, Event{WentDown, 1}, p.Fail(0))
	require.Equal(t, Event{NoChange, 2}, p.Fail(s))
	p.Acquire(30 * s)
	require.Equal(t, Event{ProbeFailed, 3}, p.Fail(30*s))
	p.Acquire(51 * s)
	require.Equal(t, Event{Recovered, 3}, p.Succeed())
	require.Equal(t, Event{}, p.Succeed())
}

// TestTakeOutAndRestore: a caller that knows better than the attempts (the
// transport saw the backend vanish, or come back) moves the state at once.
func TestTakeOutAndRestore(t *testing.T) {
	s := time.Second
	p := NewState(Params{MaxFails: 3, FailTimeout: 20 * s})
	require.Equal(t, WentDown, p.TakeOut(0).Change)
	require.True(t, p.Down(s))
	require.Equal(t, NoChange, p.TakeOut(2*s).Change, "already out")
	ok, _ := p.Acquire(21 * s)
	require.False(t, ok, "the second TakeOut restarted the window")
	require.Equal(t, Recovered, p.Restore().Change)
	require.False(t, p.Down(3*s))
	ok, probe := p.Acquire(3 * s)
	require.True(t, ok)
	require.False(t, probe)

	off := NewState(Params{MaxFails: 0, FailTimeout: 20 * s})
	require.Equal(t, NoChange, off.TakeOut(0).Change)
	require.False(t, off.Down(s), "accounting off: never out")
}

func TestDownReportsExclusion(t *testing.T) {
	p := NewState(Params{MaxFails: 1, FailTimeout: 20 * time.Second})
	require.False(t, p.Down(0))
	p.Fail(time.Second)
	require.True(t, p.Down(2*time.Second))
	require.False(t, p.Down(22*time.Second))
	require.Equal(t, 1, p.Fails())
}
