package chaos

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// explain describes, for every name whose history is not linearizable, the
// end of the longest linearization porcupine found and the operations it
// could not place after it: the first of those is usually the stale or
// impossible answer. The HTML visualization shows the same in full.
//
// porcupine's longest linearization may have taken the stale answer as true
// and list later, correct answers as the misfits; so each operation is
// marked with the faults of the node that answered it ("answered while
// core1 was paused" is the usual culprit).
func explain(ops []porcupine.Operation, info porcupine.LinearizationInfo, faults []fault) string {
	parts := appModel.Partition(ops)
	partials := info.PartialLinearizations()
	var b strings.Builder
	for p, sub := range parts {
		if p >= len(partials) {
			break
		}
		var longest []int
		for _, l := range partials[p] {
			if len(l) > len(longest) {
				longest = l
			}
		}
		if len(longest) == len(sub) {
			continue
		}
		fmt.Fprintf(&b, "%s: %d of %d operations linearize; the last of them:\n", sub[0].Input.(appInput).Name, len(longest), len(sub))
		state := appModel.Init()
		for i, id := range longest {
			_, state = appModel.Step(state, sub[id].Input, sub[id].Output)
			if i >= len(longest)-4 {
				fmt.Fprintf(&b, "  %s  => %s\n", describe(sub[id], faults), appModel.DescribeState(state))
			}
		}
		var rest []int
		for id := range sub {
			if !slices.Contains(longest, id) {
				rest = append(rest, id)
			}
		}
		slices.SortFunc(rest, func(a, c int) int { return int(sub[a].Call - sub[c].Call) })
		fmt.Fprintf(&b, "  then none of these fits (earliest first):\n")
		for _, id := range rest[:min(len(rest), 5)] {
			fmt.Fprintf(&b, "  %s\n", describe(sub[id], faults))
		}
	}
	return b.String()
}

func describe(op porcupine.Operation, faults []fault) string {
	meta, _ := op.Metadata.(opMeta)
	var marks []string
	if len(meta.Attempts) > 0 {
		answeredBy, _, _ := strings.Cut(meta.Attempts[len(meta.Attempts)-1], ":")
		for _, f := range faults {
			// The answer came during the fault or within a second after it
			// was healed (a node that is still catching up).
			if f.Node == answeredBy && int64(f.At) <= op.Return && op.Call <= int64(f.Healed+time.Second) {
				marks = append(marks, fmt.Sprintf("%s %.2fs-%.2fs", f.Kind, f.At.Seconds(), f.Healed.Seconds()))
			}
		}
	}
	ret := fmt.Sprintf("%8.3fs", float64(op.Return)/1e9)
	if op.Output.(appOutput).Unknown {
		ret = "  (never)"
	}
	s := fmt.Sprintf("[%8.3fs %s] client %2d %-60s via %v", float64(op.Call)/1e9, ret, op.ClientId,
		appModel.DescribeOperation(op.Input, op.Output), meta.Attempts)
	if len(marks) > 0 {
		s += "  answering node: " + strings.Join(marks, ", ")
	}
	return s
}
