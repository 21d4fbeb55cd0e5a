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
	wantOK bool   // acquire: may be chosen; fail: marked down; ok: recovered
	probe  bool   // acquire: this request is the probe
}

func TestStateFollowsNginx(t *testing.T) {
	s := time.Second
	cases := []struct {
		name   string
		params Params
		steps  []step
	}{
		{"healthy backend is always chosen", Params{1, 20 * s}, []step{
			{0, "acquire", true, false}, {1 * s, "ok", false, false}, {2 * s, "acquire", true, false},
		}},
		{"one failure takes it out for fail_timeout", Params{1, 20 * s}, []step{
			{10 * s, "fail", true, false},
			{10 * s, "acquire", false, false},
			{20 * s, "acquire", false, false},
			{30 * s, "acquire", false, false}, // now-checked == fail_timeout still skips
		}},
		{"after fail_timeout exactly one probe, success restores", Params{1, 20 * s}, []step{
			{10 * s, "fail", true, false},
			{31 * s, "acquire", true, true},
			{31 * s, "acquire", false, false}, // others keep skipping while the probe runs
			{40 * s, "acquire", false, false},
			{41 * s, "ok", true, false},
			{41 * s, "acquire", true, false},
			{42 * s, "acquire", true, false},
		}},
		{"failed probe takes it out again", Params{1, 20 * s}, []step{
			{0, "fail", true, false},
			{21 * s, "acquire", true, true},
			{22 * s, "fail", true, false},
			{41 * s, "acquire", false, false},
			{42 * s, "acquire", false, false},
			{43 * s, "acquire", true, true},
		}},
		{"probe that never finishes lets one more probe after another window", Params{1, 20 * s}, []step{
			{0, "fail", true, false},
			{21 * s, "acquire", true, true},
			{41 * s, "acquire", false, false},
			{42 * s, "acquire", true, true},
		}},
		{"success inside the window does not reset fails", Params{2, 20 * s}, []step{
			{0, "fail", false, false},
			{1 * s, "acquire", true, false},
			{2 * s, "ok", false, false},
			{3 * s, "fail", true, false}, // second failure reaches max_fails=2
			{4 * s, "acquire", false, false},
		}},
		{"success after a window resets fails", Params{2, 20 * s}, []step{
			{0, "fail", false, false},
			{25 * s, "acquire", true, false}, // checked moves to 25 s
			{25 * s, "ok", false, false},     // accessed < checked: fails = 0
			{26 * s, "fail", false, false},   // back to 1 of 2
			{27 * s, "acquire", true, false},
		}},
		{"max_fails 0 never takes it out", Params{0, 20 * s}, []step{
			{0, "fail", false, false}, {0, "fail", false, false}, {1 * s, "acquire", true, false},
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
					require.Equal(t, st.wantOK, p.Fail(st.at), "step %d fail marks down", i)
				case "ok":
					require.Equal(t, st.wantOK, p.Succeed(), "step %d success recovers", i)
				}
			}
		})
	}
}

func TestDownReportsExclusion(t *testing.T) {
	p := NewState(Params{MaxFails: 1, FailTimeout: 20 * time.Second})
	require.False(t, p.Down(0))
	p.Fail(time.Second)
	require.True(t, p.Down(2*time.Second))
	require.False(t, p.Down(22*time.Second))
	require.Equal(t, 1, p.Fails())
}
