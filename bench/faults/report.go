package faults

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Event is something the benchmark did or saw, at an offset from the start
// of the load.
type Event struct {
	At   time.Duration
	What string
}

// Window is the stretch of the load one scenario owns: requests due in
// [From, To), with what happened in it.
type Window struct {
	Name     string
	From, To time.Duration
	// DownFrom and DownTo bound the Front process's own downtime: from its
	// kill -9 until its restarted listener accepts again (both zero when
	// the scenario does not kill the Front).
	DownFrom, DownTo time.Duration
	Events           []Event
	// Affected is the instance the fault took away ("" if none), and
	// FaultAt when.
	Affected string
	FaultAt  time.Duration
	// Recovered: the cluster was whole again (both instances answering,
	// no failures) before the window closed.
	Recovered bool
}

// Stats is one scenario's line of the report.
type Stats struct {
	Name      string
	Requests  int
	OK        int
	Failed    int // failures not explained by the Front's own downtime
	FrontDown int // failures in flight in the killed Front or sent while nothing listened
	// Kinds counts Failed by kind ("HTTP 502", "timeout", ...).
	Kinds    map[string]int
	P50, P99 time.Duration
	Max      time.Duration
	// LongestGap is the longest time without a request completing
	// successfully, and GapAt where it began (offset in the window).
	LongestGap, GapAt time.Duration
	// Down is the Front's own downtime (kill to listener back).
	Down time.Duration
	// FirstOKAfterUp is the time from the Front's listener being back to
	// the first success sent after it.
	FirstOKAfterUp time.Duration
	// AffectedBack is the time from the fault to the first success from
	// the affected instance sent after it (-1: none in the window).
	AffectedBack time.Duration
	Window       Window
}

// Summarize computes a window's statistics from the whole run's samples.
func Summarize(samples []Sample, w Window) Stats {
	st := Stats{Name: w.Name, Kinds: map[string]int{}, Window: w, Down: w.DownTo - w.DownFrom, FirstOKAfterUp: -1, AffectedBack: -1}
	var lat []time.Duration
	var okEnds []time.Duration
	for _, s := range samples {
		if s.Sched < w.From || s.Sched >= w.To {
			continue
		}
		st.Requests++
		lat = append(lat, s.Latency())
		switch {
		case s.OK:
			st.OK++
			okEnds = append(okEnds, s.End)
			if w.Affected != "" && s.Instance == w.Affected && s.Sent >= w.FaultAt && (st.AffectedBack < 0 || s.End-w.FaultAt < st.AffectedBack) {
				st.AffectedBack = s.End - w.FaultAt
			}
			if st.Down > 0 && s.Sent >= w.DownTo && (st.FirstOKAfterUp < 0 || s.End-w.DownTo < st.FirstOKAfterUp) {
				st.FirstOKAfterUp = s.End - w.DownTo
			}
		case st.Down > 0 && (s.Sent < w.DownFrom && s.End >= w.DownFrom || s.Sent >= w.DownFrom && s.Sent < w.DownTo):
			st.FrontDown++
		default:
			st.Failed++
			st.Kinds[s.Kind]++
		}
	}
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		st.P50 = lat[(n-1)*50/100]
		st.P99 = lat[(n-1)*99/100]
		st.Max = lat[n-1]
	}
	slices.Sort(okEnds)
	prev := w.From
	for _, e := range append(okEnds, w.To) {
		if e < prev {
			continue
		}
		if e-prev > st.LongestGap {
			st.LongestGap, st.GapAt = e-prev, prev-w.From
		}
		prev = e
	}
	return st
}

// Result is the whole benchmark.
type Result struct {
	// Setup describes the cluster and the load in one line.
	Setup     string
	Scenarios []Stats
}

// Failed counts failed requests beyond the Front's own downtime.
func (r Result) Failed() int {
	n := 0
	for _, s := range r.Scenarios {
		n += s.Failed
	}
	return n
}

// LongestGap is the longest gap without a success in any scenario.
func (r Result) LongestGap() time.Duration {
	var g time.Duration
	for _, s := range r.Scenarios {
		g = max(g, s.LongestGap)
	}
	return g
}

// Line is the report's last line.
func (r Result) Line() string {
	return fmt.Sprintf("bench-faults: %d failed requests, longest gap %.1f s", r.Failed(), r.LongestGap().Seconds())
}

// WriteText prints the per-scenario table, each scenario's events and
// failures, and the summary line last.
func WriteText(w io.Writer, r Result) error {
	var b strings.Builder
	if r.Setup != "" {
		fmt.Fprintln(&b, r.Setup)
		fmt.Fprintln(&b)
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trequests\tok\tfailed\tFront down\tp50\tp99\tmax\tlongest gap\t")
	for _, s := range r.Scenarios {
		down := "-"
		if s.Down > 0 {
			down = fmt.Sprintf("%d in %.2f s", s.FrontDown, s.Down.Seconds())
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%.2f s\t\n", s.Name, s.Requests, s.OK, s.Failed, down,
			millis(s.P50), millis(s.P99), millis(s.Max), s.LongestGap.Seconds())
	}
	tw.Flush()
	fmt.Fprintln(&b)
	for _, s := range r.Scenarios {
		fmt.Fprintf(&b, "%s:\n", s.Name)
		events := slices.SortedStableFunc(slices.Values(s.Window.Events), func(a, b Event) int { return cmp.Compare(a.At, b.At) })
		for _, e := range events {
			fmt.Fprintf(&b, "  %+7.2f s  %s\n", (e.At - s.Window.From).Seconds(), e.What)
		}
		if !s.Window.Recovered {
			fmt.Fprintf(&b, "  not whole again when the window closed at %+.2f s\n", (s.Window.To - s.Window.From).Seconds())
		}
		if s.Failed > 0 {
			var kinds []string
			for _, k := range slices.Sorted(maps.Keys(s.Kinds)) {
				kinds = append(kinds, fmt.Sprintf("%s ×%d", k, s.Kinds[k]))
			}
			fmt.Fprintf(&b, "  failed: %s\n", strings.Join(kinds, ", "))
		}
		if s.Window.Affected != "" {
			back := "never in the window"
			if s.AffectedBack >= 0 {
				back = fmt.Sprintf("%.2f s after the fault", s.AffectedBack.Seconds())
			}
			fmt.Fprintf(&b, "  the affected instance %s answered through the Front again %s\n", s.Window.Affected, back)
		}
		if s.Down > 0 {
			first := "none"
			if s.FirstOKAfterUp >= 0 {
				first = fmt.Sprintf("%.2f s", s.FirstOKAfterUp.Seconds())
			}
			fmt.Fprintf(&b, "  Front down %.2f s (kill -9 to listener back): %d requests lost in it; first success after the listener was back: %s\n",
				s.Down.Seconds(), s.FrontDown, first)
		}
		fmt.Fprintf(&b, "  longest gap %.2f s from %+.2f s\n", s.LongestGap.Seconds(), s.GapAt.Seconds())
	}
	fmt.Fprintln(&b)
	down := 0
	for _, s := range r.Scenarios {
		down += s.FrontDown
	}
	fmt.Fprintf(&b, "failed requests: %d, plus %d during the Front's own downtime\n", r.Failed(), down)
	fmt.Fprintln(&b, r.Line())
	_, err := io.WriteString(w, b.String())
	return err
}

// millis formats a latency in milliseconds.
func millis(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
