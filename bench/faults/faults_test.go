package faults

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/internal/freeport"
)

const ms = time.Millisecond

// ok and fail build samples: due at sched, sent at once, ending at end.
func okAt(sched, end time.Duration, inst string) Sample {
	return Sample{Sched: sched, Sent: sched, End: end, OK: true, Instance: inst}
}

func failAt(sched, end time.Duration, kind string) Sample {
	return Sample{Sched: sched, Sent: sched, End: end, Kind: kind}
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		name    string
		samples []Sample
		w       Window
		want    Stats
	}{
		{
			name: "failures by kind, gap between successes, latency from the schedule",
			samples: []Sample{
				okAt(0, 5*ms, "a"), okAt(100*ms, 105*ms, "b"),
				failAt(200*ms, 210*ms, "HTTP 502"), failAt(300*ms, 1300*ms, "timeout"),
				okAt(400*ms, 405*ms, "a"), okAt(2000*ms, 2001*ms, "a"), // outside the window
			},
			w: Window{From: 0, To: 1000 * ms},
			want: Stats{Requests: 5, OK: 3, Failed: 2, Kinds: map[string]int{"HTTP 502": 1, "timeout": 1},
				P50: 5 * ms, P99: 10 * ms, Max: 1000 * ms, LongestGap: 595 * ms, GapAt: 405 * ms,
				FirstOKAfterUp: -1, AffectedBack: -1},
		},
		{
			name: "the Front's own downtime is counted apart; what fails after the listener is back is not",
			samples: []Sample{
				okAt(0, 10*ms, "a"),
				{Sched: 90 * ms, Sent: 90 * ms, End: 101 * ms, Kind: "reset"}, // in flight at the kill
				failAt(150*ms, 151*ms, "refused"),                             // sent while nothing listened
				failAt(250*ms, 260*ms, "HTTP 502"),                            // after the listener was back
				okAt(300*ms, 320*ms, "b"),
			},
			w: Window{From: 0, To: 400 * ms, DownFrom: 100 * ms, DownTo: 200 * ms},
			want: Stats{Requests: 5, OK: 2, Failed: 1, FrontDown: 2, Kinds: map[string]int{"HTTP 502": 1},
				P50: 10 * ms, P99: 11 * ms, Max: 20 * ms, LongestGap: 310 * ms, GapAt: 10 * ms,
				Down: 100 * ms, FirstOKAfterUp: 120 * ms, AffectedBack: -1},
		},
		{
			name: "the affected instance is back at its first success sent after the fault",
			samples: []Sample{
				okAt(0, 10*ms, "a"), okAt(50*ms, 400*ms, "b"), // sent before the fault
				okAt(200*ms, 210*ms, "a"), okAt(600*ms, 650*ms, "b"),
			},
			w: Window{From: 0, To: 1000 * ms, Affected: "b", FaultAt: 100 * ms},
			want: Stats{Requests: 4, OK: 4, Kinds: map[string]int{}, P50: 10 * ms, P99: 50 * ms, Max: 350 * ms,
				LongestGap: 350 * ms, GapAt: 650 * ms, FirstOKAfterUp: -1, AffectedBack: 550 * ms},
		},
		{
			name: "an empty window is one gap",
			w:    Window{From: time.Second, To: 3 * time.Second},
			want: Stats{Kinds: map[string]int{}, LongestGap: 2 * time.Second, FirstOKAfterUp: -1, AffectedBack: -1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Summarize(tc.samples, tc.w)
			tc.want.Window = tc.w
			require.Equal(t, tc.want, got)
		})
	}
}

func TestResultLine(t *testing.T) {
	r := Result{Scenarios: []Stats{
		{Name: "a", Failed: 2, FrontDown: 7, LongestGap: 1260 * ms, Kinds: map[string]int{"HTTP 502": 2}, FirstOKAfterUp: -1, AffectedBack: -1},
		{Name: "b", Failed: 1, LongestGap: 80 * ms, Kinds: map[string]int{"timeout": 1}, FirstOKAfterUp: -1, AffectedBack: -1},
	}}
	require.Equal(t, "bench-faults: 3 failed requests, longest gap 1.3 s", r.Line())
	var out bytes.Buffer
	require.NoError(t, WriteText(&out, r))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Equal(t, r.Line(), lines[len(lines)-1])
	require.Contains(t, out.String(), "failed requests: 3, plus 7 during the Front's own downtime")
}

func TestConfigAndScenarios(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{name: "defaults", cfg: Config{}},
		{name: "rate too high", cfg: Config{Rate: 5000}, err: "rate"},
		{name: "lead-in longer than the window", cfg: Config{Scenario: 10 * time.Second, LeadIn: 10 * time.Second}, err: "lead-in"},
		{name: "unknown scenario", cfg: Config{Scenarios: []string{"meteor"}}, err: `unknown scenario "meteor"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.withDefaults()
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
		})
	}
	got, err := ParseScenarios(" back, front ,front")
	require.NoError(t, err)
	require.Equal(t, []string{ScenarioBack, ScenarioFront, ScenarioFront}, got)
	for _, bad := range []string{"", ",", "back,disk"} {
		_, err := ParseScenarios(bad)
		require.Error(t, err, bad)
	}
}

// TestLoadThroughAnOutage is the smoke test: the open-loop load against a
// real server that is closed and started again on the same address, as the
// Front is; the outage shows as the Front's own downtime and nothing else.
func TestLoadThroughAnOutage(t *testing.T) {
	addr, err := freeport.TCP()
	require.NoError(t, err)
	serve := func() *http.Server {
		ln, err := net.Listen("tcp", addr)
		require.NoError(t, err)
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Instance", r.Host)
			w.Write([]byte("hello\n"))
		})}
		go srv.Serve(ln)
		return srv
	}
	srv := serve()
	load, err := StartLoad(LoadConfig{URL: "http://" + addr + "/", Host: "one.test", Rate: 200, Timeout: 5 * time.Second,
		MaxInFlight: 50, MaxRequests: 4000})
	require.NoError(t, err)
	defer load.Stop()
	require.Eventually(t, func() bool { return load.Healthy(300*ms, 1) }, 10*time.Second, 20*ms)
	require.False(t, load.Healthy(300*ms, 2), "one instance only")

	w := Window{Name: "outage", From: load.Now()}
	time.Sleep(200 * ms)
	w.DownFrom = load.Now()
	require.NoError(t, srv.Close())
	time.Sleep(300 * ms)
	srv = serve()
	defer srv.Close()
	w.DownTo = load.Now()
	require.Eventually(t, func() bool { return load.Healthy(300*ms, 1) }, 10*time.Second, 20*ms)
	w.To = load.Now()
	samples := load.Stop()

	st := Summarize(samples, w)
	require.Positive(t, st.OK)
	require.Positive(t, st.FrontDown, "requests sent while nothing listened")
	require.Zero(t, st.Failed, "kinds: %v", st.Kinds)
	require.GreaterOrEqual(t, st.LongestGap, (w.DownTo-w.DownFrom)/2)
	require.GreaterOrEqual(t, st.FirstOKAfterUp, time.Duration(0))
	for _, s := range samples {
		require.True(t, s.OK || s.Kind == "refused" || s.Kind == "reset" || s.Kind == "eof", "kind %q", s.Kind)
		require.GreaterOrEqual(t, s.End, s.Sent)
		require.GreaterOrEqual(t, s.Sent, s.Sched)
	}
}

func TestFailureKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{syscall.ECONNREFUSED, "refused"},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, "reset"},
		{errors.Join(errors.New("x"), errors.ErrUnsupported), "error"},
	} {
		require.Equal(t, tc.want, failureKind(tc.err), "%v", tc.err)
	}
}
