package chaos

import (
	"fmt"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// explain describes, for every name whose history is not linearizable, the
// end of the longest linearization porcupine found and the operations it
// could not place after it: the first of those is usually the stale or
// impossible answer. The HTML visualization shows the same in full.
func explain(ops []porcupine.Operation, info porcupine.LinearizationInfo) string {
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
				fmt.Fprintf(&b, "  %s  => %s\n", describe(sub[id]), appModel.DescribeState(state))
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
			fmt.Fprintf(&b, "  %s\n", describe(sub[id]))
		}
	}
	return b.String()
}

func describe(op porcupine.Operation) string {
	meta, _ := op.Metadata.(opMeta)
	ret := fmt.Sprintf("%8.3fs", float64(op.Return)/1e9)
	if op.Output.(appOutput).Unknown {
		ret = "  (never)"
	}
	return fmt.Sprintf("[%8.3fs %s] client %2d %-60s via %v", float64(op.Call)/1e9, ret, op.ClientId,
		appModel.DescribeOperation(op.Input, op.Output), meta.Attempts)
}
